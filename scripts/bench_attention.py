"""Benchmarks of course_lib.attention on the CPU; prints two tables.

1. ``MultiHeadAttention`` forward against ``torch.nn.MultiheadAttention`` with the same weights at
   (B, T, d_model) = (8, 256, 256), 8 heads, under ``torch.no_grad``: median wall time of repeated
   runs (the two modules alternate) and their ratio, once without attention weights (our module
   then calls PyTorch's fused ``scaled_dot_product_attention``, torch its fused fast path) and once
   with per-head weights (every step is our code).
2. Peak memory of naive attention (``scaled_dot_product_attention``, which builds the n x n score
   matrix) against ``tiled_attention`` as n grows. Each measurement runs in a fresh subprocess that
   resets the kernel's peak-RSS counter (Linux ``/proc/self/clear_refs``) after building its
   inputs, so the number is the extra resident memory the call needed: for naive attention it
   grows as n^2 (log-log slope ~2); for tiled attention it is the output (linear in n) plus a
   work space set by the block size, not by n.

Usage: python scripts/bench_attention.py [--repeats 30] [--threads N] [--sizes 512 1024 2048 4096]
(threads default to course_lib.notebook.runtime.default_threads()).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from course_lib.attention import (
    MultiHeadAttention,
    scaled_dot_product_attention,
    tiled_attention,
    to_torch_multihead_attention,
)
from course_lib.costs import attention_scores_bytes
from course_lib.notebook.runtime import default_threads

MIB = 2**20
N_HEADS, HEAD_DIM = 8, 64
BLOCK_SIZE = 128


def paired_medians_ms(fn_a, fn_b, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median wall times (ms) of fn_a() and fn_b(), run alternately so that both see the same
    background load."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times_a), 1000 * statistics.median(times_b)


def bench_mha(repeats: int) -> None:
    torch.manual_seed(0)
    B, T, d, h = 8, 256, 256, 8
    ours = MultiHeadAttention(d, h).eval()
    ref = to_torch_multihead_attention(ours)
    x = torch.randn(B, T, d)
    print(f"MultiHeadAttention vs torch.nn.MultiheadAttention, (B, T, d) = ({B}, {T}, {d}), "
          f"{h} heads, {torch.get_num_threads()} threads, median of {repeats} runs")
    print(f"{'weights':<26}{'ours (ms)':>11}{'torch (ms)':>12}{'ratio':>8}")
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x, x, x)[0])
        cases = [
            ("none (fused kernel)", lambda: ours(x, need_weights=False),
             lambda: ref(x, x, x, need_weights=False)),
            ("per head (our code)", lambda: ours(x),
             lambda: ref(x, x, x, average_attn_weights=False)),
        ]
        for name, run_ours, run_ref in cases:
            t_ours, t_ref = paired_medians_ms(run_ours, run_ref, repeats)
            print(f"{name:<26}{t_ours:>11.2f}{t_ref:>12.2f}{t_ours / t_ref:>8.2f}")


def _status_kib(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1))


def measure_child(method: str, n: int) -> None:
    """Run one attention call on (1, N_HEADS, n, HEAD_DIM) inputs; print the extra peak RSS
    (bytes) and the seconds it took."""
    q, k, v = (torch.randn(1, N_HEADS, n, HEAD_DIM, generator=torch.Generator().manual_seed(s))
               for s in range(3))
    run = {"naive": lambda: scaled_dot_product_attention(q, k, v)[0],
           "tiled": lambda: tiled_attention(q, k, v, BLOCK_SIZE)}[method]
    small = tuple(t[:, :, :BLOCK_SIZE] for t in (q, k, v))  # warm up the code paths on small inputs
    scaled_dot_product_attention(*small)
    tiled_attention(*small, BLOCK_SIZE)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    baseline = _status_kib("VmRSS")
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(1024 * (_status_kib("VmHWM") - baseline), seconds)


def peak_in_subprocess(method: str, n: int) -> tuple[int, float]:
    result = subprocess.run([sys.executable, __file__, "--threads", str(torch.get_num_threads()),
                             "--child", method, str(n)],
                            capture_output=True, text=True, check=True)
    peak, seconds = result.stdout.split()
    return int(peak), float(seconds)


def slope(xs: list[int], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1.0)) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def bench_memory(sizes: list[int]) -> None:
    if not Path("/proc/self/clear_refs").exists():
        print("peak-memory table skipped: it needs Linux's /proc/self/clear_refs")
        return
    print(f"\nPeak extra memory (MiB) of one attention call, inputs (1, {N_HEADS}, n, {HEAD_DIM}), "
          f"tiled block {BLOCK_SIZE}; one fresh process per cell")
    print(f"{'n':>6}{'scores':>9}{'output':>9}{'naive':>9}{'tiled':>9}{'tiled - output':>16}"
          f"{'naive (s)':>11}{'tiled (s)':>11}")
    naive_peaks, tiles = [], []
    for n in sizes:
        naive, t_naive = peak_in_subprocess("naive", n)
        tiled, t_tiled = peak_in_subprocess("tiled", n)
        scores = attention_scores_bytes(n, n_heads=N_HEADS)  # the n x n matrix naive builds
        output = N_HEADS * n * HEAD_DIM * 4  # what any exact method returns
        naive_peaks.append(naive)
        tiles.append(tiled - output)
        print(f"{n:>6}{scores / MIB:>9.1f}{output / MIB:>9.1f}{naive / MIB:>9.1f}"
              f"{tiled / MIB:>9.1f}{(tiled - output) / MIB:>16.1f}{t_naive:>11.3f}{t_tiled:>11.3f}")
    print(f"naive: log-log slope of peak vs n {slope(sizes, naive_peaks):.2f} (quadratic); "
          f"tiled: the output (linear) plus {min(tiles) / MIB:.1f}-{max(tiles) / MIB:.1f} MiB of "
          f"block-sized work space whatever n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(default_threads() if args.threads is None else args.threads)
    if args.child:
        measure_child(args.child[0], int(args.child[1]))
        return
    bench_mha(args.repeats)
    bench_memory(args.sizes)


if __name__ == "__main__":
    main()
