"""Time to fit interpolated Kneser-Ney n-gram models on the course corpus (about 1 MB), and, with
``--compare``, their loss on the validation split against the world's exact optimum.

Fitting: the train split (`course_lib.datasets.load_corpus`), split into words or characters
(`course_lib.ngram.document_tokens`), then `NGramLM.fit` for each order. The script prints the
corpus size and, per unit and order, the median over ``--repeats`` runs of the CPU time
(``time.process_time``, so time spent waiting for a busy core is not counted) of splitting and
fitting together. The target is under 5 s per fit on 1 MB of text.

Comparing (``--compare``): models of each order fitted on the first m training documents for each m
of ``--sizes``, with the vocabulary of both splits (so that no validation token is unknown), scored
whole on the validation documents (`course_lib.ngram.document_nats`). Each number is the model's
total nats over the generator's exact total (`course_lib.world.DocumentGenerator.log_prob`): 1 is
the best any model can do. The tiny GPT's ratio from its card (`course_lib.zoo.load_card`) is
printed for reference; it was trained on the whole train split.

Usage: python scripts/bench_ngram.py [--orders 1 2 3 4 5] [--units words characters] [--documents N]
       [--repeats 3] [--compare] [--sizes 100 300 1000 3000 8700]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from course_lib.datasets import load_corpus, load_generator
from course_lib.ngram import UNITS, NGramLM, document_nats, document_tokens
from course_lib.zoo import load_card


def fit_seconds(documents: Sequence[str], order: int, unit: str, repeats: int) -> float:
    """Median CPU seconds to split the documents and fit a model of this order."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        NGramLM(order).fit([document_tokens(d, unit) for d in documents])
        times.append(time.process_time() - start)
    return statistics.median(times)


def compare(train: Sequence[str], orders: Sequence[int], units: Sequence[str], sizes: Sequence[int]) -> None:
    """Print total validation nats over the generator's exact nats, per unit, training size and order."""
    val = load_corpus("val")
    generator = load_generator()
    exact = -sum(generator.log_prob(d) for d in val)
    print(f"\nvalidation: {len(val)} documents, generator's exact loss {exact / len(val):.2f} nats per document")
    print(f"tiny GPT (card): ratio {load_card('tiny_gpt')['metrics']['ratio']:.3f}")
    for unit in units:
        vocabulary = {t for d in list(train) + val for t in document_tokens(d, unit)}
        print(f"\n{unit}: model nats / exact nats (1 is optimal)")
        print(f"{'documents':>10} {'tokens':>10} " + " ".join(f"{f'order {n}':>8}" for n in orders))
        for m in sizes:
            sequences = [document_tokens(d, unit) for d in train[:m]]
            ratios = [float(document_nats(NGramLM(n).fit(sequences, vocabulary), val, unit).sum()) / exact
                      for n in orders]
            tokens = sum(len(s) + 1 for s in sequences)  # each document's end counted as a token
            print(f"{len(sequences):>10} {tokens:>10} " + " ".join(f"{r:>8.3f}" for r in ratios))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--units", nargs="+", choices=UNITS, default=list(UNITS))
    parser.add_argument("--documents", type=int, default=None, help="use the first N training documents")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also score the validation split")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 8700])
    args = parser.parse_args(argv)
    if min(args.orders + args.sizes + [args.repeats, args.documents or 1]) < 1:
        parser.error("--orders, --sizes, --repeats and --documents must be >= 1")
    train = load_corpus("train")[:args.documents]
    size = sum(len((d + "\n").encode("utf-8")) for d in train)
    print(f"train split: {len(train)} documents, {size:,} bytes ({size / 1e6:.2f} MB)")
    print(f"{'unit':<11} {'order':>5} {'fit (CPU s)':>12}")
    for unit in args.units:
        for order in args.orders:
            print(f"{unit:<11} {order:>5} {fit_seconds(train, order, unit, args.repeats):>12.3f}")
    if args.compare:
        compare(train, args.orders, args.units, args.sizes)


if __name__ == "__main__":
    main()
