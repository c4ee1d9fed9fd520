"""Tests for course_lib.quantization: absmax rounding, its error bound, and the model copy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib.quantization import (
    dequantize,
    fake_quantize,
    quantize_absmax,
    quantized_copy,
)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(2, 16), rows=st.integers(1, 6), cols=st.integers(1, 9), seed=st.integers(0, 999))
def test_integers_in_range_and_error_at_most_half_a_step(bits, rows, cols, seed):
    w = randn(rows, cols, seed=seed, dtype=torch.float64) * 3
    q, scale = quantize_absmax(w, bits)
    levels = 2 ** (bits - 1) - 1
    assert q.dtype == (torch.int8 if bits <= 8 else torch.int16) and q.shape == w.shape
    assert scale.shape == (rows, 1)
    assert int(q.abs().max()) == levels  # every row's largest |weight| becomes +-L exactly
    assert torch.equal(q.abs().amax(dim=1), torch.full((rows,), levels, dtype=q.dtype))
    error = (dequantize(q, scale) - w).abs()  # (rows, cols)
    assert bool((error <= scale / 2 + 1e-12).all())


def test_hand_computed_example_and_dim():
    w = torch.tensor([[1.0, -0.5, 0.2], [0.0, 0.3, -0.6]])
    q, scale = quantize_absmax(w, bits=3)  # L = 3 levels each side
    torch.testing.assert_close(scale, torch.tensor([[1 / 3], [0.2]]))
    assert q.tolist() == [[3, -2, 1], [0, 2, -3]]  # -0.5 / (1/3) = -1.5 rounds half to even: -2
    q_cols, scale_cols = quantize_absmax(w, bits=3, dim=0)
    assert scale_cols.shape == (1, 3) and q_cols.tolist() == [[3, -3, 1], [0, 2, -3]]


def test_all_zero_row_quantizes_to_zeros():
    w = torch.zeros(2, 4)
    w[1] = torch.tensor([0.1, -0.2, 0.3, 0.4])
    out = fake_quantize(w, 4)
    assert torch.equal(out[0], torch.zeros(4)) and torch.isfinite(out).all()


def test_error_halves_per_extra_bit():
    w = randn(64, 256, dtype=torch.float64)
    errors = [(fake_quantize(w, b) - w).pow(2).mean().sqrt().item() for b in range(4, 10)]
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(1.8 < r < 2.3 for r in ratios), ratios  # step L ~ 2^(bits-1): error x 1/2 per bit


def test_fake_quantize_keeps_dtype():
    assert fake_quantize(randn(3, 4, dtype=torch.float64), 8).dtype == torch.float64
    assert fake_quantize(randn(3, 4).half(), 8).dtype == torch.float16


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bits", [4, 8, 10, 16])
def test_half_precision_is_quantized_like_its_float32_values(dtype, bits):
    w = (randn(16, 64) * 3).to(dtype)  # (16, 64) values exactly representable in dtype
    q, scale = quantize_absmax(w, bits)
    q32, scale32 = quantize_absmax(w.float(), bits)  # the reference: the same values in float32
    levels = 2 ** (bits - 1) - 1
    assert torch.equal(q, q32) and torch.equal(scale, scale32)
    assert int(q.abs().max()) == levels and bool((q * w.float() >= 0).all())  # no sign flips
    assert torch.equal(fake_quantize(w, bits), dequantize(q32, scale32).to(dtype))


def test_half_precision_largest_weight_keeps_its_sign_and_tiny_rows_survive():
    q, _ = quantize_absmax(torch.tensor([[1.0, -0.5, 0.25]]).half(), 16)
    assert q.tolist() == [[32767, -16384, 8192]]  # not -32768: 32767 is not a float16 value
    tiny = torch.full((1, 4), 5e-4, dtype=torch.float16)  # 5e-4 / 32767 underflows in float16
    assert torch.equal(fake_quantize(tiny, 16), tiny)
    linear = nn.Linear(3, 1, bias=False).half()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -0.5, 0.25]]))
    assert quantized_copy(linear, 16).weight.tolist() == [[1.0, -0.5, 0.25]]


def test_quantized_copy_rounds_matrices_only_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 8), nn.LayerNorm(8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copied = quantized_copy(model, 4)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])  # the original is untouched
    state = copied.state_dict()
    for key in ("0.weight", "1.weight"):
        assert not torch.equal(state[key], before[key])
        assert torch.equal(state[key], fake_quantize(before[key], 4))
        assert all(row.unique().numel() <= 15 for row in state[key])  # at most 2L + 1 = 15 levels a row
    for key in ("1.bias", "2.weight", "2.bias"):
        assert torch.equal(state[key], before[key])  # vectors keep full precision


@pytest.mark.parametrize("bits, error, message", [
    (1, ValueError, r"bits must be an integer in \[2, 16\], got 1"),
    (17, ValueError, r"bits must be an integer in \[2, 16\], got 17"),
    (4.0, TypeError, "bits must be an integer, got float 4.0"),
    (True, TypeError, "bits must be an integer, got True"),
    ("8", TypeError, "bits must be an integer, got str '8'"),
])
def test_bad_bits(bits, error, message):
    with pytest.raises(error, match=message):
        quantize_absmax(torch.ones(2, 2), bits)
    with pytest.raises(error, match=message):
        quantized_copy(nn.Linear(2, 2), bits)


def test_numpy_integer_bits():
    weights = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    q, scale = quantize_absmax(weights, np.int64(4))
    expected_q, expected_scale = quantize_absmax(weights, 4)
    assert torch.equal(q, expected_q) and torch.equal(scale, expected_scale) and q.dtype == torch.int8
    assert torch.equal(fake_quantize(weights, np.int32(12)), fake_quantize(weights, 12))


@pytest.mark.parametrize("weights, error, message", [
    (torch.ones(2, 2, dtype=torch.long), TypeError, "weights must be a floating-point tensor, got dtype torch.int64"),
    (torch.tensor(1.0), ValueError, "at least one dimension"),
    ([1.0, 2.0], TypeError, "weights must be a torch.Tensor, got list"),
    (torch.tensor([1.0, math.nan]), ValueError, "finite"),
    (torch.tensor([1.0, math.inf]), ValueError, "finite"),
])
def test_bad_weights(weights, error, message):
    with pytest.raises(error, match=message):
        quantize_absmax(weights, 8)


def test_bad_model():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got dict"):
        quantized_copy({}, 8)
