"""The exercise checks that judge without telling: verdicts, messages, modes, hashes, forbidden calls."""
# ruff: noqa: F811, F841 (a check finds the answer by its name in the caller's frame, as in a notebook,
# so the answers these tests assign, and assign again, look unused to a linter)

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from course_lib.notebook import checks
from course_lib.notebook.checks import (
    CheckFailed,
    answer_hash,
    check_function,
    check_hash,
    check_that,
    check_value,
    describe_difference,
)


@pytest.fixture
def printed(monkeypatch, capsys):
    """Checks in their default mode (failures printed on stderr); returns a reader of (stdout, stderr)."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(checks.MODE_VARIABLE, raising=False)

    def read() -> tuple[str, str]:
        captured = capsys.readouterr()
        return captured.out, captured.err
    return read


@pytest.fixture
def raising(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(checks.MODE_VARIABLE, "raise")


def test_a_passing_check_prints_one_line(printed):
    answer = 3
    check_value("answer", 3, exercise="Exercise 1")
    assert printed() == ("✔ Exercise 1: check passed\n", "")


def test_a_failing_check_prints_on_stderr_and_does_not_raise(printed):
    answer = 4
    check_value("answer", 3, exercise="Exercise 1", hint="count again")
    out, err = printed()
    assert out == "" and err == "✘ Exercise 1: answer is too large\n  Hint: count again\n"


@pytest.mark.parametrize("variable, value", [("COURSE_CHECKS", "raise"), ("NBGRADER_EXECUTION", "autograde"),
                                             ("NBGRADER_EXECUTION", "validate")])
def test_failures_raise_under_nbgrader_and_with_course_checks_raise(monkeypatch, variable, value):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv(checks.MODE_VARIABLE, raising=False)
    monkeypatch.setenv(variable, value)
    answer = 2
    with pytest.raises(CheckFailed, match="answer is too small") as info:
        check_value("answer", 3, exercise="Exercise 1")
    assert info.value._render_traceback_() == ["✘ Exercise 1: answer is too small"]


def test_an_unknown_mode_is_refused(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv(checks.MODE_VARIABLE, "loud")
    answer = 2
    with pytest.raises(ValueError, match="COURSE_CHECKS must be one of 'print', 'raise'; got 'loud'"):
        check_value("answer", 3, exercise="Exercise 1")


def test_an_undefined_or_none_answer_is_not_done_yet(raising):
    with pytest.raises(CheckFailed, match=r"^✘ Exercise 2 is not done yet: merged_ids is not defined"):
        check_value("merged_ids", [1, 2], exercise="Exercise 2", hint="never shown")
    merged_ids = None
    with pytest.raises(CheckFailed, match="not done yet: merged_ids is still None") as info:
        check_value("merged_ids", [1, 2], exercise="Exercise 2", hint="never shown")
    assert "Hint" not in str(info.value)


def test_a_stub_that_raises_not_implemented_is_not_done_yet(raising):
    def f(x):
        raise NotImplementedError("Exercise 1: write the body of f")
    not_done = "Exercise 1 is not done yet: f raises NotImplementedError"
    with pytest.raises(CheckFailed, match=not_done):
        check_function("f", abs, [(1,)], exercise="Exercise 1")
    with pytest.raises(CheckFailed, match=not_done):
        check_that("f", {"f(1) is wrong": lambda g: g(1) == 1}, exercise="Exercise 1")
    with pytest.raises(CheckFailed, match=not_done):
        check_value("f", 1, through=lambda g: g(1), what="f(1)", exercise="Exercise 1")


@pytest.mark.parametrize("answer, reference, message", [
    (4, 3, "x is too large"),
    (2.5, 3.0, "x is too small"),
    (3.0 + 1e-3, 3.0, "x is too large"),
    (math.nan, 1.0, "x is NaN"),
    (math.inf, 1.0, "x is infinite"),
    ("3", 3, "x should be a number, got a str"),
    (True, 1, "x should be a number, got a bool"),
    (1, True, "x should be True or False, got an int"),
    (False, True, "x is wrong"),
    ("cat", "dog", "x is not the right text"),
    ([105, 120], (105, 120), "x should be a tuple, got a list"),
    ((105, 121, 1), (105, 120), "x has 3 items, should have 2"),
    ((105, 121), (105, 120), r"x\[1\] is too large"),
    ([5, 9, 9], [5, 7, 8], r"2 of the 3 items of x are wrong; the first: x\[1\] is too large"),
    ({"a": 1, "z": 2}, {"a": 1, "b": 2}, "x has keys it should not have: 'z'"),
    ({"a": 1}, {"a": 1, "b": 2}, "x is missing 1 of its 2 keys"),
    ({"a": 2, "b": 2}, {"a": 1, "b": 2}, r"x\['a'\] is too large"),
    ({1, 2}, {1, 3}, "x holds 1 item"),
    (torch.zeros(3), torch.zeros(4), r"x has shape \(3,\), should have shape \(4,\)"),
    ([0.0, 0.0], torch.zeros(2), "x should be a tensor, got a list"),
    (torch.tensor([1.0, 2.0]), torch.tensor([1, 2]), "x holds floats, should hold integers"),
    (torch.tensor([0.0, 2.0, 9.0]), torch.tensor([0.0, 1.0, 1.0]),
     "2 of 3 entries of x are wrong; the first, at index 1, is too large"),
    (torch.tensor([[0.0, 0.0], [0.0, -1.0]]), torch.zeros(2, 2),
     r"1 of 4 entries of x are wrong; the first, at index \(1, 1\), is too small"),
    (torch.tensor([1.0, math.nan]), torch.tensor([1.0, 2.0]), "x has NaN in 1 of 2 entries"),
    (torch.tensor(2.0), 3.0, "x is too small"),
    (np.array([1, 2]), torch.tensor([1, 3]), "1 of 2 entries of x are wrong"),
])
def test_describe_difference_says_what_is_wrong(answer, reference, message):
    assert re.search(message, describe_difference(answer, reference, "x"))


@pytest.mark.parametrize("answer, reference", [
    (3, 3), (3.0, 3), (3, 3.0), (np.int64(3), 3), (torch.tensor(3), 3), (1.0 + 1e-7, 1.0), ("a", "a"),
    ((1, (2, 3.0)), (1, (2, 3))), ({"a": [1]}, {"a": [1]}), ({1, 2}, {2, 1}), (torch.tensor([1, 2]), np.array([1, 2])),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7])), (None, None),
    (torch.tensor([1, 2]), torch.tensor([1.0, 2.0])),  # whole numbers where floats are expected
])
def test_describe_difference_accepts_equal_answers(answer, reference):
    assert describe_difference(answer, reference, "x") is None


@pytest.mark.parametrize("answer, reference", [
    (339, 338), (0.43, 0.4360), ((105, 121), (105, 120)), ("ix", "ox"), ([3, 1, 4, 1, 6], [3, 1, 4, 1, 5]),
    (torch.tensor([0.2, 0.3]), torch.tensor([0.2247, -0.1598])), (1000.5, 1000.6931),
])
def test_messages_never_show_the_reference(answer, reference):
    message = describe_difference(answer, reference, "x")
    assert message is not None
    shown = {repr(reference), str(reference)}
    if isinstance(reference, torch.Tensor):
        shown |= {f"{v:.4f}" for v in reference.tolist()}
    if isinstance(reference, float):
        shown |= {f"{reference:.4f}", f"{reference:.3g}"}
    assert not [text for text in shown if text in message], message


def test_like_checks_the_form_before_the_value(raising):
    half_size = 338.0
    with pytest.raises(CheckFailed, match="half_size should be an int, got a float"):
        check_value("half_size", 338, like=0, exercise="Exercise 3")
    T = torch.tensor([0.5])
    with pytest.raises(CheckFailed, match="T should be a number, got a tensor"):
        check_value("T", 0.9, through=lambda t: t, what="it", like=0.0, exercise="Exercise 3")


def test_through_judges_a_quantity_computed_from_the_answer(raising, capsys):
    scores = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    top = lambda T: torch.softmax(scores / T, 0)[0]  # noqa: E731
    T90 = 0.43597
    check_value("T90", 0.9, through=top, what="the top probability at T90", atol=1e-4, exercise="Exercise 3")
    T90 = 0.3
    with pytest.raises(CheckFailed, match="the top probability at T90 is too large"):
        check_value("T90", 0.9, through=top, what="the top probability at T90", atol=1e-4, exercise="Exercise 3")
    T90 = "cold"
    with pytest.raises(CheckFailed, match="the top probability at T90 cannot be computed from T90: TypeError"):
        check_value("T90", 0.9, through=top, what="the top probability at T90", exercise="Exercise 3")
    with pytest.raises(ValueError, match="what must say what through"):
        check_value("T90", 0.9, through=top, exercise="Exercise 3")


def test_answer_and_exercise_are_validated():
    with pytest.raises(TypeError, match="answer must be the name of the answer as a string"):
        check_value(3, 3, exercise="Exercise 1")
    with pytest.raises(ValueError, match="answer must be a Python name"):
        check_value("first pair", 3, exercise="Exercise 1")
    with pytest.raises(TypeError, match="exercise must be a str"):
        check_value("x", 3, exercise=1)


def test_answer_hash_normalises_what_should_count_as_equal():
    assert answer_hash((105, 120)) == answer_hash([105, 120]) == answer_hash((np.int64(105), torch.tensor(120)))
    assert answer_hash(3) == answer_hash(3.0) == answer_hash(np.int32(3))
    assert answer_hash(" B ") == answer_hash("b") and answer_hash("a  b") == answer_hash("A b")
    assert answer_hash({2, 1}) == answer_hash({1, 2}) and answer_hash({"b": 1, "a": 2}) == answer_hash({"a": 2, "b": 1})
    distinct = [answer_hash(v) for v in (3, "3", True, 1, (1, 2), (2, 1), 0.5, set(), {}, [])]
    assert len(set(distinct)) == len(distinct)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", answer_hash("B"))
    with pytest.raises(TypeError, match="value must be a bool, an int, a str"):
        answer_hash(object())


def test_check_hash_passes_the_right_answer_and_names_a_wrong_form(raising, capsys):
    digest = answer_hash((105, 120))
    first_pair = (105, 120)
    check_hash("first_pair", digest, like=(0, 0), exercise="Exercise 1")
    assert capsys.readouterr().out == "✔ Exercise 1: check passed\n"
    first_pair = [105, 120]
    with pytest.raises(CheckFailed, match="first_pair should be a tuple, got a list"):
        check_hash("first_pair", digest, like=(0, 0), exercise="Exercise 1")
    first_pair = (105, 121)
    with pytest.raises(CheckFailed, match=r"first_pair is not the right answer\n  Hint: ties") as info:
        check_hash("first_pair", digest, like=(0, 0), exercise="Exercise 1", hint="ties")
    assert "120" not in str(info.value)
    first_pair = object()
    with pytest.raises(CheckFailed, match="first_pair cannot be an object"):
        check_hash("first_pair", digest, exercise="Exercise 1")
    with pytest.raises(ValueError, match="digest must be 'sha256:' and 64 hex digits"):
        check_hash("first_pair", "105,120", exercise="Exercise 1")


def test_the_hash_command_prints_the_digest(capsys):
    checks.main(["(105, 120)"])
    assert capsys.readouterr().out.strip() == answer_hash((105, 120))
    with pytest.raises(SystemExit):
        checks.main(["not a literal"])
    assert "value must be a Python literal" in capsys.readouterr().err


def reference_lse(z: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(z, 0)


CASES = {"small scores": (torch.tensor([0.5, -2.0, 3.0]),), "large scores": (torch.tensor([1000.0, 1000.0]),)}


def test_check_function_names_the_failing_case(raising, capsys):
    def lse(z):
        m = z.max()
        return m + torch.log(torch.exp(z - m).sum())
    check_function("lse", reference_lse, CASES, exercise="Exercise 1")
    assert capsys.readouterr().out == "✔ Exercise 1: check passed\n"

    def lse(z):  # noqa: F811 (each definition is one learner's attempt)
        return torch.log(torch.exp(z).sum())
    with pytest.raises(CheckFailed, match="^✘ Exercise 1: in case large scores: the result is infinite$"):
        check_function("lse", reference_lse, CASES, exercise="Exercise 1")

    def lse(z):
        return None
    with pytest.raises(CheckFailed, match="in case small scores: lse returned None"):
        check_function("lse", reference_lse, CASES, exercise="Exercise 1")

    def lse(z):
        return {}["k"]
    with pytest.raises(CheckFailed, match="in case small scores: lse raised KeyError: .k."):
        check_function("lse", reference_lse, CASES, exercise="Exercise 1")
    lse = 3
    with pytest.raises(CheckFailed, match="lse should be a function, got an int"):
        check_function("lse", reference_lse, CASES, exercise="Exercise 1")


def test_check_function_cases_are_numbered_or_labelled(raising):
    def double(x):
        return 2 * x + (x == 3)
    with pytest.raises(CheckFailed, match="in case 2: the result is too large"):
        check_function("double", lambda x: 2 * x, [(1,), (3,)], exercise="Exercise 1")
    with pytest.raises(TypeError, match=r"case 1 must be a tuple of arguments \(write \(x,\) for one\)"):
        check_function("double", lambda x: 2 * x, [1, 3], exercise="Exercise 1")
    with pytest.raises(ValueError, match="cases must hold at least one case"):
        check_function("double", lambda x: 2 * x, [], exercise="Exercise 1")


def test_check_function_expects_the_exception_the_reference_raises(raising, capsys):
    def reference(k):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return k

    def top_k(k):
        if k < 1:
            raise ValueError("bad k")
        return k
    check_function("top_k", reference, [(2,), (0,)], exercise="Exercise 2")

    def top_k(k):
        return k
    with pytest.raises(CheckFailed, match="in case 2: top_k should raise ValueError, but nothing was raised"):
        check_function("top_k", reference, [(2,), (0,)], exercise="Exercise 2")

    def top_k(k):
        if k < 1:
            raise KeyError(k)
        return k
    with pytest.raises(CheckFailed, match="top_k should raise ValueError, got KeyError"):
        check_function("top_k", reference, [(2,), (0,)], exercise="Exercise 2")


@pytest.mark.parametrize("forbid, called", [(["torch.logsumexp"], "torch.logsumexp"),
                                            (["torch.Tensor.logsumexp"], "torch.Tensor.logsumexp")])
def test_forbid_blocks_the_library_function_the_exercise_asks_for(raising, forbid, called):
    def lse(z):
        return torch.logsumexp(z, 0) if called == "torch.logsumexp" else z.logsumexp(0)
    with pytest.raises(CheckFailed, match=f"lse calls {re.escape(called)}, which this exercise asks you to do without"):
        check_function("lse", reference_lse, CASES, exercise="Exercise 1", forbid=forbid)
    assert float(torch.logsumexp(torch.zeros(2), 0)) == pytest.approx(math.log(2))  # restored
    assert float(torch.zeros(2).logsumexp(0)) == pytest.approx(math.log(2))


def test_forbid_catches_an_alias_and_a_swallowed_call(raising):
    namespace = {"torch": torch, "check_function": check_function, "reference_lse": reference_lse, "CASES": CASES}
    exec("from torch import logsumexp as lse_of_torch\n"  # a notebook's namespace is its globals
         "def lse(z):\n"
         "    try:\n"
         "        return lse_of_torch(z, 0)\n"
         "    except Exception:\n"
         "        return torch.zeros(())\n", namespace)
    with pytest.raises(CheckFailed, match="lse calls torch.logsumexp"):
        exec("check_function('lse', reference_lse, CASES, exercise='Exercise 1', forbid=['torch.logsumexp'])",
             namespace)
    assert namespace["lse_of_torch"] is torch.logsumexp  # restored


def test_forbid_takes_a_notebook_name(raising):
    def jacobian(s):
        return torch.diag(s) - torch.outer(s, s)
    namespace_check = ("check_function('backward', lambda s, g: jacobian(s).T @ g, [(s, g)], exercise='Ex 2', "
                       "forbid=['jacobian'])")
    s, g = torch.softmax(torch.tensor([1.0, 2.0]), 0), torch.tensor([1.0, -1.0])
    namespace = {"check_function": check_function, "jacobian": jacobian, "s": s, "g": g, "torch": torch}
    exec("def backward(s, g):\n    return jacobian(s).T @ g\n", namespace)  # a notebook's globals
    with pytest.raises(CheckFailed, match="backward calls jacobian"):
        exec(namespace_check, namespace)
    assert namespace["jacobian"] is jacobian
    with pytest.raises(ValueError, match="forbid names 'no_such_function'"):
        exec("check_function('backward', lambda s, g: g, [(s, g)], exercise='Ex 2', forbid=['no_such_function'])",
             namespace)


def test_forbid_by_notebook_name_also_blocks_the_call_through_its_module(raising):
    from course_lib import softmax as softmax_module
    namespace = {"check_function": check_function, "torch": torch}
    exec("from course_lib.softmax import log_softmax\n"
         "import course_lib.softmax as S\n"
         "def answer(z):\n"
         "    return S.log_softmax(z, dim=0)\n", namespace)
    check = "check_function('answer', lambda z: z - torch.logsumexp(z, 0), [(torch.tensor([1.0, 2.0]),)], exercise='Ex 1', forbid=['log_softmax'])"
    with pytest.raises(CheckFailed, match="answer calls log_softmax"):
        exec(check, namespace)
    assert softmax_module.log_softmax is namespace["log_softmax"]  # restored
    exec("def answer(z):\n    return z - torch.logsumexp(z, 0)\n", namespace)
    exec(check, namespace)


def test_check_that_blocks_forbidden_calls_inside_its_properties(raising, capsys):
    def penalty(x):
        return torch.logsumexp(x, 0)
    properties = {"the gradient is wrong": lambda f: bool(torch.isfinite(f(torch.zeros(2))))}
    with pytest.raises(CheckFailed, match="penalty calls torch.logsumexp, which this exercise asks you to do without"):
        check_that("penalty", properties, exercise="Exercise 1", forbid=["torch.logsumexp"])
    assert float(torch.logsumexp(torch.zeros(2), 0)) == pytest.approx(math.log(2))  # restored

    def penalty(x):  # noqa: F811
        return x.exp().sum().log()
    check_that("penalty", properties, exercise="Exercise 1", forbid=["torch.logsumexp"])
    assert capsys.readouterr().out == "✔ Exercise 1: check passed\n"
    with pytest.raises(TypeError, match="forbid must be a list"):
        check_that("penalty", properties, exercise="Exercise 1", forbid="torch.logsumexp")


def test_check_that_reports_the_first_property_that_fails(raising, capsys):
    properties = {"n is too small: the ratio is below 2": lambda n: n >= 338,
                  "n is too large: one fewer already reaches 2": lambda n: n - 1 < 338}
    n = 338
    check_that("n", properties, like=0, exercise="Exercise 3")
    assert capsys.readouterr().out == "✔ Exercise 3: check passed\n"
    for n, message in [(300, "n is too small"), (339, "n is too large"), (338.0, "n should be an int")]:  # noqa: B007
        with pytest.raises(CheckFailed, match=message):
            check_that("n", properties, like=0, exercise="Exercise 3")
    n = "338"
    with pytest.raises(CheckFailed, match=r"n is too small: the ratio is below 2 \(checking it raised TypeError"):
        check_that("n", properties, exercise="Exercise 3")
    n = 338
    with pytest.raises(TypeError, match="must return a bool, got int"):
        check_that("n", {"n is odd": lambda n: n % 2}, exercise="Exercise 3")
