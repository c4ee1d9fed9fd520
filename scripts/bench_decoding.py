"""Beam search on a TinyGPT: KV cache with batched beams vs the naive loop that re-encodes every prefix.

Three ways to give `course_lib.decoding.beam_search` the same model, timed on the same search:

- naive: one forward pass per beam per step, each re-encoding the whole prefix;
- batched: one forward pass per step for all beams, still re-encoding the whole prefixes;
- cached + batched: one pass per step for all beams, feeding only the newest token and reusing the
  keys and values of earlier positions (`TinyGPT.as_next_logits()`).

The model has the zoo model's shape but random weights (speed does not depend on the values) and a
context long enough for the prompt and 64 new tokens. Prints the best of a few interleaved repeats
per variant and the speedups, and checks that the three return the same hypotheses. One thread by
default: a model this small gains little from a second one and loses a lot when the other core is
busy.

    python scripts/bench_decoding.py [--new-tokens 64] [--beam-width 4] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from course_lib.decoding import beam_search
from course_lib.models import TinyGPT
from course_lib.notebook.runtime import default_threads
from course_lib.zoo import ZOO

NAIVE, BATCHED, CACHED = "naive (per beam, re-encode)", "batched beams, re-encode", "batched beams + KV cache"


def per_beam(model: TinyGPT):
    """next_logits that runs the model once per row and re-encodes the whole prefix each time."""
    def next_logits(ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(row[None])[:, -1] for row in ids])  # (B, V)
    return next_logits


def run_variants(variants: dict, prompt: torch.Tensor, beam_width: int, new_tokens: int,
                 repeats: int) -> dict[str, tuple[float, list]]:
    """Best-of-``repeats`` seconds and the hypotheses of each variant, the variants interleaved so
    that a busy machine slows them alike; the minimum is the run least disturbed by other work."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    results = {}
    for _ in range(repeats):
        for name, make in variants.items():
            next_logits = make()  # a fresh KV cache for every run
            start = time.perf_counter()
            results[name] = beam_search(next_logits, prompt, beam_width, new_tokens)
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), results[name]) for name in variants}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--prompt-length", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: $COURSE_TORCH_THREADS, else 1)")
    args = parser.parse_args()
    args.threads = default_threads() if args.threads is None else args.threads
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    zoo_shape = ZOO["tiny_gpt"].model_config(vocab_size=ZOO["tiny_gpt"].tokenizer_vocab_size)
    config = dataclasses.replace(zoo_shape, context_length=args.prompt_length + args.new_tokens)
    model = TinyGPT(config).eval()
    prompt = torch.randint(0, config.vocab_size, (args.prompt_length,))
    print(f"TinyGPT d_model={config.d_model} n_layers={config.n_layers} vocab={config.vocab_size}, "
          f"{model.num_parameters():,} parameters; beam width {args.beam_width}, prompt {args.prompt_length} "
          f"tokens, {args.new_tokens} new tokens, {args.threads} threads, best of {args.repeats}")
    variants = {
        NAIVE: lambda: per_beam(model),
        BATCHED: lambda: model.as_next_logits(kv_cache=False),
        CACHED: lambda: model.as_next_logits(),
    }
    results = run_variants(variants, prompt, args.beam_width, args.new_tokens, args.repeats)
    reference = [h.token_ids.tolist() for h in results[NAIVE][1]]
    for name, (seconds, hypotheses) in results.items():
        assert [h.token_ids.tolist() for h in hypotheses] == reference, f"{name} returned different hypotheses"
        print(f"{name:30s} {seconds * 1000:9.1f} ms   best score {hypotheses[0].score:.4f}")
    naive, batched, cached = (results[name][0] for name in (NAIVE, BATCHED, CACHED))
    print(f"speedup of KV cache + batched beams over the naive loop: {naive / cached:.1f}x")
    print(f"speedup of KV cache over batched re-encoding: {batched / cached:.1f}x")


if __name__ == "__main__":
    main()
