"""Tests for course_lib.softmax: softmax, log-softmax and the softmax Jacobian, against torch."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.softmax import log_softmax, softmax, softmax_jacobian

NEG_INF = -math.inf


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    x = randn(4, 64, seed=3) * 4
    for ours, theirs in ((softmax, torch.softmax), (log_softmax, torch.log_softmax)):
        got = ours(x.to(dtype), dim=-1)
        assert got.dtype == dtype
        reference = theirs(x.to(dtype).float(), dim=-1).to(dtype)  # torch upcasts the same way
        torch.testing.assert_close(got, reference, rtol=0, atol=0)
    rows = softmax(x.to(torch.bfloat16)).float().sum(-1)
    assert bool(((rows - 1).abs() < 1e-2).all())


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_and_log_softmax_match_torch(dim: int) -> None:
    x = randn(4, 5, 6) * 5
    torch.testing.assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim))
    torch.testing.assert_close(log_softmax(x, dim=dim), torch.log_softmax(x, dim=dim))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(values=st.lists(st.floats(-50, 50), min_size=1, max_size=8),
       shift=st.floats(-1e3, 1e3))
def test_softmax_is_shift_invariant(values: list[float], shift: float) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(softmax(x + shift), softmax(x))
    assert softmax(x).sum().item() == pytest.approx(1.0)
    assert bool(((softmax(x) > 0) & (softmax(x) <= 1)).all())


def test_softmax_does_not_overflow_at_large_logits() -> None:
    x = torch.tensor([1000.0, 999.0, 998.0])
    naive = torch.exp(x) / torch.exp(x).sum()
    assert torch.isnan(naive).all()  # exp(1000) = inf in float32: inf / inf
    expected = torch.exp(torch.tensor([0.0, -1.0, -2.0]))
    torch.testing.assert_close(softmax(x), expected / expected.sum())
    torch.testing.assert_close(softmax(torch.tensor([1000.0, 1000.0])), torch.tensor([0.5, 0.5]))


def test_log_softmax_keeps_tiny_probabilities() -> None:
    x = torch.tensor([0.0, -200.0])
    assert torch.log(softmax(x))[1].item() == NEG_INF  # exp(-200) underflows in float32
    torch.testing.assert_close(log_softmax(x), torch.tensor([0.0, -200.0]))


def test_minus_inf_entries_get_exactly_zero() -> None:
    x = torch.tensor([[1.0, NEG_INF, 2.0], [NEG_INF, NEG_INF, NEG_INF]])
    s = softmax(x)
    assert s[0, 1].item() == 0.0
    torch.testing.assert_close(s[0], torch.softmax(x[0], dim=-1))
    assert torch.equal(s[1], torch.zeros(3))  # documented: all -inf row -> zeros, not NaN
    ls = log_softmax(x)
    assert torch.isneginf(ls[1]).all() and ls[0, 1].item() == NEG_INF
    torch.testing.assert_close(ls[0], torch.log_softmax(x[0], dim=-1))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_softmax_leaves_its_input_alone_and_matches_torch(requires_grad: bool) -> None:
    x = randn(4, 7, 9).requires_grad_(requires_grad)  # without grad, softmax works in place on a copy
    before = x.detach().clone()
    s = softmax(x, dim=1)
    assert torch.equal(x.detach(), before)
    torch.testing.assert_close(s, torch.softmax(before, dim=1))
    assert s.requires_grad == requires_grad


def test_softmax_overwrite_reuses_the_input_only_without_gradient() -> None:
    x = randn(3, 5)
    expected = torch.softmax(x, dim=-1)
    s = softmax(x, overwrite=True)
    assert s.data_ptr() == x.data_ptr()  # the result lives in x's memory
    torch.testing.assert_close(s, expected)
    y = randn(3, 5).requires_grad_()
    before = y.detach().clone()
    softmax(y, overwrite=True).sum().backward()  # with a gradient to track, nothing is overwritten
    assert torch.equal(y.detach(), before) and y.grad is not None
    row = randn(3)
    expanded = row.expand(4, 3)  # (4, 3) whose rows share one row's memory
    s = softmax(expanded, overwrite=True)  # cannot be written in place: computed out of place
    torch.testing.assert_close(s, torch.softmax(row, dim=-1).expand(4, 3))


def test_all_minus_inf_row_has_finite_gradient() -> None:
    x = torch.tensor([[0.5, NEG_INF], [NEG_INF, NEG_INF]], requires_grad=True)
    (softmax(x) * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_softmax_gradient_matches_autograd_reference() -> None:
    x = randn(3, 5, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(softmax, (x,))
    assert torch.autograd.gradcheck(log_softmax, (x,))


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([1.0, math.nan]), "NaN"),
    (torch.tensor([1.0, math.inf]), r"\+inf"),
])
def test_softmax_rejects_nan_and_plus_inf(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        softmax(bad)
    with pytest.raises(ValueError, match=message):
        log_softmax(bad)


def test_softmax_bad_inputs() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="scalar"):
        softmax(torch.tensor(1.0))
    with pytest.raises(ValueError, match="dim must be in"):
        softmax(torch.zeros(2, 3), dim=2)
    with pytest.raises(ValueError, match="size 0"):
        softmax(torch.zeros(2, 0))
    with pytest.raises(TypeError, match="torch.Tensor"):
        softmax([1.0, 2.0])


def test_softmax_jacobian_matches_autograd() -> None:
    z = randn(6, dtype=torch.float64)
    expected = torch.autograd.functional.jacobian(lambda t: softmax(t), z)
    J = softmax_jacobian(softmax(z))
    torch.testing.assert_close(J, expected)
    torch.testing.assert_close(J.sum(dim=1), torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(J, J.T)


def test_softmax_jacobian_bad_inputs() -> None:
    with pytest.raises(ValueError, match="1-D"):
        softmax_jacobian(torch.ones(2, 2) / 4)
    with pytest.raises(ValueError, match="1-D"):
        softmax_jacobian(torch.ones(0))


