"""Exercise checks: judge a learner's answer without telling the answer.

Every exercise ends with a check cell. A check names the answer it judges, as a string (the variable
or function the exercise asks for), and finds it in the notebook itself, so an exercise not done yet
reads "not done yet" instead of a NameError. What it compares with is computed in the check cell by
the library (or torch), or stored as a hash of the answer (`answer_hash`), never written out:

    check_value("T90", 0.9, through=lambda T: softmax(scores / T)[0], what="the top probability at T90",
                exercise="Exercise 3")
    check_function("logsumexp", lambda z: torch.logsumexp(z, 0), cases=[(z1,), (z2,)], exercise="Exercise 1",
                   forbid=["torch.logsumexp"])
    check_hash("first_pair", "sha256:...", like=(0, 0), exercise="Exercise 1")
    check_that("half_size", {"half_size is too small: ...": lambda n: ...}, like=0, exercise="Exercise 3")

A check has three verdicts. Passed: one line on stdout. Not done yet: the answer is undefined or
None, or it raises NotImplementedError (a stub). Wrong: what is wrong (type, shape, which case, how
many entries and where, too large or too small, which property fails) and the hint, never the
expected value. A failed check prints its message on stderr and lets the notebook go on, so an
unfinished exercise does not stop "Run all"; it raises `CheckFailed` instead where a failure must
stop the run: under nbgrader (which sets NBGRADER_EXECUTION while it validates or autogrades; it also
scores a test cell that wrote to stderr 0) and wherever COURSE_CHECKS=raise (the course's tests and
notebook runner). `describe_difference` is the judge on its own.

Left out: partial credit, and sandboxing: a learner who wants the answer can
print the reference or read the library, the checks only never show it unasked.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import numbers
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import numpy as np
import torch

from course_lib.validation import callable_arg, one_of, type_name

__all__ = [
    "CheckFailed", "MODE_VARIABLE", "DIGEST", "failures_raise", "describe_difference", "answer_hash",
    "check_value", "check_hash", "check_function", "check_that", "main",
]

MODE_VARIABLE = "COURSE_CHECKS"  # "print" (the default) or "raise"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class CheckFailed(AssertionError):
    """Raised by a check whose answer is wrong; the message tells the learner why."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message alone (the frames are the library's)."""
        return str(self).splitlines()


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy() if value.is_floating_point() \
            else value.detach().cpu().numpy()
    return np.asarray(value)


def _array_kind(array: np.ndarray) -> str:
    """Dtype kind, with signed and unsigned integers alike: 'b' bool, 'i' integer, 'f' float, ..."""
    return "i" if array.dtype.kind == "u" else array.dtype.kind


_MISSING = object()


class _NotDone(Exception):
    """The answer is not there yet (undefined, None, or a stub that raises NotImplementedError)."""


class _ForbiddenCall(Exception):
    """Raised inside the learner's code when it calls a function the exercise asks them to write."""


def failures_raise() -> bool:
    """Whether a failed check raises `CheckFailed` (under nbgrader, or with COURSE_CHECKS=raise) or prints."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return True
    return one_of(os.environ.get(MODE_VARIABLE, "print"), MODE_VARIABLE, ("print", "raise")) == "raise"


def _report(exercise: str, problem: str | None, hint: str | None, not_done: bool = False) -> None:
    if problem is None:
        print(f"✔ {exercise}: check passed")
        return
    message = f"✘ {exercise} is not done yet: {problem}" if not_done else f"✘ {exercise}: {problem}"
    if hint and not not_done:
        message += f"\n  Hint: {hint}"
    if failures_raise():
        raise CheckFailed(message)
    print(message, file=sys.stderr)


def _label(exercise: Any) -> str:
    if not isinstance(exercise, str):
        raise TypeError(f"exercise must be a str such as 'Exercise 1', got {type_name(exercise)}")
    if not exercise.strip():
        raise ValueError(f"exercise must name the exercise, such as 'Exercise 1', got {exercise!r}")
    return exercise


def _answer(name: Any, frame: FrameType) -> Any:
    """The value the notebook binds to `name`; _NotDone if it is undefined or None."""
    if not isinstance(name, str):
        raise TypeError(f"answer must be the name of the answer as a string (e.g. 'first_pair'), "
                        f"got {type_name(name)}")
    if not name.isidentifier():
        raise ValueError(f"answer must be a Python name such as 'first_pair', got {name!r}")
    value = frame.f_locals.get(name, frame.f_globals.get(name, _MISSING))
    if value is _MISSING:
        raise _NotDone(f"{name} is not defined; run the exercise's cell above")
    if value is None:
        raise _NotDone(f"{name} is still None; assign your answer to it in the exercise's cell above")
    return value


def _stub(name: str) -> _NotDone:
    return _NotDone(f"{name} raises NotImplementedError; replace the stub in the exercise's cell above")


def _a(value: Any) -> str:
    """'a list', 'an int', 'None': what a message says the learner gave."""
    if value is None:
        return "None"
    name = "tensor" if isinstance(value, torch.Tensor) else "numpy array" if isinstance(value, np.ndarray) \
        else type_name(value)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_array(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _scalar(value: Any) -> Any:
    """A 0-d tensor or array as the Python scalar it holds; anything else unchanged."""
    return value.item() if _is_array(value) and value.ndim == 0 else value


_KINDS = {"b": "booleans", "i": "integers", "f": "floats", "c": "complex numbers"}


def _where(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def _array_difference(got: Any, expected: Any, subject: str, atol: float, rtol: float,
                      values: bool) -> str | None:
    if not _is_array(got):
        return f"{subject} should be a tensor, got {_a(got)}"
    got_a, exp_a = _as_array(got), _as_array(expected)
    if got_a.shape != exp_a.shape:
        return f"{subject} has shape {tuple(got_a.shape)}, should have shape {tuple(exp_a.shape)}"
    got_kind, exp_kind = _array_kind(got_a), _array_kind(exp_a)
    numeric = exp_kind in "fc" and got_kind in "fic"
    if got_kind != exp_kind and not numeric:
        return (f"{subject} holds {_KINDS.get(got_kind, str(got_a.dtype))}, "
                f"should hold {_KINDS.get(exp_kind, str(exp_a.dtype))}")
    if not values or got_a.size == 0:
        return None
    if exp_kind in "fc":
        for name, test in (("NaN", np.isnan), ("an infinite value", np.isinf)):
            odd = test(got_a) & ~test(exp_a)
            if odd.any() and got_a.ndim == 0:
                return f"{subject} is {name.removeprefix('an ')}"
            if odd.any():
                first = tuple(int(i) for i in np.argwhere(odd)[0])
                return (f"{subject} has {name} in {int(odd.sum())} of {odd.size} entries "
                        f"(the first at index {_where(first)})")
        wrong = ~np.isclose(got_a, exp_a, atol=atol, rtol=rtol, equal_nan=True)
    else:
        wrong = got_a != exp_a
    if not wrong.any():
        return None
    first = tuple(int(i) for i in np.argwhere(wrong)[0]) if wrong.ndim else ()
    direction = "wrong" if exp_kind in "bc" else \
        "too large" if got_a[first] > exp_a[first] else "too small"
    if got_a.ndim == 0:
        return f"{subject} is {direction}"
    return (f"{int(wrong.sum())} of {wrong.size} entries of {subject} are wrong; "
            f"the first, at index {_where(first)}, is {direction}")


def _difference(got: Any, expected: Any, subject: str, atol: float = 1e-6, rtol: float = 1e-5,
                values: bool = True) -> str | None:
    """What is wrong with `got`, never showing `expected`; None if it matches. values=False compares the
    form only (types, shapes, lengths, keys), as `like=` does."""
    expected = _scalar(expected)
    if _is_array(expected):
        return _array_difference(got, expected, subject, atol, rtol, values)
    got = _scalar(got)
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)):
            return f"{subject} should be True or False, got {_a(got)}"
        return None if not values or bool(got) == bool(expected) else f"{subject} is wrong"
    if _is_number(expected):
        if not _is_number(got):
            return f"{subject} should be a number, got {_a(got)}"
        if not values:
            integral = isinstance(expected, numbers.Integral)
            return f"{subject} should be an int, got {_a(got)}" if integral and not isinstance(
                got, numbers.Integral) else None
        for name, test in (("NaN", np.isnan), ("infinite", np.isinf)):
            if test(float(got)) and not test(float(expected)):
                return f"{subject} is {name}"
        if isinstance(expected, numbers.Integral) and isinstance(got, numbers.Integral):
            close = int(got) == int(expected)
        else:
            close = bool(np.isclose(float(got), float(expected), atol=atol, rtol=rtol))
        return None if close else f"{subject} is {'too large' if got > expected else 'too small'}"
    if isinstance(expected, str):
        if not isinstance(got, str):
            return f"{subject} should be a str, got {_a(got)}"
        return None if not values or got == expected else f"{subject} is not the right text"
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or isinstance(got, tuple) != isinstance(expected, tuple):
            return f"{subject} should be {_a(expected)}, got {_a(got)}"
        if len(got) != len(expected):
            return f"{subject} has {len(got)} items, should have {len(expected)}"
        wrong = [d for i, (g, e) in enumerate(zip(got, expected, strict=True))
                 if (d := _difference(g, e, f"{subject}[{i}]", atol, rtol, values)) is not None]
        if len(wrong) > 1:
            return f"{len(wrong)} of the {len(got)} items of {subject} are wrong; the first: {wrong[0]}"
        return wrong[0] if wrong else None
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{subject} should be {_a(expected)}, got {_a(got)}"
        extra = [key for key in got if key not in expected]
        if extra:
            return f"{subject} has keys it should not have: {', '.join(repr(k) for k in extra)}"
        missing = sum(key not in got for key in expected)
        if missing:
            return f"{subject} is missing {missing} of its {len(expected)} keys"
        for key in expected:
            if (problem := _difference(got[key], expected[key], f"{subject}[{key!r}]", atol, rtol, values)):
                return problem
        return None
    if isinstance(expected, (set, frozenset)):
        if not isinstance(got, (set, frozenset)):
            return f"{subject} should be a set, got {_a(got)}"
        if not values:
            return None
        stray, missing = len(set(got) - set(expected)), len(set(expected) - set(got))
        if stray or missing:
            return f"{subject} holds {stray} item(s) that do not belong in it and lacks {missing}"
        return None
    if expected is None:
        return None if got is None else f"{subject} should be None, got {_a(got)}"
    if type(got) is not type(expected):
        return f"{subject} should be {_a(expected)}, got {_a(got)}"
    try:
        equal = bool(got == expected)
    except Exception:  # an == that cannot answer yes or no counts as different
        equal = False
    return None if not values or equal else f"{subject} is wrong"


def describe_difference(got: Any, expected: Any, subject: str = "the answer", *, atol: float = 1e-6,
                        rtol: float = 1e-5) -> str | None:
    """What is wrong with `got` compared with `expected`, in words that never show `expected`; None if
    they match.

    It names the type, the shape, the length, the first wrong item or entry (by index) and whether it
    is too large or too small. Numbers and float tensors match within ``atol + rtol * |expected|``;
    ints, strings, bools and integer tensors exactly; an int equals a float of the same value.
    """
    if not isinstance(subject, str):
        raise TypeError(f"subject must be a str, got {type_name(subject)}")
    return _difference(got, expected, subject, atol, rtol)


def _canonical(value: Any) -> str:
    """A text that is the same for answers that should count as equal (see `answer_hash`)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if _is_array(value):
        return _canonical(value.tolist())
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str):
        return repr(" ".join(value.split()).casefold())
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        return "set{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, Mapping):
        return "{" + ",".join(sorted(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items())) + "}"
    raise TypeError(f"value must be a bool, an int, a str, or a list, tuple, set or dict of them, "
                    f"got {type_name(value)}")


def answer_hash(value: Any) -> str:
    """The digest `check_hash` compares with: ``"sha256:<hex>"`` of a normalised form of `value`.

    Normalised: a tuple equals a list with the same items; an int equals the same int from numpy or
    a 0-d tensor, and a float with an integral value (3.0 is 3); a string is compared with its
    surrounding whitespace stripped, inner runs of whitespace made one space, and case folded ("B"
    is "b"); sets and dicts do not depend on their order. Other floats are hashed as written, so a
    last-bit difference changes the digest: judge floats with `check_value` instead.
    From a shell: ``python -m course_lib.notebook.checks "(105, 120)"``.
    """
    return "sha256:" + hashlib.sha256(_canonical(value).encode("utf-8")).hexdigest()


def check_value(answer: str, reference: Any, *, exercise: str, hint: str | None = None,
                through: Callable[[Any], Any] | None = None, what: str | None = None, like: Any = None,
                atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Check the notebook's `answer` (its name) against `reference`, computed by the check cell.

    through: judge ``through(answer)`` instead of the answer itself (e.g. the top probability at the
    temperature the learner found), and then `what` must say what that quantity is. like: an example
    of the answer's form (``0`` for an int, ``(0, 0)`` for a pair of ints), checked first.
    A failure says what is wrong (see `describe_difference`), never the reference.
    """
    frame, exercise = sys._getframe(1), _label(exercise)
    if through is not None:
        callable_arg(through, "through", "a function of the answer")
        if not isinstance(what, str) or not what:
            raise ValueError(f"what must say what through(answer) is (e.g. 'the top probability at T90'), "
                             f"got {what!r}")
    try:
        value = _answer(answer, frame)
        problem = _difference(value, like, answer, values=False) if like is not None else None
        if problem is None and through is not None:
            try:
                value = through(value)
            except NotImplementedError:
                raise _stub(answer) from None
            except Exception as error:  # the learner's answer made the computation fail
                problem = f"{what} cannot be computed from {answer}: {type(error).__name__}: {error}"
        if problem is None:
            problem = _difference(value, reference, what or answer, atol, rtol)
    except _NotDone as not_done:
        _report(exercise, str(not_done), hint, not_done=True)
        return
    _report(exercise, problem, hint)


def check_hash(answer: str, digest: str, *, exercise: str, hint: str | None = None, like: Any = None) -> None:
    """Check the notebook's `answer` (its name) against the digest of the right answer (`answer_hash`).

    For discrete answers (a count, a letter, a pair of ids): the check cell holds only the digest.
    like: an example of the answer's form, checked first so that a wrong type is named.
    """
    frame, exercise = sys._getframe(1), _label(exercise)
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise ValueError(f"digest must be 'sha256:' and 64 hex digits (from answer_hash), got {digest!r}")
    try:
        value = _answer(answer, frame)
    except _NotDone as not_done:
        _report(exercise, str(not_done), hint, not_done=True)
        return
    problem = _difference(value, like, answer, values=False) if like is not None else None
    if problem is None:
        try:
            problem = None if answer_hash(value) == digest else f"{answer} is not the right answer"
        except TypeError:
            problem = f"{answer} cannot be {_a(value)}"
    _report(exercise, problem, hint)


def _cases(cases: Any) -> dict[str, tuple]:
    """Cases as {label: arguments}: a mapping keeps its labels, a sequence is numbered from 1."""
    if isinstance(cases, Mapping):
        labelled = {str(label): args for label, args in cases.items()}
    elif isinstance(cases, Sequence) and not isinstance(cases, str):
        labelled = {str(number): args for number, args in enumerate(cases, start=1)}
    else:
        raise TypeError(f"cases must be a list of argument tuples or a dict of them, got {type_name(cases)}")
    if not labelled:
        raise ValueError("cases must hold at least one case, got none")
    for label, args in labelled.items():
        if not isinstance(args, tuple):
            raise TypeError(f"case {label} must be a tuple of arguments (write (x,) for one), "
                            f"got {type_name(args)}")
    return labelled


def _resolve(path: str, namespace: dict) -> tuple[Any, str]:
    """The object that holds the last part of a dotted `path`, and that part's name."""
    parts = path.split(".")
    if parts[0] in namespace:
        owner: Any = namespace if len(parts) == 1 else namespace[parts[0]]
        rest = parts[1:-1]
    else:
        for cut in range(len(parts) - 1, 0, -1):
            try:
                owner = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            rest = parts[cut:-1]
            break
        else:
            raise ValueError(f"forbid names {path!r}, which is neither in the notebook nor importable")
    for part in rest:
        owner = getattr(owner, part)
    found = owner.get(parts[-1], _MISSING) if isinstance(owner, dict) else getattr(owner, parts[-1], _MISSING)
    if found is _MISSING:
        raise ValueError(f"forbid names {path!r}, which does not exist")
    return owner, parts[-1]


def _home(function: Any) -> tuple[Any, str] | None:
    """The module that defines ``function`` and its name there, when it is a module-level function."""
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    name = getattr(function, "__qualname__", "")
    if module is None or "." in name or vars(module).get(name) is not function:
        return None
    return module, name


@contextmanager
def _forbidden(paths: Sequence[str], namespace: dict) -> Iterator[list[str]]:
    """While inside, calling any of `paths` (and any notebook name bound to the same function) raises
    _ForbiddenCall; the list it yields records the calls, even those the learner's code caught."""
    calls: list[str] = []
    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, path: str) -> None:
        is_dict = isinstance(owner, dict)
        had = name in owner if is_dict else name in vars(owner)
        original = owner[name] if is_dict else vars(owner).get(name, getattr(owner, name))

        def blocked(*args: Any, **kwargs: Any) -> Any:
            calls.append(path)
            raise _ForbiddenCall(path)

        if is_dict:
            owner[name] = blocked
            undo.append(lambda: owner.__setitem__(name, original))
        else:
            setattr(owner, name, blocked)
            undo.append(lambda: setattr(owner, name, original) if had else delattr(owner, name))

    try:
        for path in paths:
            owner, name = _resolve(path, namespace)
            target = owner[name] if isinstance(owner, dict) else getattr(owner, name)
            patch(owner, name, path)
            home = _home(target)  # `import course_lib.prompting as P; P.calibrate(...)` too
            if home is not None and home[0] is not owner:
                patch(*home, path)
            for key, value in list(namespace.items()):  # `from torch import logsumexp as lse` too
                if value is target and not (owner is namespace and key == name):
                    patch(namespace, key, path)
        yield calls
    finally:
        for restore in reversed(undo):
            restore()


def check_function(answer: str, reference: Callable[..., Any], cases: Sequence[tuple] | Mapping[str, tuple], *,
                   exercise: str, hint: str | None = None, atol: float = 1e-6, rtol: float = 1e-5,
                   forbid: Sequence[str] = ()) -> None:
    """Check the notebook's function `answer` (its name) against `reference` on every case.

    cases: argument tuples, ``[(x,), (y,)]`` (numbered from 1 in messages), or ``{label: (x,)}``.
    Each case computes the reference first, then the learner's result, and compares them (see
    `describe_difference`). If the reference raises, the learner's function must raise the same
    exception type. forbid: functions the learner's function must not call, as dotted paths
    ("torch.logsumexp", "torch.Tensor.logsumexp") or notebook names ("softmax_jacobian"); they are
    blocked while it runs. The first failing case is reported, by its label.
    """
    frame, exercise = sys._getframe(1), _label(exercise)
    callable_arg(reference, "reference", "a function with the same arguments as the answer")
    labelled, forbid = _cases(cases), _forbid_list(forbid)
    try:
        function = _answer(answer, frame)
        problem = None if callable(function) else f"{answer} should be a function, got {_a(function)}"
        for label, args in labelled.items() if problem is None else ():
            problem = _judge_case(function, answer, reference, args, forbid, frame.f_globals, atol, rtol)
            if problem is not None:
                problem = f"in case {label}: {problem}"
                break
    except _NotDone as not_done:
        _report(exercise, str(not_done), hint, not_done=True)
        return
    _report(exercise, problem, hint)


def _forbid_list(forbid: Any) -> list[str]:
    """``forbid`` checked: a list of dotted names."""
    if isinstance(forbid, str) or not all(isinstance(path, str) for path in forbid):
        raise TypeError(f"forbid must be a list of names such as ['torch.logsumexp'], got {forbid!r}")
    return list(forbid)


def _forbidden_message(answer: str, calls: list[str]) -> str:
    return f"{answer} calls {calls[0]}, which this exercise asks you to do without"


def _judge_case(function: Callable, answer: str, reference: Callable, args: tuple, forbid: Sequence[str],
                namespace: dict, atol: float, rtol: float) -> str | None:
    expected_error = None
    try:
        expected = reference(*args)
    except Exception as error:  # the case is one where the function must raise
        expected, expected_error = None, type(error)
    with _forbidden(forbid, namespace) as calls:
        try:
            got = function(*args)
        except NotImplementedError:
            raise _stub(answer) from None
        except Exception as error:
            got, raised = None, error
        else:
            raised = None
    if calls:
        return _forbidden_message(answer, calls)
    if expected_error is not None:
        if raised is None:
            return f"{answer} should raise {expected_error.__name__}, but nothing was raised"
        if not isinstance(raised, expected_error):
            return f"{answer} should raise {expected_error.__name__}, got {type(raised).__name__}: {raised}"
        return None
    if raised is not None:
        return f"{answer} raised {type(raised).__name__}: {raised}"
    if got is None:
        return f"{answer} returned None; does it `return` its result?"
    return _difference(got, expected, "the result", atol, rtol)


def check_that(answer: str, properties: Mapping[str, Callable[[Any], bool]], *, exercise: str,
               hint: str | None = None, like: Any = None, forbid: Sequence[str] = ()) -> None:
    """Check that the notebook's `answer` (its name) has every property, in order.

    properties: ``{message: predicate}``; the first predicate that returns False fails the check
    with its message, which says which property fails (e.g. "half_size is too large: one token
    fewer already reaches 2"). like: an example of the answer's form, checked first. forbid: as in
    `check_function`, blocked while the predicates run (for an answer that is a function).
    """
    frame, exercise = sys._getframe(1), _label(exercise)
    forbid = _forbid_list(forbid)
    if not isinstance(properties, Mapping) or not properties:
        raise TypeError(f"properties must be a non-empty dict {{message: predicate}}, got {properties!r}")
    for message, predicate in properties.items():
        callable_arg(predicate, f"properties[{message!r}]", "a function of the answer returning a bool")
    try:
        value = _answer(answer, frame)
        problem = _difference(value, like, answer, values=False) if like is not None else None
        for message, predicate in properties.items() if problem is None else ():
            with _forbidden(forbid, frame.f_globals) as calls:
                try:
                    holds = _scalar(predicate(value))
                except NotImplementedError:
                    raise _stub(answer) from None
                except Exception as error:  # the learner's answer made the property fail to evaluate
                    holds, raised = None, error
                else:
                    raised = None
            if calls:
                problem = _forbidden_message(answer, calls)
                break
            if raised is not None:
                problem = f"{message} (checking it raised {type(raised).__name__}: {raised})"
                break
            if not isinstance(holds, (bool, np.bool_)):
                raise TypeError(f"properties[{message!r}] must return a bool, got {type_name(holds)}")
            if not holds:
                problem = message
                break
    except _NotDone as not_done:
        _report(exercise, str(not_done), hint, not_done=True)
        return
    _report(exercise, problem, hint)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the digest check_hash compares an answer with.")
    parser.add_argument("value", help='a Python literal, e.g. "(105, 120)", "338", "\'B\'"')
    value = parser.parse_args(argv).value
    try:
        print(answer_hash(ast.literal_eval(value)))
    except (ValueError, SyntaxError, TypeError) as error:
        parser.error(f"value must be a Python literal (quote strings: \"'B'\"), got {value!r}: {error}")


if __name__ == "__main__":
    main()
