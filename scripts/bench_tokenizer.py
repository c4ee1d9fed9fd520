"""Time byte-level BPE training: the incremental trainer against the textbook per-merge recount.

Usage: ``python scripts/bench_tokenizer.py [--chars 1000000] [--vocab-size 4096] [--naive-merges 30]``
(about a minute on one core).

Two texts: the course corpus (``course_lib.datasets.load_corpus("train")``) when that module and its
files are present, and English-like text generated here from a fixed word list, made-up words and a
seeded RNG. The course corpus comes from a small synthetic world, so it holds too few distinct words
to reach a vocabulary of 4,096; the generated text has about 17,000 distinct pre-tokens per MB.

The incremental trainer (`BPETokenizer.train`) runs the full budget. The naive trainer
(`naive_bpe_merges`), which recounts every pair of the text before each merge, runs only
``--naive-merges`` merges on the same text, and must produce the same merges (checked); its time for
the full budget is extrapolated from that measurement (a range, printed as an extrapolation).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
import warnings

import regex

from course_lib.tokenization import GPT2_PATTERN, BPETokenizer, naive_bpe_merges

COMMON_WORDS = """
the of and to a in is it that was for on are with as he be at by this had not but from or have an
they which one you were her all she there would their we him been has when who will more no if out so
said what up its about into than them can only other new some could time these two may then do first
any my now such like our over man me even most made after also did many before must through back years
where much your way well down should because each just those people how too little state good very make
world still own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three
""".split()
SYLLABLES = """ba be bi bo bu ca ce co da de di do fa fe fi fo ga ge go ha he hi ho la le li lo lu ma me mi
mo na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa we ing er ed ly tion ment
al en an or ar st tr pl gr""".split()


def generated_text(n_chars: int, seed: int = 0) -> str:
    """English-like text: Zipf-distributed words (common English words first, then 20,000 made-up
    ones), sentences of 4-18 words with commas, capitals, some numbers, paragraphs."""
    rng = random.Random(seed)
    made_up = {"".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(25_000)}
    lexicon = COMMON_WORDS + sorted(made_up - set(COMMON_WORDS))[:20_000]
    weights = [1.0 / (rank + 1) ** 1.07 for rank in range(len(lexicon))]
    parts: list[str] = []
    size = 0
    while size < n_chars:
        words = rng.choices(lexicon, weights, k=rng.randint(4, 18))
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words)), str(rng.choice([rng.randint(2, 99), rng.randint(1800, 2024)])))
        if len(words) > 6 and rng.random() < 0.4:
            words[rng.randrange(2, len(words) - 2)] += ","
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])
        sentence += "\n\n" if rng.random() < 0.1 else " "
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:n_chars]


def course_corpus(n_chars: int) -> str | None:
    """The first ``n_chars`` characters of the course corpus; None when it is not available."""
    if importlib.util.find_spec("course_lib.datasets") is None:
        print("course corpus not available (no course_lib.datasets)")
        return None
    from course_lib.datasets import corpus_text, load_corpus

    try:
        return corpus_text(load_corpus("train"))[:n_chars]
    except FileNotFoundError as error:
        print(f"course corpus not available ({error.filename})")
        return None


def bench(text: str, label: str, vocab_size: int, naive_merges: int) -> None:
    """Print the incremental trainer's time, the encoder's speed and the naive trainer's estimate."""
    n_bytes = len(text.encode("utf-8"))
    n_distinct = len(set(regex.findall(GPT2_PATTERN, text)))
    print(f"\n{label}: {len(text):,} characters, {n_bytes:,} bytes, {n_distinct:,} distinct GPT-2 pre-tokens")
    tokenizer = BPETokenizer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        tokenizer.train(text, vocab_size)
        fast = time.perf_counter() - start
    n_merges = len(tokenizer.merges)
    print(f"  incremental trainer: {n_merges:,} merges (vocab {tokenizer.vocab_size:,}) in {fast:.2f} s")
    for warning in caught:
        print(f"  note: {warning.message}")

    start = time.perf_counter()
    ids = tokenizer.encode(text)
    encode = time.perf_counter() - start
    assert tokenizer.decode(ids) == text, "round trip failed"
    print(f"  encode: {len(ids):,} tokens in {encode:.2f} s ({n_bytes / encode / 1e6:.1f} MB/s), "
          f"{len(text) / len(ids):.2f} characters per token; decode(encode(text)) == text")

    start = time.perf_counter()
    naive = naive_bpe_merges(text, min(naive_merges, n_merges))
    measured = time.perf_counter() - start
    assert naive == tokenizer.merges[: len(naive)], "naive and incremental trainers disagree"
    per_merge = measured / len(naive)
    print(f"  naive recount trainer: {len(naive)} merges measured in {measured:.2f} s "
          f"({per_merge:.3f} s per merge), the same merges as the incremental trainer")
    # A naive merge costs time linear in the number of symbols left, which falls from the byte count
    # to the final token count: the first merges' rate bounds the total from above, and that rate
    # scaled by tokens/bytes bounds it from below.
    high = per_merge * n_merges
    low = high * len(ids) / n_bytes
    print(f"  naive recount trainer, all {n_merges:,} merges: between {low:.0f} and {high:.0f} s, "
          f"{low / fast:.0f}x to {high / fast:.0f}x the incremental trainer (an EXTRAPOLATION of the "
          "measured merges, not a measurement)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text to train on")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--naive-merges", type=int, default=30, help="merges the naive trainer runs")
    args = parser.parse_args()
    if args.naive_merges < 1:
        parser.error(f"--naive-merges must be >= 1, got {args.naive_merges}")

    corpus = course_corpus(args.chars)
    if corpus is not None:
        bench(corpus, 'course corpus (course_lib.datasets.load_corpus("train"))', args.vocab_size,
              args.naive_merges)
    bench(generated_text(args.chars), "English-like text generated by this script (seed 0)", args.vocab_size,
          args.naive_merges)


if __name__ == "__main__":
    main()
