"""Weight quantization: storing a matrix as small integers and one scale per row.

Symmetric absmax quantization to ``bits`` bits, one scale per row of a weight matrix (the absmax
and vector-wise quantization of LLM.int8, Dettmers et al. 2022, sections 2.1 and 3.1, without its
16-bit outlier columns): each row is divided by ``absmax(row) / L`` with
``L = 2**(bits - 1) - 1``, rounded to the nearest integer in ``[-L, L]``, and multiplied back when
used. Rounding moves each weight by at most half a step, ``absmax(row) / (2 L)``.

Left out: zero points (asymmetric ranges), block-wise scales, the 4-bit NormalFloat data type and
double quantization of QLoRA (Dettmers et al. 2023), error-correcting methods such as GPTQ, and
activation quantization. Integers are stored in int8/int16 tensors; nothing here packs two 4-bit
values into a byte, so memory savings are computed, not realised.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from course_lib.validation import float_tensor, int_in_range, type_name

__all__ = ["dequantize", "fake_quantize", "quantize_absmax", "quantized_copy"]


def _check_bits(bits: int) -> int:
    bits = int_in_range(bits, "bits", 2, 16)
    return 2 ** (bits - 1) - 1  # the largest integer level L


def quantize_absmax(weights: Tensor, bits: int, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Symmetric absmax quantization of ``weights`` with one scale per slice along ``dim``.

    Returns ``(q, scale)``: q holds integers in ``[-L, L]``, ``L = 2**(bits - 1) - 1`` (int8 for
    bits <= 8, int16 above), same shape as weights; scale has size 1 along ``dim`` and is the step
    between two levels, so ``q * scale`` approximates weights. The largest |weight| of each slice
    becomes exactly +-L. An all-zero slice gets scale 1 and quantizes to zeros. float16 and
    bfloat16 weights are quantized in float32 (their own precision cannot hold 16-bit levels or
    tiny scales), so their scale is float32; `fake_quantize` casts the result back.
    """
    levels = _check_bits(bits)
    if float_tensor(weights, "weights").ndim == 0:
        raise ValueError("weights must have at least one dimension, got a 0-d tensor")
    if not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite, got NaN or inf")
    w = weights.to(torch.promote_types(weights.dtype, torch.float32))  # half precision -> float32
    scale = w.abs().amax(dim=dim, keepdim=True) / levels  # (..., 1, ...) one step per slice
    scale = scale.masked_fill(scale == 0, 1.0)  # an all-zero slice: any scale gives zeros
    dtype = torch.int8 if bits <= 8 else torch.int16
    q = torch.round(w / scale).clamp_(-levels, levels).to(dtype)  # same shape as weights
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """The real-valued weights that integers ``q`` and their ``scale`` stand for: ``q * scale``."""
    return q.to(scale.dtype) * scale  # q's shape, scale's dtype


def fake_quantize(weights: Tensor, bits: int, dim: int = -1) -> Tensor:
    """``weights`` rounded to ``bits``-bit absmax levels and returned in their own dtype.

    Simulates running a quantized model in floating point, which is how the error is studied.
    """
    return dequantize(*quantize_absmax(weights, bits, dim)).to(weights.dtype)


def quantized_copy(model: nn.Module, bits: int) -> nn.Module:
    """A deep copy of ``model`` whose matrices (every 2-D parameter: linear layers and embedding
    tables) are fake-quantized to ``bits`` bits, one scale per row; vectors (biases, LayerNorm
    gains) keep full precision, as in LLM.int8. The model passed in is left unchanged.
    """
    _check_bits(bits)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type_name(model)}")
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for weights in copied.parameters():
            if weights.ndim == 2:
                weights.copy_(fake_quantize(weights, bits))
    return copied
