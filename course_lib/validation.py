"""Argument checks shared by every module: one line per check, one message style, one policy.

Policy: a value of the wrong *type* raises ``TypeError``; a value of the right type outside its
allowed range raises ``ValueError``. Every message names the argument and shows the value, e.g.
``ValueError: top_p must be in (0, 1], got 1.5``. Integer sizes accept anything ``operator.index``
accepts (``int``, ``np.int64``, a 0-d integer tensor), never ``bool`` or ``float``.

Each check returns the checked value (as a plain ``int`` or ``float`` where it converts), so a
function can write ``n = positive_int(n, "n")`` and go on with the maths.

Left out: checks that only one module needs stay in that module, written with these helpers.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

__all__ = [
    "integer",
    "positive_int",
    "nonnegative_int",
    "int_in_range",
    "real",
    "positive_number",
    "nonnegative_number",
    "number_in_range",
    "probability",
    "boolean",
    "one_of",
    "string",
    "tensor",
    "float_tensor",
    "as_float_tensor",
    "integer_tensor",
    "callable_arg",
    "module",
    "type_name",
]


def type_name(value: Any) -> str:
    """The name of value's type, as the messages print it."""
    return type(value).__name__


def integer(value: Any, name: str) -> int:
    """value as an int; TypeError for bool, float, str and anything else ``operator.index`` refuses."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, torch.Tensor) and (value.ndim != 0 or value.is_floating_point()
                                            or value.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer, got a tensor of shape {tuple(value.shape)} "
                        f"and dtype {value.dtype}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type_name(value)} {value!r}") from None


def positive_int(value: Any, name: str) -> int:
    """value as an int >= 1."""
    n = integer(value, name)
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n}")
    return n


def nonnegative_int(value: Any, name: str) -> int:
    """value as an int >= 0."""
    n = integer(value, name)
    if n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n}")
    return n


def int_in_range(value: Any, name: str, low: int, high: int | None = None) -> int:
    """value as an int in [low, high] (both ends included); ``high=None`` sets no upper bound."""
    n = integer(value, name)
    if high is None and n < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {n}")
    if high is not None and not low <= n <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {n}")
    return n


def real(value: Any, name: str, *, finite: bool = True) -> float:
    """value as a float: any real number (int, float, numpy scalar), never bool or complex."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, torch.Tensor) and value.ndim == 0 and value.dtype != torch.bool \
                and not value.is_complex():
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {type_name(value)} {value!r}")
    x = float(value)
    if math.isnan(x) or (finite and math.isinf(x)):
        raise ValueError(f"{name} must be a finite number, got {x}")
    return x


def positive_number(value: Any, name: str) -> float:
    """value as a finite float > 0."""
    x = real(value, name)
    if x <= 0:
        raise ValueError(f"{name} must be positive, got {x}")
    return x


def nonnegative_number(value: Any, name: str) -> float:
    """value as a finite float >= 0."""
    x = real(value, name)
    if x < 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def number_in_range(value: Any, name: str, low: float, high: float, *,
                    low_open: bool = False, high_open: bool = False) -> float:
    """value as a float in the interval from low to high; open ends are excluded."""
    x = real(value, name, finite=False)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {x:g}")
    return x


def probability(value: Any, name: str, *, allow_zero: bool = True) -> float:
    """value as a float in [0, 1], or (0, 1] with allow_zero=False."""
    return number_in_range(value, name, 0.0, 1.0, low_open=not allow_zero)


def boolean(value: Any, name: str) -> bool:
    """value itself, if it is a bool (not 0 or 1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type_name(value)} {value!r}")
    return value


def one_of(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """value itself, if it is one of choices."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def string(value: Any, name: str, *, nonempty: bool = False) -> str:
    """value itself, if it is a str (and not empty, with nonempty=True)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type_name(value)}")
    if nonempty and not value:
        raise ValueError(f"{name} must be a non-empty str, got ''")
    return value


def tensor(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """value itself, if it is a torch.Tensor (with ndim dimensions, or one of a tuple of them)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type_name(value)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            wanted = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must have {wanted} dimensions, got shape {tuple(value.shape)}")
    return value


def float_tensor(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """value itself, if it is a floating-point torch.Tensor."""
    tensor(value, name, ndim=ndim)
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def as_float_tensor(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """value as a floating-point torch.Tensor; a NumPy array becomes one with ``torch.as_tensor``."""
    if isinstance(value, np.ndarray):
        value = torch.as_tensor(value)
    return float_tensor(value, name, ndim=ndim)


def integer_tensor(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """value itself, if it is an integer (not bool) torch.Tensor."""
    tensor(value, name, ndim=ndim)
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {value.dtype}")
    return value


def callable_arg(value: Any, name: str, what: str = "callable") -> Callable:
    """value itself, if it can be called; `what` describes the expected signature."""
    if not callable(value):
        raise TypeError(f"{name} must be {what}, got {type_name(value)}")
    return value


def module(value: Any, name: str) -> torch.nn.Module:
    """value itself, if it is a torch.nn.Module."""
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type_name(value)}")
    return value
