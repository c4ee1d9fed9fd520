"""Measuring code on the CPU: how long it takes, how its cost grows, the largest tensor it creates.

- ``cpu_seconds(fn)``: the time of one call of ``fn()``, in CPU seconds of the calling thread, with
  PyTorch on one thread, the best of several calls within a time budget. Why CPU time on one
  thread: on a small shared machine (two cores, other programs running) wall-clock time is erratic,
  because every pause of our thread while another program runs is counted. ``time.thread_time``
  counts only the time our thread actually spent computing. It sees only this thread, so PyTorch
  must not hand work to its other threads: it runs on one thread while measured. The minimum of
  several calls is the call least disturbed by what remains (caches and memory bandwidth shared
  with other programs).
- ``loglog_slope(x, y)``: the least-squares slope of ``log y`` against ``log x``. A cost that grows
  as ``c x^p`` is a straight line of slope ``p`` on a log-log plot, so this recovers ``p`` from
  measurements.
- ``wilson_interval(successes, trials)``: a 95% confidence interval for a rate measured on a finite
  sample (Wilson's score interval: it stays inside [0, 1] and behaves at 0 and at n successes),
  for statements such as "55 of 100 documents were valid".
- ``mcnemar_exact(only_first, only_second)``: the two-sided exact McNemar p-value for two methods
  scored right or wrong on the same questions, from the questions only one of them gets right
  (paired data: the same questions under two conditions).
- ``auc(positives, negatives)``: the area under the ROC curve of a score that should be higher on
  the positives, computed as the probability that a random positive outscores a random negative
  (ties count half: the Mann-Whitney U statistic over the product of the two sizes).
- ``bootstrap_interval(statistic, *samples)``: a percentile bootstrap interval for any statistic of
  one or more independent samples (each resampled with replacement, seeded), e.g. for an AUC.
- ``largest_intermediate(fn)``: the size in bytes, shape, dtype and operation of the largest tensor
  that calling ``fn()`` creates. ``LargestTensor``, a PyTorch dispatch mode, sees the result of
  every operation that runs while it is active and keeps the largest new one; views and in-place
  results share memory with their inputs and are not counted.

Left out: corrections for testing several comparisons, GPU timing (kernels run asynchronously:
timing them needs CUDA events and synchronisation), wall-clock throughput with several threads,
statistics beyond the minimum, bootstrap refinements (BCa, studentised) and ROC curves themselves,
peak memory (the process's peak RSS, the sum of the tensors alive at the same time, allocator
caching) and memory used inside a single kernel, which no operation returns (the workspace of a
fused kernel, such as PyTorch's own CPU attention).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch._ops import OpOverload
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from course_lib.validation import (
    callable_arg,
    int_in_range,
    nonnegative_int,
    number_in_range,
    positive_int,
    positive_number,
)

__all__ = [
    "cpu_seconds", "loglog_slope", "wilson_interval", "mcnemar_exact", "auc", "bootstrap_interval", "CreatedTensor",
    "NOTHING_CREATED",
    "LargestTensor", "largest_intermediate", "count_flops",
]

_NO_ARGUMENTS = "callable with no arguments"


# --------------------------------------------------------------------------------------------------
# Time


def cpu_seconds(fn: Callable[[], object], budget: float = 0.05, min_runs: int = 3,
                max_runs: int = 50) -> float:
    """Fastest of several calls of ``fn()``, in CPU seconds of this thread, with torch on one thread.

    One warm-up call is not timed. Then ``fn()`` is called and timed with ``time.thread_time``
    until at least ``min_runs`` calls are done and their CPU time adds up to ``budget`` seconds or
    more, or ``max_runs`` calls are done: the timed calls overrun the budget by at most one call
    (or by what ``min_runs`` demands). Torch's thread count is set to 1 for the measurement and
    restored afterwards, even if ``fn`` raises.
    """
    callable_arg(fn, "fn", _NO_ARGUMENTS)
    budget = positive_number(budget, "budget")  # seconds
    min_runs = positive_int(min_runs, "min_runs")
    max_runs = positive_int(max_runs, "max_runs")
    if max_runs < min_runs:
        raise ValueError(f"max_runs must be at least min_runs = {min_runs}, got {max_runs}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thread_time sees this thread only: no work may go to other threads
    try:
        fn()  # warm-up: first-call costs (allocations, lazy initialisation) are not the cost of fn
        best, spent, runs = math.inf, 0.0, 0
        while runs < min_runs or (spent < budget and runs < max_runs):
            start = time.thread_time()
            fn()
            elapsed = time.thread_time() - start
            best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
        return best
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# Growth


def _positive_values(values: Sequence[float], name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size < 2:
        raise ValueError(f"{name} must hold at least 2 values, got {array.size}")
    bad = array[~(np.isfinite(array) & (array > 0))]
    if bad.size:
        raise ValueError(f"{name} must hold positive finite numbers, got {float(bad[0])!r}")
    return array


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent p of a cost ``y = c x^p``.

    x and y: sequences of positive finite numbers, of equal length >= 2; x must not be all equal.
    """
    log_x, log_y = np.log(_positive_values(x, "x")), np.log(_positive_values(y, "y"))
    if log_x.size != log_y.size:
        raise ValueError(f"x and y must have the same length, got {log_x.size} and {log_y.size}")
    centred_x = log_x - log_x.mean()
    spread = float(centred_x @ centred_x)
    if spread == 0:
        raise ValueError(f"x must hold at least two different values, got {x!r}")
    return float(centred_x @ (log_y - log_y.mean())) / spread


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a binomial rate: (low, high), 95% for the default ``z``.

    ``successes`` of ``trials`` independent draws; the interval is centred on a shrunk estimate
    ``(k + z^2/2) / (n + z^2)``, so it never leaves [0, 1] (Wilson 1927; Brown, Cai & DasGupta 2001
    recommend it over the normal approximation for small n or rates near 0 or 1). Left out: exact
    (Clopper-Pearson) intervals, and dependence between draws.
    """
    n = positive_int(trials, "trials")
    k = int_in_range(successes, "successes", 0, n)
    z = positive_number(z, "z")
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes of two methods on the same items.

    Only the discordant items count: ``only_first`` right under the first method alone,
    ``only_second`` under the second alone. If the methods were equally good, each discordant item
    would go either way with probability 1/2, so the smaller count is a binomial tail:
    ``p = min(1, 2 P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)`` (McNemar 1947; the exact
    form avoids the chi-squared approximation, poor below about 25 discordant items). No
    discordant item gives 1. Left out: mid-p and continuity-corrected variants.
    """
    b = nonnegative_int(only_first, "only_first")
    c = nonnegative_int(only_second, "only_second")
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n  # exact integers, then one division
    return min(1.0, 2 * tail)


def _scores(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional sequence, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers, got {float(array[~np.isfinite(array)][0])!r}")
    return array


def auc(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: P(a random positive scores higher than a random negative), ties half.

    0.5 is chance, 1 a score that puts every positive above every negative. Computed from the ranks
    of the pooled scores (tied scores share their mean rank), in O(n log n).
    """
    pos, neg = _scores(positives, "positives"), _scores(negatives, "negatives")
    pooled = np.concatenate([pos, neg])  # (P + N,)
    _, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based mean rank of each distinct score
    rank_sum = mean_rank[inverse[:pos.size]].sum()
    return float((rank_sum - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def bootstrap_interval(statistic: Callable[..., float], *samples: Sequence[float] | np.ndarray,
                       resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*samples)``: (low, high).

    Each sample is resampled with replacement to its own size, independently (so the two groups of
    an AUC keep their sizes); the interval holds the central ``level`` of the ``resamples`` values.
    Seeded by ``seed`` (a NumPy generator), so the same call gives the same interval.
    """
    statistic = callable_arg(statistic, "statistic", "a callable of the samples returning a number")
    if not samples:
        raise ValueError("samples must hold at least one sample, got none")
    arrays = [_scores(sample, f"samples[{i}]") for i, sample in enumerate(samples)]
    resamples = positive_int(resamples, "resamples")
    level = number_in_range(level, "level", 0.0, 1.0, low_open=True, high_open=True)
    rng = np.random.default_rng(int_in_range(seed, "seed", 0, 2**63 - 1))
    values = [statistic(*(a[rng.integers(0, a.size, a.size)] for a in arrays)) for _ in range(resamples)]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------------
# Memory


@dataclass(frozen=True)
class CreatedTensor:
    """A tensor that an operation created: its size in bytes, shape, dtype and the operation."""

    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype | None
    op: str


NOTHING_CREATED = CreatedTensor(nbytes=0, shape=(), dtype=None, op="")


class LargestTensor(TorchDispatchMode):
    """While active, keeps the largest tensor that any operation creates, in ``self.largest``.

    Every PyTorch operation passes through the dispatcher, which hands it to this mode: it runs the
    operation and looks at the tensors it returns. A returned tensor that shares memory with an
    input (a view such as a transpose, an in-place result) is not new and is skipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.largest = NOTHING_CREATED

    def __torch_dispatch__(self, func: OpOverload, types: Sequence[type], args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)  # run the operation itself
        inputs = _tensors((args, kwargs))
        if func is torch.ops.aten.lift_fresh.default:  # torch.tensor(data): its input is new as well
            inputs = []
        existing = {_memory(t) for t in inputs}
        for t in _tensors(out):  # one tensor, or several (values and indices, ...)
            if _memory(t) not in existing and t.nbytes > self.largest.nbytes:
                self.largest = CreatedTensor(t.nbytes, tuple(t.shape), t.dtype, str(func))
        return out


def _tensors(tree: Any) -> list[torch.Tensor]:
    """The tensors in a nested structure of tuples, lists and dicts."""
    return [leaf for leaf in tree_flatten(tree)[0] if isinstance(leaf, torch.Tensor)]


def _memory(t: torch.Tensor) -> int:
    """Address of the memory block that holds t's values (shared by all views of it)."""
    return t.untyped_storage().data_ptr()


def largest_intermediate(fn: Callable[[], object]) -> CreatedTensor:
    """The largest tensor created while calling ``fn()``: its bytes, shape, dtype and operation.

    Counts every tensor that an operation returns, including fn's own result, and only new memory
    (not views of existing tensors). Returns ``NOTHING_CREATED`` (0 bytes) if fn creates no tensor.
    """
    callable_arg(fn, "fn", _NO_ARGUMENTS)
    with LargestTensor() as spy:
        fn()
    return spy.largest


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix multiplications that calling ``fn()`` performs, forward and backward alike.

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add of a matmul
    (``mm``, ``addmm``, ``bmm``, convolutions, ...); elementwise operations, bias additions and
    reductions count 0, and so do kernels the counter does not know (PyTorch's fused CPU attention).
    Wrap a forward pass, a ``loss.backward()`` or a `vjp` of a tensor function. PyTorch's counter
    cannot follow ``torch.autograd.grad`` through an ``nn.Module`` that ``fn`` itself calls (as in
    ``vjp(module, ...)``): run such a module outside ``fn`` and count the ``backward()`` alone.
    """
    callable_arg(fn, "fn", _NO_ARGUMENTS)
    from torch.utils.flop_counter import (
        FlopCounterMode,  # imported here: slow the first time
    )

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
