"""Benchmark of course_lib.adaptive_softmax against torch.nn.AdaptiveLogSoftmaxWithLoss on the CPU.

1. Time: ``AdaptiveLogSoftmax`` and torch's module with the same weights (our module loads torch's
   state dict), on a batch of tokens whose targets are drawn from a Zipf distribution over the
   vocabulary. Three cases: the loss alone (``forward`` under ``torch.no_grad``), a training step
   (``forward`` and ``backward``), and every class's log-probability (``log_prob``). Median wall
   time of repeated runs, the two modules alternating so that both see the same background load,
   and the ratio ours / torch (the target is at most 1.5).
2. FLOPs: the expected matmul FLOPs per token of the training forward (`adaptive_softmax_flops`:
   the head for every token, each cluster for the share of targets in it) against a full softmax
   (`full_softmax_flops`), and the same count measured with `count_flops` on the batch, whose
   targets follow the Zipf frequencies only approximately.

Usage: python scripts/bench_adaptive_softmax.py [--repeats 20] [--threads N] [--tokens 1024]
[--in-features 512] [--n-classes 20000] [--cutoffs 1000 5000] [--div-value 4]
(threads default to course_lib.notebook.runtime.default_threads()).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from course_lib.adaptive_softmax import (
    AdaptiveLogSoftmax,
    adaptive_softmax_flops,
    full_softmax_flops,
    zipf_probabilities,
)
from course_lib.measure import count_flops
from course_lib.notebook.runtime import default_threads


def alternating_medians_ms(ours: Callable[[], object], theirs: Callable[[], object], repeats: int,
                           warmup: int = 3) -> tuple[float, float]:
    """Median wall times in ms of ours() and theirs(), called in turn after a few warm-up calls."""
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    for run in range(warmup + repeats):
        for name, fn in (("ours", ours), ("theirs", theirs)):
            start = time.perf_counter()
            fn()
            if run >= warmup:
                times[name].append(1000 * (time.perf_counter() - start))
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def training_step(module: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    module(x, target).loss.backward()


def bench_time(args: argparse.Namespace, x: torch.Tensor, target: torch.Tensor) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(args.in_features, args.n_classes, args.cutoffs,
                                                 div_value=args.div_value)
    ours = AdaptiveLogSoftmax(args.in_features, args.n_classes, args.cutoffs, div_value=args.div_value)
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(x, target).loss, theirs(x, target).loss)
    print(f"AdaptiveLogSoftmax vs torch.nn.AdaptiveLogSoftmaxWithLoss: {len(x)} tokens, in_features "
          f"{args.in_features}, {args.n_classes} classes, cutoffs {args.cutoffs}, div_value "
          f"{args.div_value:g}, Zipf targets; {torch.get_num_threads()} threads, median of "
          f"{args.repeats} runs")
    print(f"{'case':<28}{'ours (ms)':>11}{'torch (ms)':>12}{'ratio':>8}")

    def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return fn()
        return run

    cases = [
        ("loss (forward, no grad)", no_grad(lambda: ours(x, target)), no_grad(lambda: theirs(x, target))),
        ("training step (fwd + bwd)", lambda: training_step(ours, x, target),
         lambda: training_step(theirs, x, target)),
        ("log_prob (all classes)", no_grad(lambda: ours.log_prob(x)), no_grad(lambda: theirs.log_prob(x))),
    ]
    for name, run_ours, run_theirs in cases:
        t_ours, t_theirs = alternating_medians_ms(run_ours, run_theirs, args.repeats)
        print(f"{name:<28}{t_ours:>11.2f}{t_theirs:>12.2f}{t_ours / t_theirs:>8.2f}")


def bench_flops(args: argparse.Namespace, x: torch.Tensor, target: torch.Tensor) -> None:
    probs = zipf_probabilities(args.n_classes)
    expected = adaptive_softmax_flops(args.in_features, args.cutoffs, probs, args.div_value)
    full = full_softmax_flops(args.in_features, args.n_classes)
    module = AdaptiveLogSoftmax(args.in_features, args.n_classes, args.cutoffs, div_value=args.div_value)
    with torch.no_grad():
        measured = count_flops(lambda: module(x, target)) / len(x)
    head_share = float(probs[:args.cutoffs[0]].sum())
    print(f"\nMatmul FLOPs per token, Zipf (exponent 1) vocabulary of {args.n_classes} classes; the "
          f"shortlist of {args.cutoffs[0]} holds {head_share:.1%} of the probability mass")
    print(f"full softmax                {full / 1e6:>10.3f} MFLOP")
    print(f"adaptive, expected          {expected / 1e6:>10.3f} MFLOP   ratio to full {expected / full:.3f}")
    print(f"adaptive, measured on batch {measured / 1e6:>10.3f} MFLOP   ratio to full {measured / full:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--in-features", type=int, default=512)
    parser.add_argument("--n-classes", type=int, default=20_000)
    parser.add_argument("--cutoffs", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--div-value", type=float, default=4.0)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.tokens < 1:
        parser.error(f"--repeats and --tokens must be >= 1, got {args.repeats} and {args.tokens}")
    torch.set_num_threads(default_threads() if args.threads is None else args.threads)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.tokens, args.in_features, generator=generator)  # (N, d)
    target = torch.multinomial(zipf_probabilities(args.n_classes), args.tokens, replacement=True,
                               generator=generator)  # (N,)
    bench_time(args, x, target)
    bench_flops(args, x, target)


if __name__ == "__main__":
    main()
