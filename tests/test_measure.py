"""Tests for course_lib.measure: log-log slopes of exact power laws and against numpy's polyfit,
the largest created tensor against known shapes, and cpu_seconds against a scripted clock."""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import measure
from course_lib.attention import scaled_dot_product_attention, tiled_attention
from course_lib.costs import attention_scores_bytes
from course_lib.measure import (
    NOTHING_CREATED,
    auc,
    bootstrap_interval,
    cpu_seconds,
    largest_intermediate,
    loglog_slope,
    mcnemar_exact,
    wilson_interval,
)

# --------------------------------------------------------------------------------------------------
# loglog_slope


@pytest.mark.parametrize("c", [1e-6, 0.5, 3.0, 7e4])
@pytest.mark.parametrize("x", [[1, 2], [16, 32, 64, 128], [0.1, 0.7, 3.0, 250.0, 1e4]])
def test_slope_of_a_square_law_is_two(c: float, x: list[float]) -> None:
    assert loglog_slope(x, [c * v**2 for v in x]) == pytest.approx(2.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(p=st.floats(-3, 3), log_c=st.floats(-5, 5),
       x=st.lists(st.floats(0.01, 1e4), min_size=2, max_size=8, unique=True))
def test_slope_recovers_the_exponent_of_any_power_law(p: float, log_c: float, x: list[float]) -> None:
    if max(x) / min(x) < 1.01:  # nearly equal x: the slope is ill-conditioned
        return
    y = [math.exp(log_c) * v**p for v in x]
    assert loglog_slope(x, y) == pytest.approx(p, abs=1e-8)


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.tuples(st.floats(0.01, 1e4), st.floats(1e-6, 1e6)), min_size=2, max_size=8,
                     unique_by=lambda pair: pair[0]))
def test_slope_matches_numpy_polyfit_on_noisy_data(data: list[tuple[float, float]]) -> None:
    x, y = zip(*data)
    if max(x) / min(x) < 1.01:
        return
    reference = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert loglog_slope(x, y) == pytest.approx(reference, rel=1e-7, abs=1e-7)


def test_slope_accepts_arrays_and_tensors() -> None:
    x = np.array([1.0, 2.0, 4.0])
    assert loglog_slope(x, torch.tensor([5.0, 40.0, 320.0])) == pytest.approx(3.0)


@pytest.mark.parametrize("x, y, message", [
    ([1, -2, 3], [1, 2, 3], "x must hold positive finite numbers, got -2.0"),
    ([1, 2, 3], [1, 0, 3], "y must hold positive finite numbers, got 0.0"),
    ([1, 2, math.inf], [1, 2, 3], "x must hold positive finite numbers, got inf"),
    ([1, 2, 3], [1, math.nan, 3], "y must hold positive finite numbers, got nan"),
    ([1, 2, 3], [1, 2], "x and y must have the same length, got 3 and 2"),
    ([1], [1], "x must hold at least 2 values, got 1"),
    ([1, 2], [], "y must hold at least 2 values, got 0"),
    ([3, 3, 3], [1, 2, 3], "x must hold at least two different values"),
    ([[1, 2], [3, 4]], [1, 2], "x must be one-dimensional, got shape (2, 2)"),
    ([1, 2], ["a", "b"], "y must be a sequence of numbers"),
])
def test_slope_bad_inputs(x, y, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        loglog_slope(x, y)


# --------------------------------------------------------------------------------------------------
# largest_intermediate


@pytest.mark.parametrize("dtype, size", [(torch.float32, 4), (torch.float64, 8), (torch.bfloat16, 2)])
@pytest.mark.parametrize("n", [3, 50, 200])
def test_an_n_by_n_matrix_is_the_largest_tensor(n: int, dtype: torch.dtype, size: int) -> None:
    column = torch.randn(n, 1, dtype=dtype, generator=torch.Generator().manual_seed(n))
    largest = largest_intermediate(lambda: column @ column.T)  # (n, n)
    assert (largest.nbytes, largest.shape, largest.dtype) == (n * n * size, (n, n), dtype)
    assert largest.op == "aten.mm.default"


def test_float32_n_by_n_matrix_is_n_squared_times_4_bytes() -> None:
    n = 128
    assert largest_intermediate(lambda: torch.ones(n, n)).nbytes == n * n * 4


def test_views_and_in_place_results_are_not_new_tensors() -> None:
    x = torch.zeros(64, 64)
    assert largest_intermediate(lambda: x.add_(1).view(-1).expand(3, -1)[:, :10].T) == NOTHING_CREATED
    assert largest_intermediate(lambda: x.T.contiguous()).nbytes == x.nbytes  # a copy is new


def test_only_tensors_created_inside_fn_count() -> None:
    big, small = torch.randn(100, 100), torch.randn(10)
    largest = largest_intermediate(lambda: small * 2 + big[0, :10])
    assert (largest.nbytes, largest.shape) == (40, (10,))


def test_every_tensor_of_a_multiple_result_counts() -> None:
    values = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    largest = largest_intermediate(lambda: torch.sort(values))  # float32 values, int64 indices
    assert (largest.nbytes, largest.dtype) == (8000, torch.int64)


def test_tensors_built_from_python_data_count() -> None:
    largest = largest_intermediate(lambda: torch.tensor([[1.0, 2.0, 3.0]] * 5, dtype=torch.float64))
    assert (largest.nbytes, largest.shape) == (120, (5, 3))


def test_nothing_created() -> None:
    assert largest_intermediate(lambda: None) == NOTHING_CREATED
    assert NOTHING_CREATED.nbytes == 0


def test_naive_attention_builds_the_score_matrix_and_tiled_attention_does_not() -> None:
    n, d, block = 128, 16, 32
    q, k, v = torch.randn(3, n, d, generator=torch.Generator().manual_seed(1)).unbind(0)
    naive = largest_intermediate(lambda: scaled_dot_product_attention(q, k, v))
    tiled = largest_intermediate(lambda: tiled_attention(q, k, v, block_size=block))
    assert (naive.nbytes, naive.shape) == (attention_scores_bytes(n), (n, n))
    assert (tiled.nbytes, tiled.shape) == (n * d * 4, (n, d))  # the output: larger than a 32 x 32 tile


def test_largest_intermediate_sees_the_backward_pass() -> None:
    table = torch.randn(1000, 8, requires_grad=True)
    rows = torch.tensor([1, 5, 7])
    assert largest_intermediate(lambda: table[rows].sum()).shape == (3, 8)  # forward: 3 rows
    largest = largest_intermediate(lambda: table[rows].sum().backward())  # a dense gradient
    assert (largest.nbytes, largest.shape) == (1000 * 8 * 4, (1000, 8))


def test_largest_intermediate_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="fn must be callable with no arguments, got Tensor"):
        largest_intermediate(torch.ones(2))


# --------------------------------------------------------------------------------------------------
# cpu_seconds


class ScriptedClock:
    """A fake thread clock: each call of ``work`` advances it by the next scripted duration."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def read(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1


UNIT = 2.0**-7  # a binary fraction: sums of it are exact, so the budget is hit exactly


@pytest.mark.parametrize("budget_units, min_runs, max_runs, timed_runs", [
    (5, 1, 50, 5),  # stops as soon as the budget is spent
    (5, 8, 50, 8),  # min_runs wins over the budget
    (1000, 1, 7, 7),  # max_runs wins over the budget
    (0.5, 1, 50, 1),  # one call already exceeds the budget
])
def test_cpu_seconds_spends_its_budget(monkeypatch, budget_units: float, min_runs: int, max_runs: int,
                                       timed_runs: int) -> None:
    clock = ScriptedClock([UNIT])
    monkeypatch.setattr(measure.time, "thread_time", clock.read)
    cpu_seconds(clock.work, budget=budget_units * UNIT, min_runs=min_runs, max_runs=max_runs)
    assert clock.calls == 1 + timed_runs  # one warm-up call


def test_cpu_seconds_returns_the_fastest_timed_call(monkeypatch) -> None:
    clock = ScriptedClock([UNIT / 8, 3 * UNIT, UNIT, 2 * UNIT])  # the warm-up is the fastest: ignored
    monkeypatch.setattr(measure.time, "thread_time", clock.read)
    assert cpu_seconds(clock.work, budget=6 * UNIT) == UNIT
    assert clock.calls == 4


def test_cpu_seconds_of_real_work_is_a_positive_float() -> None:
    a = torch.randn(96, 96, generator=torch.Generator().manual_seed(0))
    seconds = cpu_seconds(lambda: a @ a, budget=0.005)
    assert isinstance(seconds, float) and 0 < seconds < math.inf


def test_cpu_seconds_does_not_count_waiting() -> None:
    seconds = cpu_seconds(lambda: time.sleep(0.01), min_runs=1, max_runs=2)
    assert seconds < 0.005  # a sleeping thread uses (almost) no CPU time


def test_cpu_seconds_runs_torch_on_one_thread_and_restores_it() -> None:
    before, seen = torch.get_num_threads(), []
    torch.set_num_threads(2)
    try:
        cpu_seconds(lambda: seen.append(torch.get_num_threads()), budget=1e-9, min_runs=1)
        assert seen == [1, 1] and torch.get_num_threads() == 2

        def fail() -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            cpu_seconds(fail)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"budget": 0}, ValueError, "budget must be positive, got 0.0"),
    ({"budget": -0.1}, ValueError, "budget must be positive, got -0.1"),
    ({"budget": math.inf}, ValueError, "budget must be a finite number, got inf"),
    ({"budget": math.nan}, ValueError, "budget must be a finite number, got nan"),
    ({"budget": True}, TypeError, "budget must be a real number, got bool True"),
    ({"budget": "0.1"}, TypeError, "budget must be a real number, got str '0.1'"),
    ({"min_runs": 0}, ValueError, "min_runs must be a positive integer, got 0"),
    ({"min_runs": 2.0}, TypeError, "min_runs must be an integer, got float 2.0"),
    ({"max_runs": False}, TypeError, "max_runs must be an integer, got False"),
    ({"min_runs": 5, "max_runs": 4}, ValueError, "max_runs must be at least min_runs = 5, got 4"),
])
def test_cpu_seconds_bad_inputs(kwargs: dict, error: type[Exception], message: str) -> None:
    calls = []
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        cpu_seconds(lambda: calls.append(1), **kwargs)
    assert calls == []  # rejected before fn runs


def test_cpu_seconds_takes_numpy_run_counts() -> None:
    calls = []
    cpu_seconds(lambda: calls.append(1), budget=np.float64(1e-9), min_runs=np.int64(2), max_runs=np.int64(2))
    assert len(calls) == 3  # one warm-up call, then exactly two timed calls


def test_cpu_seconds_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="fn must be callable with no arguments, got float"):
        cpu_seconds(0.5)


# --- wilson_interval ---------------------------------------------------------------------------------


def test_wilson_interval_matches_the_formula_and_a_published_value():
    # Brown, Cai & DasGupta (2001) discuss n = 100: for 55 successes the score interval is about (0.452, 0.644).
    low, high = wilson_interval(55, 100)
    assert low == pytest.approx(0.4524, abs=5e-4) and high == pytest.approx(0.6438, abs=5e-4)
    z, n, k = 1.96, 40, 7  # the formula written out independently
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert wilson_interval(k, n) == pytest.approx((centre - half, centre + half), rel=1e-12)


def test_wilson_interval_stays_in_zero_one_and_narrows_with_more_trials():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert 0 < wilson_interval(0, 10)[1] < 0.35 and wilson_interval(10, 10)[0] > 0.65
    narrow, wide = wilson_interval(500, 1000), wilson_interval(5, 10)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 5


@pytest.mark.parametrize("args, error, message", [
    ((11, 10), ValueError, r"successes must be an integer in \[0, 10\], got 11"),
    ((-1, 10), ValueError, r"successes must be an integer in \[0, 10\], got -1"),
    ((1, 0), ValueError, "trials must be a positive integer, got 0"),
    ((1.5, 10), TypeError, "successes"),
])
def test_wilson_interval_rejects_bad_counts(args, error, message):
    with pytest.raises(error, match=message):
        wilson_interval(*args)


# --- mcnemar_exact -----------------------------------------------------------------------------------


def _binomial_two_sided(b: int, c: int) -> float:
    # Independent reference: sum the probabilities of every outcome no more likely than the observed one.
    n = b + c
    if n == 0:
        return 1.0
    probs = torch.distributions.Binomial(n, torch.tensor(0.5, dtype=torch.float64)).log_prob(
        torch.arange(n + 1, dtype=torch.float64)).exp()
    return float(probs[probs <= probs[b] * (1 + 1e-9)].sum())


@pytest.mark.parametrize("b, c", [(29, 14), (14, 29), (0, 5), (3, 3), (10, 0), (1, 2), (40, 25)])
def test_mcnemar_exact_matches_the_binomial_distribution(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(min(1.0, _binomial_two_sided(b, c)), rel=1e-9)


def test_mcnemar_exact_worked_values():
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # all five discordant pairs one way: 2 * (1/2)^5
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(29, 14) == pytest.approx(0.0320, abs=5e-4)
    assert mcnemar_exact(np.int64(2), 7) == mcnemar_exact(7, 2)  # numpy ints accepted, symmetric


@pytest.mark.parametrize("args, error, message", [
    ((-1, 3), ValueError, "only_first must be a non-negative integer, got -1"),
    ((3, 1.0), TypeError, "only_second"),
    ((True, 3), TypeError, "only_first"),
])
def test_mcnemar_exact_rejects_bad_counts(args, error, message):
    with pytest.raises(error, match=message):
        mcnemar_exact(*args)


# --- auc and bootstrap_interval ---------------------------------------------------------------------


def _pairwise_auc(positives, negatives) -> float:
    # Every positive against every negative, ties half: the definition, O(P N).
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def test_auc_matches_the_pairwise_definition():
    assert auc([3.0, 2.0, 2.0], [2.0, 1.0]) == pytest.approx(5 / 6)  # one tie counts half, twice
    assert auc([5, 6], [1, 2, 3]) == 1.0 and auc([1, 2, 3], [5, 6]) == 0.0
    assert auc([1.0, 1.0], [1.0]) == 0.5
    rng = np.random.default_rng(0)
    for _ in range(20):
        pos, neg = rng.integers(0, 6, rng.integers(1, 30)), rng.integers(0, 6, rng.integers(1, 30))  # many ties
        assert auc(pos, neg) == pytest.approx(_pairwise_auc(pos, neg), abs=1e-12)


def test_auc_bad_input():
    with pytest.raises(ValueError, match=r"negatives must be a non-empty one-dimensional sequence, got shape \(0,\)"):
        auc([1.0], [])
    with pytest.raises(ValueError, match="positives must hold finite numbers, got nan"):
        auc([float("nan")], [1.0])
    with pytest.raises(ValueError, match="positives must be a sequence of numbers"):
        auc(["a"], [1.0])


def test_bootstrap_interval_is_seeded_and_covers_the_statistic():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    low, high = bootstrap_interval(auc, pos, neg, resamples=400, seed=3)
    assert low < auc(pos, neg) < high
    assert (low, high) == bootstrap_interval(auc, pos, neg, resamples=400, seed=3)
    # The normal theory AUC of two unit normals one apart is Phi(1 / sqrt 2) = 0.760; n = 300 each.
    assert low < 0.760 < high and 0.03 < high - low < 0.12
    # The mean of a sample: the percentile interval is close to mean +- 1.96 standard errors.
    x = rng.normal(0.0, 1.0, 2000)
    low, high = bootstrap_interval(np.mean, x, resamples=2000)
    half = 1.96 * x.std() / math.sqrt(x.size)
    assert low == pytest.approx(x.mean() - half, abs=0.01) and high == pytest.approx(x.mean() + half, abs=0.01)


def test_bootstrap_interval_bad_input():
    with pytest.raises(ValueError, match="samples must hold at least one sample"):
        bootstrap_interval(np.mean)
    with pytest.raises(ValueError, match=r"level must be in \(0(\.0)?, 1(\.0)?\)"):
        bootstrap_interval(np.mean, [1.0, 2.0], level=1.0)
    with pytest.raises(TypeError, match="statistic must be a callable"):
        bootstrap_interval(3, [1.0])
    with pytest.raises(ValueError, match="resamples must be a positive integer, got 0"):
        bootstrap_interval(np.mean, [1.0], resamples=0)
