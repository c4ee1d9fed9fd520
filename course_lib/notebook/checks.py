"""Exercise checks: compare a learner's answer with what is expected and explain any difference.

Every exercise in the course ends with a check cell that calls one of these helpers. A failed check
raises `CheckFailed` (an `AssertionError`) whose message says what was expected, what came back and,
where given, a hint; a passed check prints one line. Left out: grading and scoring (nbgrader can do
that on the same notebooks) and any comparison the helpers below cannot express (write an
`assert` with a helpful message instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["CheckFailed", "check_close", "check_equal", "check_true", "check_raises"]


class CheckFailed(AssertionError):
    """Raised by a check whose answer is wrong; the message tells the learner why."""


def _fail(name: str, reason: str, hint: str | None) -> None:
    message = f"{name}: {reason}"
    if hint:
        message += f"\nHint: {hint}"
    raise CheckFailed(message)


def _passed(name: str) -> None:
    print(f"✔ {name}: check passed")


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy() if value.is_floating_point() \
            else value.detach().cpu().numpy()
    return np.asarray(value)


def _brief(value: Any) -> str:
    array = _as_array(value)
    if array.ndim == 0:
        return repr(array.item())
    with np.printoptions(precision=4, threshold=12, edgeitems=3, suppress=True):
        return f"{np.array2string(array, separator=', ')} (shape {tuple(array.shape)})"


def check_close(got: Any, expected: Any, name: str = "answer", atol: float = 1e-6,
                rtol: float = 1e-5, hint: str | None = None) -> None:
    """Pass if `got` has `expected`'s shape and equals it within `atol + rtol * |expected|`."""
    if got is None:
        _fail(name, "got None: did the solution `return` its result?", hint)
    got_a, exp_a = _as_array(got), _as_array(expected)
    if got_a.shape != exp_a.shape:
        _fail(name, f"expected shape {tuple(exp_a.shape)}, got shape {tuple(got_a.shape)}", hint)
    if not np.issubdtype(got_a.dtype, np.number) and got_a.dtype != bool:
        _fail(name, f"expected numbers, got values of type {got_a.dtype}", hint)
    # Complex values are compared as complex numbers, never cast to real (which drops the imaginary part).
    kind = np.complex128 if np.iscomplexobj(got_a) or np.iscomplexobj(exp_a) else np.float64
    got_f, exp_f = got_a.astype(kind), exp_a.astype(kind)
    if np.isnan(got_f).any() and not np.isnan(exp_f).any():
        _fail(name, f"got NaN where numbers were expected: {_brief(got)}", hint)
    if not np.allclose(got_f, exp_f, atol=atol, rtol=rtol, equal_nan=True):
        diff = np.nanmax(np.abs(got_f - exp_f)) if got_f.size else 0.0
        _fail(name, f"expected {_brief(expected)}\n  got      {_brief(got)}\n"
                    f"  largest difference {diff:.3g} (tolerance atol={atol:g}, rtol={rtol:g})", hint)
    _passed(name)


def _is_array(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _kind(value: Any) -> Any:
    """What must match besides the value: bools, numbers (int or float alike), else the type."""
    if isinstance(value, (bool, np.bool_)):
        return bool
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value)


def _array_kind(array: np.ndarray) -> str:
    """Dtype kind, with signed and unsigned integers alike: 'b' bool, 'i' integer, 'f' float, ..."""
    return "i" if array.dtype.kind == "u" else array.dtype.kind


def _equal(got: Any, expected: Any) -> bool:
    """Exact equality, element by element through lists, tuples and dicts; arrays and tensors must
    also agree in shape and dtype kind."""
    if _is_array(got) or _is_array(expected):
        got_a, exp_a = _as_array(got), _as_array(expected)
        return (got_a.shape == exp_a.shape and _array_kind(got_a) == _array_kind(exp_a)
                and bool(np.array_equal(got_a, exp_a)))
    if _kind(got) != _kind(expected):
        return False
    if isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(_equal(g, e) for g, e in zip(got, expected))
    if isinstance(got, dict):
        return got.keys() == expected.keys() and all(_equal(got[k], expected[k]) for k in got)
    return bool(got == expected)


def check_equal(got: Any, expected: Any, name: str = "answer", hint: str | None = None) -> None:
    """Pass if `got == expected` exactly (ints, strings, lists, tuples, dicts, integer tensors).

    Containers are compared element by element, so a list of tensors works. Types must match, except
    that ints and floats of equal value count as equal (3 == 3.0, as in Python); a bool never equals
    an int. Arrays and tensors must agree in shape and dtype kind (bool, integer, float).
    """
    if not _equal(got, expected):
        shown_got, shown_exp = ((_brief(got), _brief(expected)) if _is_array(got) or _is_array(expected)
                                else (repr(got), repr(expected)))
        _fail(name, f"expected {shown_exp}\n  got      {shown_got}", hint)
    _passed(name)


def check_true(condition: bool, name: str, reason: str, hint: str | None = None) -> None:
    """Pass if `condition` is true; otherwise fail with `reason` (say what was wrong)."""
    if not isinstance(condition, (bool, np.bool_)):
        raise TypeError(f"condition must be a bool, got {type(condition).__name__}")
    if not condition:
        _fail(name, reason, hint)
    _passed(name)


def check_raises(fn: Callable[[], Any], exception: type[BaseException], name: str = "answer",
                 match: str | None = None, hint: str | None = None) -> None:
    """Pass if calling `fn()` raises `exception` (whose message contains `match`, if given).

    Pass the function itself (`lambda: f(x)`), not its result. NotImplementedError is never caught:
    it marks an exercise stub that is not solved yet, so it cannot be the expected exception.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable (e.g. `lambda: f(x)`), got {fn!r}")
    if not (isinstance(exception, type) and issubclass(exception, BaseException)):
        raise TypeError(f"exception must be an exception class, got {exception!r}")
    if issubclass(exception, NotImplementedError):
        raise ValueError(f"exception must not be NotImplementedError (it marks an unsolved stub), "
                         f"got {exception.__name__}")
    try:
        fn()
    except NotImplementedError:
        raise
    except exception as error:
        if match is not None and match not in str(error):
            _fail(name, f"raised {type(error).__name__} as expected, but its message {str(error)!r} "
                        f"does not mention {match!r}", hint)
        _passed(name)
        return
    except Exception as error:  # a different exception is a wrong answer, not a crash
        _fail(name, f"expected {exception.__name__}, got {type(error).__name__}: {error}", hint)
    _fail(name, f"expected {exception.__name__}, but nothing was raised", hint)
