"""Tests for course_lib.validation: each check accepts what it promises, returns the checked value,
and refuses the rest with the policy's exception (wrong type: TypeError, wrong value: ValueError) and a
message that names the argument and shows the value."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from course_lib import validation
from course_lib.validation import (
    as_float_tensor,
    boolean,
    callable_arg,
    float_tensor,
    int_in_range,
    integer,
    integer_tensor,
    module,
    nonnegative_int,
    nonnegative_number,
    number_in_range,
    one_of,
    positive_int,
    positive_number,
    probability,
    real,
    string,
    tensor,
    type_name,
)

# --------------------------------------------------------------------------------------------------
# integers

INTEGER_LIKE = [3, np.int64(3), np.int32(3), np.uint8(3), torch.tensor(3), torch.tensor(3, dtype=torch.int16)]


@pytest.mark.parametrize("value", INTEGER_LIKE, ids=type_name)
@pytest.mark.parametrize("check", [integer, positive_int, nonnegative_int, lambda v, n: int_in_range(v, n, 1, 5)])
def test_integer_checks_accept_ints_numpy_ints_and_0d_integer_tensors(check, value):
    result = check(value, "n")
    assert result == 3 and type(result) is int


@pytest.mark.parametrize("value, message", [
    (True, "n must be an integer, got True"),
    (False, "n must be an integer, got False"),
    (3.0, "n must be an integer, got float 3.0"),
    (np.float64(3.0), r"n must be an integer, got float64 (np.float64\()?3.0"),  # NumPy 2 or 1 repr
    ("3", "n must be an integer, got str '3'"),
    (None, "n must be an integer, got NoneType None"),
    (Fraction(3, 1), "n must be an integer, got Fraction"),
    (torch.tensor([3]), r"n must be an integer, got a tensor of shape \(1,\) and dtype torch.int64"),
    (torch.tensor(3.0), r"n must be an integer, got a tensor of shape \(\) and dtype torch.float32"),
    (torch.tensor(True), r"n must be an integer, got a tensor of shape \(\) and dtype torch.bool"),
    (np.bool_(True), "n must be an integer, got bool_? (np.)?True"),
])
@pytest.mark.parametrize("check", [integer, positive_int, nonnegative_int, lambda v, n: int_in_range(v, n, 0, 9)])
def test_integer_checks_refuse_other_types_with_a_type_error(check, value, message):
    with pytest.raises(TypeError, match=message):
        check(value, "n")


@pytest.mark.parametrize("call, message", [
    (lambda: positive_int(0, "n_heads"), "n_heads must be a positive integer, got 0"),
    (lambda: positive_int(np.int64(-2), "n_heads"), "n_heads must be a positive integer, got -2"),
    (lambda: nonnegative_int(-1, "eos_id"), "eos_id must be a non-negative integer, got -1"),
    (lambda: int_in_range(17, "bits", 2, 16), r"bits must be an integer in \[2, 16\], got 17"),
    (lambda: int_in_range(1, "bits", 2, 16), r"bits must be an integer in \[2, 16\], got 1"),
    (lambda: int_in_range(255, "vocab_size", 256), "vocab_size must be an integer >= 256, got 255"),
])
def test_integer_checks_refuse_values_out_of_range_with_a_value_error(call, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        call()


def test_integer_ranges_include_both_ends_and_may_be_unbounded_above():
    assert nonnegative_int(0, "n") == 0
    assert int_in_range(2, "bits", 2, 16) == 2 and int_in_range(16, "bits", 2, 16) == 16
    assert int_in_range(10**30, "n", 256) == 10**30
    assert integer(-5, "offset") == -5


# --------------------------------------------------------------------------------------------------
# real numbers

REAL_LIKE = [0.5, np.float64(0.5), np.float32(0.5), torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64)]


@pytest.mark.parametrize("value", REAL_LIKE, ids=type_name)
@pytest.mark.parametrize("check", [real, positive_number, nonnegative_number, probability,
                                   lambda v, n: number_in_range(v, n, 0.0, 1.0, low_open=True, high_open=True)])
def test_number_checks_accept_floats_numpy_floats_and_0d_tensors(check, value):
    result = check(value, "p")
    assert result == 0.5 and type(result) is float


@pytest.mark.parametrize("value", [2, np.int64(2), Fraction(2, 1), torch.tensor(2)], ids=type_name)
def test_number_checks_accept_integers_and_return_floats(value):
    assert real(value, "x") == 2.0 and type(real(value, "x")) is float
    assert type(positive_number(value, "x")) is float


@pytest.mark.parametrize("value, message", [
    (True, "x must be a real number, got bool True"),
    (np.bool_(False), "x must be a real number, got bool_? (np.)?False"),
    ("0.5", "x must be a real number, got str '0.5'"),
    (None, "x must be a real number, got NoneType None"),
    (1 + 2j, r"x must be a real number, got complex \(1\+2j\)"),
    (torch.tensor([0.5]), "x must be a real number, got Tensor"),
    (torch.tensor(True), "x must be a real number, got Tensor"),
    (torch.tensor(1j), "x must be a real number, got Tensor"),
])
@pytest.mark.parametrize("check", [real, positive_number, nonnegative_number, probability,
                                   lambda v, n: number_in_range(v, n, -1.0, 1.0)])
def test_number_checks_refuse_other_types_with_a_type_error(check, value, message):
    with pytest.raises(TypeError, match=message):
        check(value, "x")


@pytest.mark.parametrize("call, message", [
    (lambda: real(math.nan, "length_penalty"), "length_penalty must be a finite number, got nan"),
    (lambda: real(math.inf, "length_penalty"), "length_penalty must be a finite number, got inf"),
    (lambda: positive_number(0, "scale"), "scale must be positive, got 0.0"),
    (lambda: positive_number(-1.5, "scale"), "scale must be positive, got -1.5"),
    (lambda: positive_number(math.inf, "scale"), "scale must be a finite number, got inf"),
    (lambda: nonnegative_number(-0.5, "temperature"), "temperature must be >= 0, got -0.5"),
    (lambda: nonnegative_number(math.nan, "temperature"), "temperature must be a finite number, got nan"),
    (lambda: probability(1.5, "top_p", allow_zero=False), r"top_p must be in \(0, 1\], got 1.5"),
    (lambda: probability(0.0, "top_p", allow_zero=False), r"top_p must be in \(0, 1\], got 0"),
    (lambda: probability(-0.1, "bias"), r"bias must be in \[0, 1\], got -0.1"),
    (lambda: number_in_range(1.0, "dropout", 0.0, 1.0, high_open=True), r"dropout must be in \[0, 1\), got 1"),
    (lambda: number_in_range(math.nan, "base", 1.0, math.inf), "base must be a finite number, got nan"),
    (lambda: number_in_range(math.inf, "base", 1.0, math.inf, high_open=True), r"base must be in \[1, inf\), got inf"),
])
def test_number_checks_refuse_values_out_of_range_with_a_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_number_ranges_and_their_open_ends():
    assert real(-3, "x") == -3.0 and real(math.inf, "x", finite=False) == math.inf
    assert nonnegative_number(0, "lr") == 0.0
    assert probability(0, "p") == 0.0 and probability(1, "p") == 1.0
    assert probability(1, "top_p", allow_zero=False) == 1.0
    assert number_in_range(math.inf, "loss", 0.0, math.inf) == math.inf  # closed at infinity: inf is in
    assert number_in_range(0.0, "dropout", 0.0, 1.0, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"x must be in \(0, 1\), got 0"):
        number_in_range(0, "x", 0.0, 1.0, low_open=True, high_open=True)


# --------------------------------------------------------------------------------------------------
# bools and choices


def test_boolean_accepts_bools_only():
    assert boolean(True, "attention") is True and boolean(False, "attention") is False
    for value, shown in ((1, "int 1"), (0, "int 0"), ("yes", "str 'yes'"), (None, "NoneType None")):
        with pytest.raises(TypeError, match=f"^attention must be a bool, got {shown}$"):
            boolean(value, "attention")


def test_one_of_returns_the_choice_and_lists_the_others():
    assert one_of("pre", "norm_position", ("pre", "post")) == "pre"
    assert one_of(None, "prefer", (None, "cpu", "cuda")) is None
    assert one_of("train", "split", {"train": 1, "val": 2}) == "train"  # a mapping offers its keys
    with pytest.raises(ValueError, match="^norm_position must be one of 'pre', 'post'; got 'middle'$"):
        one_of("middle", "norm_position", ("pre", "post"))
    with pytest.raises(ValueError, match="prefer must be one of None, 'cpu', 'cuda'; got 'tpu'"):
        one_of("tpu", "prefer", iter([None, "cpu", "cuda"]))  # any iterable of choices


# --------------------------------------------------------------------------------------------------
# tensors


def test_tensor_checks_return_the_tensor_itself():
    x = torch.zeros(2, 3)
    ids = torch.zeros(4, dtype=torch.long)
    assert tensor(x, "x") is x and float_tensor(x, "x", ndim=2) is x and float_tensor(x, "x", ndim=(1, 2)) is x
    assert integer_tensor(ids, "ids", ndim=1) is ids
    assert integer_tensor(torch.zeros(2, dtype=torch.uint8), "ids") is not None
    assert float_tensor(torch.zeros(2, dtype=torch.bfloat16), "x").dtype == torch.bfloat16


@pytest.mark.parametrize("call, error, message", [
    (lambda: tensor([1.0], "x"), TypeError, "^x must be a torch.Tensor, got list$"),
    (lambda: tensor(np.zeros(2), "x"), TypeError, "^x must be a torch.Tensor, got ndarray$"),
    (lambda: tensor(torch.zeros(2), "x", ndim=2), ValueError, r"^x must have 2 dimensions, got shape \(2,\)$"),
    (lambda: tensor(torch.zeros(2), "x", ndim=(3, 4)), ValueError, r"^x must have 3 or 4 dimensions, got shape"),
    (lambda: float_tensor(torch.zeros(2, dtype=torch.long), "logits"), TypeError,
     "^logits must be a floating-point tensor, got dtype torch.int64$"),
    (lambda: float_tensor(1.0, "logits"), TypeError, "^logits must be a torch.Tensor, got float$"),
    (lambda: integer_tensor(torch.zeros(2), "ids"), TypeError,
     "^ids must be an integer tensor, got dtype torch.float32$"),
    (lambda: integer_tensor(torch.zeros(2, dtype=torch.bool), "ids"), TypeError, "got dtype torch.bool$"),
    (lambda: integer_tensor(torch.zeros(2, dtype=torch.complex64), "ids"), TypeError, "got dtype torch.complex64$"),
    (lambda: integer_tensor([0, 1], "ids"), TypeError, "^ids must be a torch.Tensor, got list$"),
])
def test_tensor_checks_refuse_with_the_policy_exception(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_as_float_tensor_converts_numpy_arrays_and_nothing_else():
    array = np.arange(6.0).reshape(2, 3)
    converted = as_float_tensor(array, "X", ndim=2)
    assert isinstance(converted, torch.Tensor) and converted.dtype == torch.float64
    assert np.shares_memory(converted.numpy(), array)  # torch.as_tensor: no copy
    x = torch.zeros(3)
    assert as_float_tensor(x, "X") is x
    with pytest.raises(TypeError, match="^X must be a floating-point tensor, got dtype torch.int64$"):
        as_float_tensor(np.arange(3), "X")
    with pytest.raises(TypeError, match="^X must be a torch.Tensor, got list$"):
        as_float_tensor([[1.0, 2.0]], "X")
    with pytest.raises(ValueError, match=r"^X must have 2 dimensions, got shape \(3,\)$"):
        as_float_tensor(np.zeros(3), "X", ndim=2)


# --------------------------------------------------------------------------------------------------
# callables and names


def test_callable_arg_names_the_expected_signature():
    assert callable_arg(len, "fn") is len
    with pytest.raises(TypeError, match="^fn must be callable, got int$"):
        callable_arg(3, "fn")
    with pytest.raises(TypeError, match="^fn must be callable with no arguments, got float$"):
        callable_arg(0.5, "fn", "callable with no arguments")


def test_type_name_is_the_short_class_name():
    assert type_name(3) == "int" and type_name(np.int64(3)) == "int64" and type_name(torch.zeros(1)) == "Tensor"


def test_every_check_returns_its_value():
    """`n = positive_int(n, "n")` is the pattern: no check returns None."""
    calls = [integer(1, "n"), positive_int(1, "n"), nonnegative_int(1, "n"), int_in_range(1, "n", 0, 1),
             real(1, "x"), positive_number(1, "x"), nonnegative_number(1, "x"), number_in_range(1, "x", 0, 1),
             probability(1, "p"), boolean(True, "b"), one_of(1, "c", (1,)), tensor(torch.ones(1), "t"),
             float_tensor(torch.ones(1), "t"), as_float_tensor(torch.ones(1), "t"),
             integer_tensor(torch.ones(1, dtype=torch.long), "t"), callable_arg(len, "f"), string("s", "s"),
             module(torch.nn.Identity(), "m")]
    assert all(result is not None for result in calls)
    assert len(calls) == len(validation.__all__) - 1  # every helper but type_name, which is no check


def test_module_accepts_modules_and_names_anything_else():
    layer = torch.nn.Linear(2, 2)
    assert module(layer, "model") is layer
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got int"):
        module(3, "model")
