"""Tests for QLoRA's pieces in course_lib.quantization: NF4 levels, blockwise NF4, 4-bit packing,
double quantization, bits per parameter and the fine-tuning memory estimator."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.quantization import (
    NF4_LEVELS,
    NF4_OFFSET,
    DoubleQuantized,
    MemoryBreakdown,
    NF4Quantized,
    bits_per_parameter,
    dequantize_nf4,
    double_dequantize,
    double_quantize,
    fake_quantize,
    finetuning_memory,
    nf4_levels,
    pack_4bit,
    quantize_nf4,
    unpack_4bit,
)

LEVELS = torch.tensor(NF4_LEVELS, dtype=torch.float64)
MAX_HALF_GAP = float((LEVELS[1:] - LEVELS[:-1]).max() / 2)  # the farthest a value is from its level


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------------------------------
# The levels


def test_published_levels_shape():
    assert len(NF4_LEVELS) == 16 and NF4_LEVELS[0] == -1.0 and NF4_LEVELS[-1] == 1.0
    assert NF4_LEVELS[7] == 0.0  # an exact zero
    assert list(NF4_LEVELS) == sorted(set(NF4_LEVELS))  # strictly increasing
    assert sum(v > 0 for v in NF4_LEVELS) == 8 and sum(v < 0 for v in NF4_LEVELS) == 7  # asymmetric


def test_levels_built_from_normal_quantiles_match_the_published_table():
    built = nf4_levels()
    assert built.dtype == torch.float64 and built.shape == (16,)
    torch.testing.assert_close(built, LEVELS, rtol=0, atol=1e-6)
    assert float((built - LEVELS).abs().max()) < 2e-7


def test_the_published_table_is_the_construction_with_float32_probabilities():
    """The table's last digits: the same construction with the probabilities rounded to float32."""
    def side(points: int) -> torch.Tensor:
        return torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, points)[:-1].double())
    values = torch.cat([side(9), torch.zeros(1, dtype=torch.float64), -side(8)]).float().sort().values
    assert torch.equal(values / values.max(), LEVELS.float())


def test_positive_levels_cut_equal_probability_mass():
    sigma = 1 / float(torch.special.ndtri(torch.tensor(NF4_OFFSET, dtype=torch.float64)))
    positive = nf4_levels()[7:]  # 0 and the 8 positive levels
    mass = torch.special.ndtr(positive / sigma).diff()  # P(level_i < X < level_i+1), X ~ N(0, sigma^2)
    torch.testing.assert_close(mass, torch.full_like(mass, mass[0].item()), rtol=1e-12, atol=0)


def test_offset_is_the_mean_of_the_two_half_step_probabilities():
    assert abs(NF4_OFFSET - ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2) < 5e-8


# --------------------------------------------------------------------------------------------------
# Blockwise NF4


def test_exact_codes_on_a_tiny_example():
    w = torch.tensor([[1.0, -0.5, 0.0, 0.2], [0.16, -2.0, 0.6, 1.4]])  # block 2 = 2 x [0.08, -1, 0.3, 0.7]
    q = quantize_nf4(w, block_size=4)
    assert q.codes.dtype == torch.uint8 and q.absmax.dtype == torch.float32
    # -0.5 is nearest -0.525 (code 2); 0.2 lies below the 0.161/0.246 midpoint (code 9); 0.3 above
    # the 0.246/0.338 midpoint (11); 0.7 above the 0.563/0.723 midpoint (14)
    assert q.codes.tolist() == [15, 2, 7, 9, 8, 0, 11, 14]
    assert q.absmax.tolist() == [1.0, 2.0] and q.shape == (2, 4) and q.block_size == 4
    assert pack_4bit(q.codes).tolist() == [0xF2, 0x79, 0x80, 0xBE]
    expected = torch.tensor([[1.0, NF4_LEVELS[2], 0.0, NF4_LEVELS[9]],
                             [2 * NF4_LEVELS[8], -2.0, 2 * NF4_LEVELS[11], 2 * NF4_LEVELS[14]]])
    assert torch.equal(dequantize_nf4(q), expected)


def test_halfway_values_take_the_lower_level():
    midpoint = (LEVELS[9] + LEVELS[10]) / 2
    q = quantize_nf4(torch.tensor([1.0, float(midpoint)], dtype=torch.float64), block_size=2)
    assert q.codes.tolist() == [15, 9]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 7), cols=st.integers(1, 40), block=st.integers(1, 70), seed=st.integers(0, 999))
def test_round_trip_error_is_at_most_half_the_widest_gap(rows, cols, block, seed):
    w = randn(rows, cols, seed=seed, dtype=torch.float64) * 3
    q = quantize_nf4(w, block_size=block)
    n_blocks = math.ceil(rows * cols / block)
    assert q.codes.shape == (rows * cols,) and q.absmax.shape == (n_blocks,)
    back = dequantize_nf4(q, dtype=torch.float64)
    assert back.shape == w.shape and back.dtype == torch.float64
    per_element = q.absmax.double().repeat_interleave(block)[:rows * cols].view(rows, cols)
    assert bool(((back - w).abs() <= MAX_HALF_GAP * per_element + 1e-6).all())
    largest = w.reshape(-1).abs()[torch.arange(rows * cols) // block == 0].max()
    assert float(q.absmax[0]) == pytest.approx(float(largest), rel=1e-7)  # stored in float32


def test_nf4_beats_uniform_int4_on_normal_weights():
    w = randn(512, 512, seed=3)  # N(0, 1) weights, blocks of 64 for both types
    nf4_mse = float((dequantize_nf4(quantize_nf4(w, 64)) - w).pow(2).mean())
    int4_mse = float((fake_quantize(w.view(-1, 64), 4).view_as(w) - w).pow(2).mean())  # absmax, 15 levels
    assert 0.008 < nf4_mse < 0.009 and 0.011 < int4_mse < 0.012  # measured: about 0.0085 and 0.0116
    assert nf4_mse < 0.8 * int4_mse


def test_a_block_size_that_does_not_divide_leaves_a_shorter_last_block():
    w = randn(10, seed=1)
    q = quantize_nf4(w, block_size=4)  # blocks of 4, 4 and 2
    assert q.absmax.tolist() == [float(w[i:i + 4].abs().max()) for i in (0, 4, 8)]
    head, tail = quantize_nf4(w[:8], block_size=4), quantize_nf4(w[8:], block_size=2)
    assert torch.equal(q.codes, torch.cat([head.codes, tail.codes]))
    assert torch.equal(dequantize_nf4(q), torch.cat([dequantize_nf4(head), dequantize_nf4(tail)]))


def test_an_all_zero_block_stays_zero():
    w = torch.zeros(3, 4)
    w[2] = torch.tensor([0.5, -1.0, 0.25, 0.0])
    q = quantize_nf4(w, block_size=4)
    assert q.absmax.tolist()[:2] == [0.0, 0.0] and q.codes[:8].tolist() == [7] * 8
    back = dequantize_nf4(q)
    assert torch.equal(back[:2], torch.zeros(2, 4)) and bool(torch.isfinite(back).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_precision_weights_quantize_like_their_float32_values(dtype):
    w = (randn(8, 64) * 0.02).to(dtype)
    q, q32 = quantize_nf4(w), quantize_nf4(w.float())
    assert torch.equal(q.codes, q32.codes) and torch.equal(q.absmax, q32.absmax)
    assert dequantize_nf4(q, dtype=dtype).dtype == dtype


# --------------------------------------------------------------------------------------------------
# Packing


@settings(max_examples=40, deadline=None)
@given(codes=st.lists(st.integers(0, 15), min_size=0, max_size=41))
def test_pack_unpack_round_trip(codes):
    codes = torch.tensor(codes, dtype=torch.uint8)
    packed = pack_4bit(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(codes.numel() / 2)
    assert torch.equal(unpack_4bit(packed, codes.numel()), codes)


def test_odd_count_pads_a_zero_low_nibble_and_shapes_are_read_row_major():
    assert pack_4bit(torch.tensor([1, 2, 3], dtype=torch.uint8)).tolist() == [0x12, 0x30]
    assert pack_4bit(torch.tensor([[1, 2], [3, 4]])).tolist() == [0x12, 0x34]  # any integer dtype
    assert unpack_4bit(torch.tensor([0xAB], dtype=torch.uint8), 1).tolist() == [0xA]


# --------------------------------------------------------------------------------------------------
# Double quantization


def test_double_quantization_error_is_at_most_half_a_step():
    absmax = quantize_nf4(randn(300, 64, seed=2)).absmax  # 300 constants: blocks of 256 and 44
    dq = double_quantize(absmax)
    assert isinstance(dq, DoubleQuantized) and dq.block_size == 256
    assert dq.codes.dtype == torch.int8 and dq.codes.shape == (300,)
    assert dq.scales.dtype == torch.float32 and dq.scales.shape == (2,)
    assert float(dq.offset) == pytest.approx(float(absmax.mean()))
    assert int(dq.codes[:256].abs().max()) == 127 and int(dq.codes[256:].abs().max()) == 127
    step = dq.scales.repeat_interleave(256)[:300]
    assert bool(((double_dequantize(dq) - absmax).abs() <= step / 2 + 1e-6).all())


def test_double_quantized_constants_change_the_weights_little():
    w = randn(256, 256, seed=4)
    q = quantize_nf4(w)
    with_dq = dequantize_nf4(q._replace(absmax=double_dequantize(double_quantize(q.absmax))))
    mse, mse_dq = (dequantize_nf4(q) - w).pow(2).mean(), (with_dq - w).pow(2).mean()
    assert float(mse_dq) < 1.01 * float(mse)


# --------------------------------------------------------------------------------------------------
# Memory arithmetic


def test_bits_per_parameter_matches_qlora_arithmetic():
    assert bits_per_parameter() == 4.5  # 4 + 32/64
    assert bits_per_parameter(double_quant=True) == 4 + 8 / 64 + 32 / (64 * 256)
    assert bits_per_parameter(double_quant=True) - 4 == pytest.approx(0.127, abs=5e-4)
    assert bits_per_parameter(block_size=128) == 4.25
    assert bits_per_parameter(64, True, dq_block_size=1) == 4 + 8 / 64 + 32 / 64  # one scale each: worse


def test_finetuning_memory_by_hand():
    full = finetuning_memory(1000, "full", activation_bytes=500)
    assert full == MemoryBreakdown(weights=2000, gradients=2000, optimizer_states=8000, activations=500)
    assert full.total == 12_500
    lora = finetuning_memory(1000, "lora", adapter_params=10, activation_bytes=500)
    assert lora == MemoryBreakdown(weights=2000 + 20, gradients=20, optimizer_states=80, activations=500)
    qlora = finetuning_memory(1000, "qlora", adapter_params=10)  # NF4 + double quantization by default
    assert qlora == MemoryBreakdown(weights=1000 * 4.126953125 / 8 + 20, gradients=20, optimizer_states=80,
                                    activations=0)
    no_dq = finetuning_memory(1000, "qlora", adapter_params=10, double_quant=False)
    assert no_dq.weights == 1000 * 4.5 / 8 + 20
    fp32 = finetuning_memory(1000, "full", bytes_per_weight=4)
    assert fp32.total == 1000 * (4 + 4 + 8)


# --------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("call, error, message", [
    (lambda: quantize_nf4(torch.ones(4), block_size=0), ValueError, "block_size must be a positive integer, got 0"),
    (lambda: quantize_nf4(torch.ones(4), block_size=2.0), TypeError, "block_size must be an integer, got float"),
    (lambda: quantize_nf4(torch.ones(4), block_size=True), TypeError, "block_size must be an integer, got True"),
    (lambda: quantize_nf4(torch.ones(4, dtype=torch.int64)), TypeError, "weights must be a floating-point tensor"),
    (lambda: quantize_nf4([1.0, 2.0]), TypeError, "weights must be a torch.Tensor, got list"),
    (lambda: quantize_nf4(torch.ones(0, 3)), ValueError, r"weights must not be empty, got shape \(0, 3\)"),
    (lambda: quantize_nf4(torch.tensor([1.0, math.nan])), ValueError, "weights must be finite"),
    (lambda: dequantize_nf4((torch.zeros(1), 1)), TypeError, "quantized must be an NF4Quantized"),
    (lambda: dequantize_nf4(NF4Quantized(torch.full((4,), 16, dtype=torch.uint8), torch.ones(1),
                                         torch.Size([4]), 4)), ValueError, r"codes must be uint8 values in \[0, 15\]"),
    (lambda: dequantize_nf4(NF4Quantized(torch.zeros(4, dtype=torch.uint8), torch.ones(2),
                                         torch.Size([4]), 4)), ValueError, r"one value per block of 4, \(1,\)"),
    (lambda: pack_4bit(torch.tensor([3, 16])), ValueError, r"codes must be in \[0, 15\], got values in \[3, 16\]"),
    (lambda: pack_4bit(torch.tensor([-1, 2])), ValueError, r"codes must be in \[0, 15\]"),
    (lambda: pack_4bit(torch.tensor([1.0])), TypeError, "codes must be an integer tensor"),
    (lambda: unpack_4bit(torch.tensor([1], dtype=torch.uint8), 3), ValueError, r"count must be in \[1, 2\] for 1 packed bytes, got 3"),
    (lambda: unpack_4bit(torch.tensor([1], dtype=torch.int32), 2), TypeError, "packed must be a uint8 tensor"),
    (lambda: unpack_4bit(torch.tensor([1], dtype=torch.uint8), -1), ValueError, "count must be a non-negative integer"),
    (lambda: dequantize_nf4(NF4Quantized(torch.zeros(4, dtype=torch.uint8), torch.ones(1),
                                         torch.Size([4]), 0)), ValueError, "quantized.block_size must be a positive"),
    (lambda: double_quantize(torch.ones(4), block_size=0), ValueError, "block_size must be a positive integer, got 0"),
    (lambda: double_quantize(torch.ones(2, 2)), ValueError, "absmax must have 1 dimensions"),
    (lambda: double_quantize(torch.ones(0)), ValueError, "absmax must not be empty"),
    (lambda: double_dequantize(torch.ones(3)), TypeError, "quantized must be a DoubleQuantized"),
    (lambda: nf4_levels(offset=1.0), ValueError, r"offset must be in \(0.5, 1\), got 1"),
    (lambda: bits_per_parameter(block_size=0), ValueError, "block_size must be a positive integer, got 0"),
    (lambda: bits_per_parameter(dq_block_size=-2), ValueError, "dq_block_size must be a positive integer, got -2"),
    (lambda: bits_per_parameter(double_quant="yes"), TypeError, "double_quant must be a bool, got str"),
    (lambda: finetuning_memory(0, "full"), ValueError, "n_params must be a positive integer, got 0"),
    (lambda: finetuning_memory(10, "adapter"), ValueError, "method must be one of 'full', 'lora', 'qlora'; got 'adapter'"),
    (lambda: finetuning_memory(10, "full", adapter_params=2), ValueError, "adapter_params must be 0 for method 'full', got 2"),
    (lambda: finetuning_memory(10, "lora"), ValueError, "adapter_params must be positive for method 'lora', got 0"),
    (lambda: finetuning_memory(10, "full", activation_bytes=-1), ValueError, "activation_bytes must be non-negative, got -1"),
    (lambda: finetuning_memory(10, "full", bytes_per_weight=0), ValueError, "bytes_per_weight must be positive, got 0"),
    (lambda: finetuning_memory(10, "qlora", adapter_params=1, block_size=0), ValueError, "block_size must be a positive"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
