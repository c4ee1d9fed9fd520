"""Seeding, thread counts, device choice and warnings: the one setup call every notebook makes.

Reproducibility here means: the same printed numbers on every run, with 1 or 2 torch threads and on
a GPU. Seeding makes the random streams equal; fixing the thread count removes one source of
floating-point reordering; the notebooks then round what they print to meaningful digits, which
absorbs the rest. Left out: bit-exact equality of float results across CPUs and GPUs, which no
setting guarantees.
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from course_lib.validation import int_in_range, one_of, positive_int

__all__ = ["THREADS_ENV", "RunInfo", "MAX_SEED", "seed_everything", "get_device", "default_threads", "setup"]

THREADS_ENV = "COURSE_TORCH_THREADS"


@dataclass(frozen=True)
class RunInfo:
    """What `setup` fixed; its text form is the notebook's version line."""

    seed: int
    threads: int
    device: torch.device

    def __str__(self) -> str:
        import course_lib

        return (
            f"course_lib {course_lib.__version__} | python {platform.python_version()} | "
            f"torch {torch.__version__} | numpy {np.__version__} | device {self.device.type} | "
            f"threads {self.threads} | seed {self.seed}"
        )


MAX_SEED = 2**32 - 1  # NumPy's global generator takes seeds in [0, 2**32 - 1]


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and torch (CPU and all GPUs)."""
    seed = int_in_range(seed, "seed", 0, MAX_SEED)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present, CPU otherwise; `prefer="cpu"` forces the CPU."""
    one_of(prefer, "prefer", (None, "cpu", "cuda"))
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise ValueError("prefer='cuda' but no CUDA device is available")
    return torch.device("cpu")


def default_threads() -> int:
    """Torch thread count: $COURSE_TORCH_THREADS if set, else 1.

    One thread is the default because the course's tensors are tiny: a second thread saves little
    when a core is free and slows small operations several times when the other core is busy.
    """
    raw = os.environ.get(THREADS_ENV)
    if raw is None:
        return 1
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {raw!r}") from None
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {raw!r}")
    return threads


def _short_warning(message, category, filename, lineno, file=None, line=None) -> str:
    """Format a warning without the file path, which differs from machine to machine."""
    return f"{category.__name__}: {message}\n"


def setup(seed: int = 0, threads: int | None = None, style: bool = True) -> RunInfo:
    """Prepare a notebook: seed everything, fix torch threads, pick the device, set figure style.

    Warnings are printed as ``Category: message`` without the machine-specific path.
    Returns a `RunInfo` whose text form is the notebook's version line.
    """
    seed = int_in_range(seed, "seed", 0, MAX_SEED)  # every argument is checked before anything changes
    threads = default_threads() if threads is None else positive_int(threads, "threads")
    seed_everything(seed)
    torch.set_num_threads(threads)
    warnings.formatwarning = _short_warning
    if style:
        from course_lib.notebook.plotting import use_course_style

        use_course_style()
    return RunInfo(seed=seed, threads=threads, device=get_device())
