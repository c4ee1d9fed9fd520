"""Goodput of a large training job under hardware failures: checkpoint-and-restart against keeping
redundant copies of the model state in memory.

Goodput is "the time spent computing useful new steps over the elapsed time of the training job"
(Gemini Team 2023, section 3, footnote 2). The model here is the classic one of checkpointing
theory:

- failures form a Poisson process; with independent chips the cluster fails at the sum of their
  rates, so its mean time between failures is ``cluster_mtbf(n_chips, chip_mtbf) = chip_mtbf /
  n_chips``: the more chips, the more often the job stops ("scaling up the number of accelerators
  results in a proportionate decrease in the mean time between failure", Gemini Team 2023,
  section 3);
- the job computes ``interval`` of useful work, then spends ``save_time`` saving its state; a
  failure loses everything since the last completed save, and the job spends ``restart_time``
  (replacing the hardware, reloading the state) before it computes again; failures can strike
  during saves and restarts too.

Two recovery policies are two settings of the same three times (``Recovery``):
``checkpoint_restart`` writes the state to persistent storage every ``interval``, by default at
Young's interval ``sqrt(2 * save_time * mtbf)`` (Young 1974, "A first order approximation to the
optimum checkpoint interval", CACM 17(9));
``in_memory_redundancy`` keeps an intact replica of the state up to date every training step, so
a failure loses at most one step and recovery is a fast copy from the replica, the approach that
raised Gemini's goodput from 85% to 97%.

``expected_goodput`` is the exact expectation of this model (Daly 2006, "A higher order estimate
of the optimum checkpoint interval for restart dumps", Future Generation Computer Systems, its
complete cost function): each segment of ``interval + save_time`` takes
``M e^(R/M) (e^((interval + save_time)/M) - 1)`` in expectation, with M the cluster's MTBF and R the
restart time, so the goodput of a long job is
``interval / (M e^(R/M) (e^((interval + save_time)/M) - 1))``. ``simulate_goodput`` runs the same
process with seeded random failures, event by event, and agrees with it.

Left out: failures that take down the replica as well as the original (correlated failures),
failure rates that change with age or load (only the memoryless Poisson process is modelled),
silent data corruption (detected late, so it costs more than a crash), time spent waiting for
spare hardware beyond ``restart_time``, the memory the replica costs, and stragglers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from course_lib.validation import (
    integer,
    number_in_range,
    positive_int,
    positive_number,
    real,
    string,
    type_name,
)

__all__ = [
    "GoodputRun",
    "Recovery",
    "checkpoint_restart",
    "cluster_mtbf",
    "expected_goodput",
    "expected_wall_time",
    "in_memory_redundancy",
    "simulate_goodput",
    "young_interval",
]

_MAX_FAILURES = 1e7  # a simulation longer than this (in expected failures) is refused


@dataclass(frozen=True)
class Recovery:
    """A recovery policy: save the state after every ``interval`` of useful compute, which takes
    ``save_time``; after a failure, ``restart_time`` passes before compute resumes from the last
    save. Times in any one unit (hours in the lessons)."""

    name: str
    interval: float
    save_time: float
    restart_time: float

    def __post_init__(self) -> None:
        string(self.name, "name", nonempty=True)
        positive_number(self.interval, "interval")
        for name in ("save_time", "restart_time"):  # finite, and 0 or more
            number_in_range(real(getattr(self, name), name), name, 0, math.inf)


@dataclass(frozen=True)
class GoodputRun:
    """One simulated job: ``wall_time = work + save_time + restart_time + lost_time``, where
    ``save_time`` counts the completed saves and ``lost_time`` the compute and partial saves that
    failures threw away."""

    goodput: float
    wall_time: float
    failures: int
    save_time: float
    restart_time: float
    lost_time: float


def cluster_mtbf(n_chips: int, chip_mtbf: float) -> float:
    """Mean time between failures of ``n_chips`` chips that each fail independently every
    ``chip_mtbf`` on average: ``chip_mtbf / n_chips`` (failure rates add)."""
    n_chips = positive_int(n_chips, "n_chips")
    return positive_number(chip_mtbf, "chip_mtbf") / n_chips


def young_interval(save_time: float, mtbf: float) -> float:
    """Young's checkpoint interval ``sqrt(2 * save_time * mtbf)``: it balances the time spent
    saving against the work lost per failure (first order in save_time / mtbf)."""
    return math.sqrt(2 * positive_number(save_time, "save_time") * positive_number(mtbf, "mtbf"))


def checkpoint_restart(save_time: float, restart_time: float, mtbf: float | None = None, *,
                       interval: float | None = None) -> Recovery:
    """Checkpoints to persistent storage every ``interval`` (Young's interval for ``mtbf`` when
    ``interval`` is None); each takes ``save_time``, and a restart takes ``restart_time``."""
    if (mtbf is None) == (interval is None):
        raise ValueError(f"give exactly one of mtbf and interval, got mtbf={mtbf!r} and interval={interval!r}")
    if interval is None:
        interval = young_interval(save_time, mtbf)
    return Recovery("checkpoint and restart", interval, save_time, restart_time)


def in_memory_redundancy(step_time: float, recovery_time: float, replication_time: float = 0.0) -> Recovery:
    """A replica of the state kept in memory and updated every step (``step_time``; updating it
    costs ``replication_time`` per step when it is not overlapped with compute): a failure loses
    at most the current step, and recovery copies the replica in ``recovery_time``."""
    return Recovery("in-memory redundancy", step_time, replication_time, recovery_time)


def expected_wall_time(recovery: Recovery, mtbf: float, work: float) -> float:
    """Expected elapsed time to finish ``work`` of useful compute under ``recovery`` with failures
    every ``mtbf`` on average (``math.inf``: never). The last segment may be shorter than the
    interval."""
    _check_recovery(recovery)
    mtbf = _mtbf(mtbf)
    work = positive_number(work, "work")
    n_full, rest = _segments(work, recovery.interval)
    total = n_full * _segment_time(recovery.interval + recovery.save_time, recovery.restart_time, mtbf)
    if rest > 0:
        total += _segment_time(rest + recovery.save_time, recovery.restart_time, mtbf)
    return total


def expected_goodput(recovery: Recovery, mtbf: float) -> float:
    """Expected goodput of a long job: ``interval / (M e^(R/M) (e^((interval + save_time)/M) - 1))``,
    with M = ``mtbf`` and R = ``restart_time`` (Daly 2006); ``interval / (interval + save_time)``
    when failures never happen."""
    _check_recovery(recovery)
    mtbf = _mtbf(mtbf)
    segment = recovery.interval + recovery.save_time
    return recovery.interval / _segment_time(segment, recovery.restart_time, mtbf)


def simulate_goodput(recovery: Recovery, mtbf: float, work: float, seed: int = 0) -> GoodputRun:
    """Run one job of ``work`` useful compute with failures drawn from a Poisson process of mean
    gap ``mtbf`` (seeded), failure by failure, and measure its goodput ``work / wall_time``. A job
    expected to meet more than 10 million failures is refused (it would run for minutes or more)."""
    _check_recovery(recovery)
    mtbf = _mtbf(mtbf)
    work = positive_number(work, "work")
    rng = np.random.default_rng(integer(seed, "seed"))
    if (expected := expected_wall_time(recovery, mtbf, work) / mtbf) > _MAX_FAILURES:
        raise ValueError(f"mtbf={mtbf:g} would mean about {expected:.3g} failures for this work and recovery, "
                         f"more than the {_MAX_FAILURES:.0e} a simulation runs; use expected_goodput")
    tau, delta, restart = recovery.interval, recovery.save_time, recovery.restart_time
    n_full, rest = _segments(work, tau)
    segment = tau + delta
    done, clock, failures, restarting, lost, restarts = 0, 0.0, 0, False, 0.0, 0.0
    while True:
        gap = rng.exponential(mtbf) if math.isfinite(mtbf) else math.inf  # time to the next failure
        if restarting:
            if gap < restart:  # the restart itself is interrupted: start it again
                clock, restarts, failures = clock + gap, restarts + gap, failures + 1
                continue
            clock, restarts, gap, restarting = clock + restart, restarts + restart, gap - restart, False
        k = n_full - done if gap == math.inf else min(n_full - done, math.floor(gap / segment))
        clock, gap, done = clock + k * segment, gap - k * segment, done + k
        if done == n_full and (rest == 0 or gap >= rest + delta):
            clock += rest + delta if rest > 0 else 0.0
            break
        clock, lost, failures, restarting = clock + gap, lost + gap, failures + 1, True
    saves = (n_full + (rest > 0)) * delta
    return GoodputRun(work / clock, clock, failures, saves, restarts, lost)


def _segment_time(segment: float, restart: float, mtbf: float) -> float:
    """Expected time to complete ``segment`` of work that a failure sends back to its start,
    through a restart of ``restart`` that failures can also interrupt: M e^(R/M) (e^(s/M) - 1)."""
    if math.isinf(mtbf):
        return segment
    return mtbf * math.exp(restart / mtbf) * math.expm1(segment / mtbf)


def _segments(work: float, interval: float) -> tuple[int, float]:
    """Full intervals in ``work`` and the remainder (0 when within rounding of a whole number)."""
    n_full = math.floor(work / interval)
    rest = work - n_full * interval
    if math.isclose(rest, interval, rel_tol=1e-9):
        return n_full + 1, 0.0
    return n_full, 0.0 if math.isclose(rest, 0.0, abs_tol=1e-9 * interval) else rest


def _check_recovery(recovery: Recovery) -> None:
    if not isinstance(recovery, Recovery):
        raise TypeError(f"recovery must be a Recovery, got {type_name(recovery)}")


def _mtbf(mtbf: float) -> float:
    """mtbf as a float > 0; ``math.inf`` means a machine that never fails."""
    return number_in_range(mtbf, "mtbf", 0, math.inf, low_open=True)
