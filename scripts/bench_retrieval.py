"""BM25 scoring speed on 10,000 chunks of the course corpus, in queries per second.

The chunks are the train split's documents cut into windows of ``--size`` words sharing
``--overlap`` (`course_lib.retrieval.chunk`), the first ``--chunks`` of them, tokenised with
`course_lib.retrieval.word_tokens`; the queries are the fact prompts of the world ("Rozi lives in",
`course_lib.world.DocumentGenerator.fact_prompt`). The script prints the index's shape (chunks,
vocabulary, stored weights), the time to build it, and the median over ``--repeats`` runs of the
CPU time (``time.process_time``, so time spent waiting for a busy core is not counted) to score
every query against every chunk (`BM25.scores`) and to return each query's top 10 (`BM25.search`).
For comparison it also times the same scores read from a dense (N, V) weight matrix (a column per
query token, summed) and prints both memory footprints. The course world has about a hundred
distinct words, so its dense matrix is small and the column sums are fast; the sparse index's time
and memory grow with the number of stored weights, not with N * V, which is what makes it usable
with a real vocabulary (50,000 words would take the dense matrix of 10,000 chunks to 4 GB).

Usage: python scripts/bench_retrieval.py [--chunks 10000] [--size 12] [--overlap 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from course_lib.datasets import load_corpus, load_generator
from course_lib.retrieval import BM25, chunk, word_tokens


def cpu_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of ``run()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return statistics.median(times)


def corpus_chunks(n: int, size: int, overlap: int) -> list[list[str]]:
    """The word tokens of the first ``n`` chunks of the train split (fewer if the split runs out)."""
    chunks: list[list[str]] = []
    for document in load_corpus("train"):
        chunks.extend(word_tokens(c) for c in chunk(document, size, overlap))
        if len(chunks) >= n:
            break
    return chunks[:n]


def dense_weights(bm25: BM25) -> np.ndarray:
    """The index's weights as a dense (N, V) matrix: column j holds the scores of a one-token query."""
    return np.stack([bm25.scores([token]) for token in bm25.vocabulary], axis=1)  # (N, V)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=12, help="words per chunk")
    parser.add_argument("--overlap", type=int, default=4, help="words shared by neighbouring chunks")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if min(args.chunks, args.size, args.repeats) < 1 or not 0 <= args.overlap < args.size:
        parser.error("--chunks, --size and --repeats must be >= 1, and --overlap in [0, size)")

    tokens = corpus_chunks(args.chunks, args.size, args.overlap)
    start = time.process_time()
    bm25 = BM25(tokens)
    build = time.process_time() - start
    generator = load_generator()
    queries = [word_tokens(generator.fact_prompt(f)[0]) for f in generator.world.facts()]
    stored = sum(len(set(t)) for t in tokens)  # one weight per distinct (token, chunk) pair
    cells = len(bm25) * len(bm25.vocabulary)
    print(f"index: {len(bm25):,} chunks of {args.size} words (overlap {args.overlap}), vocabulary "
          f"{len(bm25.vocabulary):,}, {stored:,} stored weights ({stored / cells:.1%} of the dense matrix); "
          f"built in {build:.2f} s CPU")
    print(f"memory: sparse {stored * 16 / 1e6:.1f} MB (a float64 weight and an int64 chunk id each), "
          f"dense {cells * 8 / 1e6:.1f} MB")

    scores = cpu_seconds(lambda: [bm25.scores(q) for q in queries], args.repeats)
    search = cpu_seconds(lambda: [bm25.search(q, 10) for q in queries], args.repeats)
    print(f"{len(queries)} queries (fact prompts), median of {args.repeats} runs:")
    print(f"  scores, sparse:  {len(queries) / scores:10,.0f} queries/s ({scores / len(queries) * 1e6:7.1f} us each)")
    print(f"  top 10, sparse:  {len(queries) / search:10,.0f} queries/s ({search / len(queries) * 1e6:7.1f} us each)")

    dense = dense_weights(bm25)  # (N, V)
    sample = queries[:10]

    def dense_scores() -> list[np.ndarray]:
        return [dense[:, [bm25.vocabulary[t] for t in q if t in bm25.vocabulary]].sum(axis=1) for q in sample]

    assert all(np.allclose(d, bm25.scores(q)) for d, q in zip(dense_scores(), sample))
    seconds = cpu_seconds(dense_scores, args.repeats)
    print(f"  scores, dense (N, V) matrix: {len(sample) / seconds:10,.0f} queries/s "
          f"({seconds / len(sample) * 1e6:7.1f} us each)")


if __name__ == "__main__":
    main()
