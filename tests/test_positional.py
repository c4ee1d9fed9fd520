"""Tests for course_lib.positional: sinusoidal and learned positions, RoPE and ALiBi, against the
papers' formulas written out in plain Python."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.positional import (
    LearnedPositions,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    sinusoidal_positions,
)
from course_lib.softmax import softmax


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------------------------------
# sinusoidal and learned positions


def test_sinusoidal_matches_the_formula() -> None:
    n, d = 12, 8
    pe = sinusoidal_positions(n, d)
    assert pe.shape == (n, d)
    for p in range(n):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_sinusoidal_dot_products_depend_only_on_the_offset() -> None:
    pe = sinusoidal_positions(64, 32).double()
    for offset in (0, 1, 5, 20):
        dots = (pe[:64 - offset] * pe[offset:]).sum(-1)  # <PE_p, PE_{p+offset}> for every p
        torch.testing.assert_close(dots, torch.full_like(dots, dots[0].item()), atol=1e-4, rtol=0)
    assert (pe[0] @ pe[1]).item() > (pe[0] @ pe[20]).item()  # and the dot product does vary


def test_learned_positions() -> None:
    torch.manual_seed(0)
    table = LearnedPositions(512, 64)
    assert table.table.weight.std().item() == pytest.approx(0.01, rel=0.05)
    out = table(torch.arange(3, 7))
    assert out.shape == (4, 64)
    torch.testing.assert_close(out, table.table.weight[3:7])
    assert table(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 64)
    out.sum().backward()
    grad = table.table.weight.grad
    assert grad[3:7].abs().sum() > 0 and grad[7:].abs().sum() == 0


def test_positional_bad_inputs() -> None:
    with pytest.raises(ValueError, match="d_model must be even"):
        sinusoidal_positions(4, 7)
    with pytest.raises(ValueError, match="n_positions must be a positive integer, got 0"):
        sinusoidal_positions(0, 8)
    with pytest.raises(ValueError, match=r"base must be in \(1, inf\), got 1"):
        sinusoidal_positions(4, 8, base=1.0)
    with pytest.raises(TypeError, match="base must be a real number, got str '10000'"):
        sinusoidal_positions(4, 8, base="10000")
    with pytest.raises(TypeError, match="d_model must be an integer, got float 8.0"):
        LearnedPositions(8, 8.0)
    table = LearnedPositions(8, 4)
    with pytest.raises(ValueError, match=r"in \[0, n_positions=8\), got values from 0 to 8"):
        table(torch.arange(9))
    with pytest.raises(TypeError, match="int32/int64"):
        table(torch.arange(3.0))


# --------------------------------------------------------------------------------------------------
# RoPE


def rope_reference(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE as complex multiplication (Su et al. 2021): the pair (2i, 2i+1) is the complex number
    x_2i + i x_2i+1, multiplied by exp(i p theta_i)."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rotation = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64),
                           positions.double()[:, None] * theta)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * rotation).flatten(-2)


def test_rope_matches_complex_multiplication() -> None:
    x = randn(2, 3, 7, 8, dtype=torch.float64)
    positions = torch.tensor([0, 1, 2, 5, 9, 100, 1000])
    torch.testing.assert_close(apply_rope(x, positions), rope_reference(x, positions))
    torch.testing.assert_close(apply_rope(x), rope_reference(x, torch.arange(7)))


def test_rope_preserves_norms_and_dtype_and_leaves_position_zero() -> None:
    x = randn(5, 16)
    rotated = apply_rope(x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[0], x[0])
    assert apply_rope(x.half()).dtype == torch.float16


@settings(max_examples=30, deadline=None, derandomize=True)
@given(m=st.integers(0, 200), n=st.integers(0, 200), shift=st.integers(0, 1000),
       seed=st.integers(0, 100))
def test_rope_scores_depend_only_on_the_offset(m: int, n: int, shift: int, seed: int) -> None:
    q = randn(1, 32, seed=seed, dtype=torch.float64)
    k = randn(1, 32, seed=seed + 1, dtype=torch.float64)

    def score(pos_q: int, pos_k: int) -> float:
        rotated_q = apply_rope(q, torch.tensor([pos_q]))
        rotated_k = apply_rope(k, torch.tensor([pos_k]))
        return (rotated_q @ rotated_k.T).item()

    assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9)


def test_rope_bad_inputs() -> None:
    with pytest.raises(ValueError, match="must be even for RoPE, got 7"):
        apply_rope(randn(3, 7))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\) = \(3,\), got \(4,\)"):
        apply_rope(randn(3, 8), torch.arange(4))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, d\), got \(8,\)"):
        apply_rope(randn(8))
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got dtype torch.int64"):
        apply_rope(torch.ones(3, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="positions must be a torch.Tensor, got list"):
        apply_rope(randn(3, 8), [0, 1, 2])
    with pytest.raises(ValueError, match="base must be a finite number, got nan"):
        apply_rope(randn(3, 8), base=math.nan)


# --------------------------------------------------------------------------------------------------
# ALiBi


def reference_slopes(n: int) -> list[float]:
    """The slope rule of the ALiBi authors' reference code, written recursively as there."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_two(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_two(closest) + reference_slopes(2 * closest)[0::2][:n - closest]


def test_alibi_slopes_for_powers_of_two() -> None:
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -i for i in range(1, 9)]))
    torch.testing.assert_close(alibi_slopes(16),
                               torch.tensor([2.0 ** (-i / 2) for i in range(1, 17)]))
    for h in (1, 2, 4, 8, 16, 32):
        torch.testing.assert_close(alibi_slopes(h),
                                   torch.tensor([2.0 ** (-8 * i / h) for i in range(1, h + 1)]))


@pytest.mark.parametrize("n_heads", [3, 5, 6, 12, 20, 24])
def test_alibi_slopes_for_other_head_counts(n_heads: int) -> None:
    slopes = alibi_slopes(n_heads)
    torch.testing.assert_close(slopes, torch.tensor(reference_slopes(n_heads)))
    assert len(set(slopes.tolist())) == n_heads and bool((slopes < 1).all())


def test_alibi_bias_values_and_use_in_attention() -> None:
    bias = alibi_bias(4, 5)
    assert bias.shape == (4, 5, 5)
    m = alibi_slopes(4)
    assert bias[2, 4, 1].item() == pytest.approx(-m[2].item() * 3)
    torch.testing.assert_close(bias, bias.transpose(1, 2))
    assert torch.equal(torch.diagonal(bias, dim1=1, dim2=2), torch.zeros(4, 5))
    q, k, v = randn(4, 5, 8, seed=1), randn(4, 5, 8, seed=2), randn(4, 5, 8, seed=3)
    _, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(5), bias=bias)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(8)
    paper_bias = torch.stack([-m[h] * (torch.arange(5)[:, None] - torch.arange(5)[None, :])
                              for h in range(4)])  # m * (j - i), used on j <= i only
    expected = softmax((scores + paper_bias).masked_fill(~causal_mask(5), -math.inf))
    torch.testing.assert_close(weights, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_alibi_bias_in_half_precision_attention(dtype) -> None:
    q, k, v = (randn(2, 5, 8, seed=s).to(dtype) for s in (1, 2, 3))  # (H, T, d)
    bias = alibi_bias(2, 5, dtype=dtype)  # (H, T, T)
    assert bias.dtype == dtype and torch.equal(bias, alibi_bias(2, 5).to(dtype))
    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(5), bias=bias)
    assert out.dtype == weights.dtype == dtype
    ref_out, ref_weights = scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                        mask=causal_mask(5), bias=alibi_bias(2, 5))
    torch.testing.assert_close(out.float(), ref_out, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(weights.float(), ref_weights, atol=1e-2, rtol=1e-2)


def test_alibi_bad_inputs() -> None:
    with pytest.raises(ValueError, match="n_heads must be a positive integer, got 0"):
        alibi_slopes(0)
    with pytest.raises(ValueError, match="n_positions must be a positive integer, got 0"):
        alibi_bias(4, 0)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype, got torch.int64"):
        alibi_bias(4, 3, dtype=torch.long)


def test_numpy_integer_sizes() -> None:
    torch.testing.assert_close(sinusoidal_positions(np.int64(5), np.int64(8)), sinusoidal_positions(5, 8))
    assert LearnedPositions(np.int64(6), np.int32(4)).table.weight.shape == (6, 4)
    torch.testing.assert_close(alibi_bias(np.int64(3), np.int64(4)), alibi_bias(3, 4))
