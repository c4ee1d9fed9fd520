"""Tests for course_lib.systems: the seeded simulation agrees with the exact expectation, goodput
falls with cluster size and rises with faster recovery, Young's interval is near the optimum,
edge cases and bad input."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from course_lib.registry import cited
from course_lib.systems import (
    GoodputRun,
    Recovery,
    checkpoint_restart,
    cluster_mtbf,
    expected_goodput,
    expected_wall_time,
    in_memory_redundancy,
    simulate_goodput,
    young_interval,
)

CHIP_MTBF = 50_000.0  # hours per chip between failures: an illustration, not a cited number
STEP = 10 / 3600  # a 10-second training step, in hours


def test_cluster_mtbf_falls_as_one_over_the_chips():
    assert cluster_mtbf(1, CHIP_MTBF) == CHIP_MTBF
    assert cluster_mtbf(4096, CHIP_MTBF) == pytest.approx(12.207, abs=1e-3)
    assert cluster_mtbf(np.int64(8192), CHIP_MTBF) == cluster_mtbf(4096, CHIP_MTBF) / 2


def test_young_interval():
    assert young_interval(0.1, 5.0) == pytest.approx(1.0)
    assert checkpoint_restart(0.1, 0.5, 5.0).interval == pytest.approx(1.0)
    assert checkpoint_restart(0.1, 0.5, interval=2.0) == Recovery("checkpoint and restart", 2.0, 0.1, 0.5)


def test_youngs_interval_is_near_the_exact_optimum_when_saves_are_short():
    mtbf, save = 10.0, 0.05
    intervals = np.geomspace(0.05, 10, 4001)
    goodputs = [expected_goodput(checkpoint_restart(save, 0.2, interval=t), mtbf) for t in intervals]
    best = float(intervals[int(np.argmax(goodputs))])
    young = young_interval(save, mtbf)
    assert young == pytest.approx(best, rel=0.05)
    assert expected_goodput(checkpoint_restart(save, 0.2, mtbf), mtbf) > max(goodputs) - 1e-3


def test_expected_goodput_by_hand():
    recovery = checkpoint_restart(0.1, 0.5, interval=1.0)
    m = 4.0
    by_hand = 1.0 / (m * math.exp(0.5 / m) * (math.exp(1.1 / m) - 1))
    assert expected_goodput(recovery, m) == pytest.approx(by_hand, rel=1e-12)
    assert expected_wall_time(recovery, m, 10.0) == pytest.approx(10 / by_hand, rel=1e-12)
    # a last, shorter segment: 2.5 = 2 intervals + 0.5
    last = m * math.exp(0.5 / m) * (math.exp(0.6 / m) - 1)
    assert expected_wall_time(recovery, m, 2.5) == pytest.approx(2 / by_hand + last, rel=1e-12)


@pytest.mark.parametrize("recovery", [checkpoint_restart(0.1, 0.5, cluster_mtbf(16384, CHIP_MTBF)),
                                      in_memory_redundancy(STEP, 0.05)], ids=["checkpoint", "in-memory"])
def test_simulation_agrees_with_the_expectation(recovery):
    """20,000 to 31,000 failures per run: over 10 seeds the runs spread by 0.15% (checkpoint) and
    0.01% (in memory) around the expectation; the tolerance is 1%."""
    mtbf = cluster_mtbf(16384, CHIP_MTBF)  # about 3 hours
    work = 20_000 * mtbf
    runs = [simulate_goodput(recovery, mtbf, work, seed=seed) for seed in range(3)]
    goodputs = [run.goodput for run in runs]
    assert statistics.stdev(goodputs) < 0.003 * statistics.mean(goodputs)  # the noise
    for run in runs:
        assert run.goodput == pytest.approx(expected_goodput(recovery, mtbf), rel=0.01)
        assert run.wall_time == pytest.approx(expected_wall_time(recovery, mtbf, work), rel=0.01)
        assert run.failures == pytest.approx(run.wall_time / mtbf, rel=0.05)
        assert run.wall_time == pytest.approx(work + run.save_time + run.restart_time + run.lost_time, rel=1e-9)


def test_simulation_is_seeded():
    recovery, mtbf = checkpoint_restart(0.1, 0.5, 3.0), 3.0
    assert simulate_goodput(recovery, mtbf, 300.0, seed=7) == simulate_goodput(recovery, mtbf, 300.0, seed=7)
    assert simulate_goodput(recovery, mtbf, 300.0, seed=7) != simulate_goodput(recovery, mtbf, 300.0, seed=8)


def test_goodput_falls_with_cluster_size_for_a_fixed_chip_mtbf():
    sizes = [1024, 4096, 16384, 65536]
    for policy in (lambda m: checkpoint_restart(0.1, 0.5, m), lambda m: in_memory_redundancy(STEP, 0.05)):
        goodputs = [expected_goodput(policy(cluster_mtbf(n, CHIP_MTBF)), cluster_mtbf(n, CHIP_MTBF))
                    for n in sizes]
        assert all(a > b for a, b in itertools.pairwise(goodputs)), goodputs
    small, large = (cluster_mtbf(n, CHIP_MTBF) for n in (1024, 65536))
    recovery = checkpoint_restart(0.1, 0.5, interval=1.0)
    assert (simulate_goodput(recovery, small, 2000.0).goodput
            > simulate_goodput(recovery, large, 2000.0).goodput + 0.1)


def test_faster_recovery_raises_goodput():
    mtbf = cluster_mtbf(16384, CHIP_MTBF)
    restarts = [1.0, 0.5, 0.1, 0.01]
    goodputs = [expected_goodput(checkpoint_restart(0.1, r, mtbf), mtbf) for r in restarts]
    assert all(a < b for a, b in itertools.pairwise(goodputs))
    checkpoint = expected_goodput(checkpoint_restart(0.1, 0.5, mtbf), mtbf)
    in_memory = expected_goodput(in_memory_redundancy(STEP, 0.05), mtbf)
    assert checkpoint < 0.7 and in_memory > 0.98
    assert cited("gemini.goodput_before").value < cited("gemini.goodput_after").value  # 85% -> 97%


def test_edge_cases():
    recovery = checkpoint_restart(0.1, 0.5, interval=1.0)
    # no failures: only the saves cost time
    assert expected_goodput(recovery, math.inf) == pytest.approx(1 / 1.1)
    run = simulate_goodput(recovery, math.inf, 2.5)
    assert (run.failures, run.restart_time, run.lost_time) == (0, 0.0, 0.0)
    assert run.wall_time == pytest.approx(2.5 + 3 * 0.1) and run.save_time == pytest.approx(0.3)
    # free saves and restarts: the only loss is rework, and goodput tends to 1 as failures get rare
    free = checkpoint_restart(0.0, 0.0, interval=1.0)
    assert expected_goodput(free, 1.0) == pytest.approx(1 / (math.e - 1))
    assert expected_goodput(free, 1e9) == pytest.approx(1.0, abs=1e-8)
    # a job shorter than one interval, and a whole number of intervals
    assert simulate_goodput(recovery, math.inf, 0.25).wall_time == pytest.approx(0.35)
    assert simulate_goodput(recovery, math.inf, 3.0).save_time == pytest.approx(0.3)
    # failures far more frequent than the interval: goodput collapses towards 0
    assert expected_goodput(recovery, 0.05) < 1e-6
    assert isinstance(simulate_goodput(recovery, 2.0, 5.0), GoodputRun)


@pytest.mark.parametrize("call, exception, message", [
    (lambda: cluster_mtbf(0, CHIP_MTBF), ValueError, "n_chips must be a positive integer, got 0"),
    (lambda: cluster_mtbf(4096.0, CHIP_MTBF), TypeError, "n_chips must be an integer, got float 4096.0"),
    (lambda: cluster_mtbf(4096, -1), ValueError, "chip_mtbf must be positive, got -1"),
    (lambda: young_interval(0, 5.0), ValueError, "save_time must be positive, got 0"),
    (lambda: young_interval(0.1, math.inf), ValueError, "mtbf must be a finite number, got inf"),
    (lambda: checkpoint_restart(0.1, 0.5), ValueError, "give exactly one of mtbf and interval"),
    (lambda: checkpoint_restart(0.1, 0.5, 3.0, interval=1.0), ValueError, "give exactly one of mtbf and interval"),
    (lambda: checkpoint_restart(0.1, -0.5, interval=1.0), ValueError, r"restart_time must be in \[0, inf\], got -0.5"),
    (lambda: checkpoint_restart(-0.1, 0.5, interval=1.0), ValueError, r"save_time must be in \[0, inf\], got -0.1"),
    (lambda: in_memory_redundancy(0, 0.05), ValueError, "interval must be positive, got 0"),
    (lambda: in_memory_redundancy(STEP, "fast"), TypeError, "restart_time must be a real number, got str 'fast'"),
    (lambda: Recovery("", 1.0, 0.1, 0.5), ValueError, "name must be a non-empty str"),
    (lambda: expected_goodput(None, 3.0), TypeError, "recovery must be a Recovery, got NoneType"),
    (lambda: expected_goodput(in_memory_redundancy(STEP, 0.05), 0), ValueError, r"mtbf must be in \(0, inf\], got 0"),
    (lambda: expected_goodput(in_memory_redundancy(STEP, 0.05), math.nan), ValueError,
     "mtbf must be a finite number, got nan"),
    (lambda: expected_wall_time(in_memory_redundancy(STEP, 0.05), 3.0, 0), ValueError, "work must be positive, got 0"),
    (lambda: simulate_goodput(in_memory_redundancy(STEP, 0.05), 3.0, 10.0, seed=1.5), TypeError,
     "seed must be an integer, got float 1.5"),
    (lambda: simulate_goodput(checkpoint_restart(0.1, 0.5, interval=1.0), 0.01, 10.0), ValueError,
     r"mtbf=0.01 would mean about 3.07e\+70 failures"),
    (lambda: simulate_goodput(in_memory_redundancy(STEP, 0.05), -3.0, 10.0), ValueError,
     r"mtbf must be in \(0, inf\], got -3"),
])
def test_bad_input_names_the_argument_and_the_value(call, exception, message):
    with pytest.raises(exception, match=message):
        call()
