"""Weight quantization: storing a matrix as small integers and one scale per row or per block.

Symmetric absmax quantization to ``bits`` bits, one scale per row of a weight matrix (the absmax
and vector-wise quantization of LLM.int8, Dettmers et al. 2022, sections 2.1 and 3.1, without its
16-bit outlier columns): each row is divided by ``absmax(row) / L`` with
``L = 2**(bits - 1) - 1``, rounded to the nearest integer in ``[-L, L]``, and multiplied back when
used. Rounding moves each weight by at most half a step, ``absmax(row) / (2 L)``.

QLoRA's storage (Dettmers et al. 2023, section 3): the 4-bit NormalFloat levels (`NF4_LEVELS`,
`nf4_levels`), blockwise NF4 with one float32 absmax per block of 64 (`quantize_nf4`,
`dequantize_nf4`), two codes per byte (`pack_4bit`, `unpack_4bit`), double quantization of the
absmax constants (`double_quantize`), the bits each weight costs (`bits_per_parameter`) and the
memory of full, LoRA and QLoRA fine-tuning (`finetuning_memory`). QLoRA dequantizes a frozen
matrix to 16 bits for every matmul: it saves memory, not compute.

Left out: zero points (asymmetric ranges), error-correcting methods such as GPTQ, activation
quantization, the 4-bit float (FP4) type, fused 4-bit matmul kernels and paged optimizers. The
absmax integers are stored in int8/int16 tensors and NF4 codes one per uint8 until `pack_4bit`
packs them, so savings are computed, not realised in memory.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from course_lib.validation import (
    float_tensor,
    int_in_range,
    integer_tensor,
    module,
    nonnegative_int,
    number_in_range,
    one_of,
    positive_int,
    positive_number,
    real,
    type_name,
)

__all__ = [
    "ADAM_STATE_BYTES",
    "NF4_LEVELS",
    "NF4_OFFSET",
    "DoubleQuantized",
    "MemoryBreakdown",
    "NF4Quantized",
    "bits_per_parameter",
    "dequantize",
    "dequantize_nf4",
    "double_dequantize",
    "double_quantize",
    "fake_quantize",
    "finetuning_memory",
    "nf4_levels",
    "pack_4bit",
    "quantize_absmax",
    "quantize_nf4",
    "quantized_copy",
    "unpack_4bit",
]


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
    module(model, "model")
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for weights in copied.parameters():
            if weights.ndim == 2:
                weights.copy_(fake_quantize(weights, bits))
    return copied


# --------------------------------------------------------------------------------------------------
# QLoRA: 4-bit NormalFloat in blocks, double quantization, and the memory a fine-tuning run needs

#: The 16 levels of the 4-bit NormalFloat data type as published with QLoRA (Dettmers et al. 2023,
#: Appendix E) and stored in bitsandbytes: code i stands for NF4_LEVELS[i] times the block's absmax.
NF4_LEVELS: tuple[float, ...] = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)

#: The outermost probability whose normal quantile becomes +-1 (bitsandbytes' ``create_normal_map``).
NF4_OFFSET = 0.9677083

ADAM_STATE_BYTES = 8  # Adam keeps two float32 moments per trained parameter


def nf4_levels(offset: float = NF4_OFFSET) -> Tensor:
    """The NF4 levels built from normal quantiles, as QLoRA describes: a float64 tensor of 16.

    A standard normal weight is equally likely to fall in each bin between quantiles; NF4 puts its
    levels at quantiles so that every code is used about equally often. 4 bits give 16 codes, and
    an exact 0 is wanted (padding and zero weights must stay 0), so the two halves are built apart:
    8 positive levels ``Phi^-1(p)`` for 8 probabilities p evenly spaced from ``offset`` down to 1/2
    (9 points, 1/2 itself dropped), 7 negative levels ``-Phi^-1(p)`` from 8 points the same way,
    and 0. Dividing by the largest maps them into [-1, 1] with both ends at +-1. ``offset`` stands
    in for probability 1, whose quantile is infinite; 0.9677083 is numerically the mean of
    ``1 - 1/(2*15)`` and ``1 - 1/(2*16)``. The result equals `NF4_LEVELS` to about 1e-7: the
    published table was computed with the probabilities rounded to float32.
    """
    offset = number_in_range(offset, "offset", 0.5, 1.0, low_open=True, high_open=True)
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])  # (8,)
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])  # (7,)
    levels = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).sort().values  # (16,)
    return levels / levels.max()


class NF4Quantized(NamedTuple):
    """A tensor in blockwise NF4: what `dequantize_nf4` needs to rebuild it.

    codes: uint8 (numel,), one code 0-15 per element in row-major order (unpacked: see `pack_4bit`);
    absmax: float32 (n_blocks,), the largest |weight| of each block; shape: the original shape;
    block_size: elements per block (the last block may be shorter).
    """

    codes: Tensor
    absmax: Tensor
    shape: torch.Size
    block_size: int


def _blocks(flat: Tensor, block_size: int) -> Tensor:
    """flat (n,) as rows of block_size, the last row padded with zeros: (ceil(n / block_size), block_size)."""
    pad = -flat.numel() % block_size
    return torch.cat([flat, flat.new_zeros(pad)]).view(-1, block_size)


def quantize_nf4(weights: Tensor, block_size: int = 64) -> NF4Quantized:
    """Blockwise NF4 quantization (QLoRA): each block of ``block_size`` consecutive elements
    (row-major) is divided by its absmax and each value is replaced by the code of the nearest
    `NF4_LEVELS` entry (a value exactly halfway between two levels takes the lower one).

    A size that ``block_size`` does not divide is not refused: the last block holds the
    ``numel % block_size`` remaining elements and has its own absmax, as in bitsandbytes. An
    all-zero block has absmax 0 and codes 7 (the level 0). Half-precision weights are quantized in
    float32, float64 in float64; absmax is stored in float32 either way.
    """
    float_tensor(weights, "weights")
    block_size = positive_int(block_size, "block_size")
    if weights.numel() == 0:
        raise ValueError(f"weights must not be empty, got shape {tuple(weights.shape)}")
    if not bool(torch.isfinite(weights).all()):
        raise ValueError("weights must be finite, got NaN or inf")
    w = weights.detach().reshape(-1).to(torch.promote_types(weights.dtype, torch.float32))  # (n,)
    blocks = _blocks(w, block_size)  # (n_blocks, block_size)
    absmax = blocks.abs().amax(dim=1).float()  # (n_blocks,) stored in float32
    scale = absmax.to(w.dtype).masked_fill(absmax == 0, 1.0)  # an all-zero block: any scale gives 0
    levels = torch.tensor(NF4_LEVELS, dtype=w.dtype, device=w.device)
    midpoints = (levels[1:] + levels[:-1]) / 2  # (15,) the decision boundaries
    codes = torch.bucketize(blocks / scale[:, None], midpoints).to(torch.uint8)  # (n_blocks, block_size)
    return NF4Quantized(codes.view(-1)[:w.numel()], absmax, weights.shape, block_size)


def dequantize_nf4(quantized: NF4Quantized, dtype: torch.dtype = torch.float32) -> Tensor:
    """The weights that `quantize_nf4` codes stand for: ``NF4_LEVELS[code] * absmax[block]``.

    Computed in float32 (float64 if ``dtype`` is float64) and returned in ``dtype`` with the
    original shape. To use double-quantized constants, pass
    ``quantized._replace(absmax=double_dequantize(dq))``.
    """
    if not isinstance(quantized, NF4Quantized):
        raise TypeError(f"quantized must be an NF4Quantized (from quantize_nf4), got {type_name(quantized)}")
    codes, absmax, shape, block_size = quantized
    block_size = positive_int(block_size, "quantized.block_size")
    n = math.prod(shape)
    if codes.dtype != torch.uint8 or codes.shape != (n,) or int(codes.max()) > 15:
        raise ValueError(f"quantized.codes must be uint8 values in [0, 15] of shape ({n},), got dtype "
                         f"{codes.dtype} and shape {tuple(codes.shape)}")
    if absmax.shape != (-(-n // block_size),):
        raise ValueError(f"quantized.absmax must hold one value per block of {block_size}, "
                         f"({-(-n // block_size)},), got shape {tuple(absmax.shape)}")
    work = torch.promote_types(dtype, torch.float32)
    levels = torch.tensor(NF4_LEVELS, dtype=work, device=codes.device)
    block = torch.arange(n, device=codes.device) // block_size  # (n,) the block of each element
    return (levels[codes.long()] * absmax.to(work)[block]).to(dtype).view(shape)


def pack_4bit(codes: Tensor) -> Tensor:
    """Two 4-bit codes per byte, as bitsandbytes stores NF4: uint8 (ceil(n / 2),).

    The codes are read in row-major order; byte j holds element 2j in its high nibble and element
    2j + 1 in its low nibble. An odd count is padded with a 0 nibble (`unpack_4bit` drops it).
    """
    integer_tensor(codes, "codes")
    flat = codes.reshape(-1).to(torch.uint8)  # (n,)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > 15):
        raise ValueError(f"codes must be in [0, 15], got values in [{int(codes.min())}, {int(codes.max())}]")
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return (flat[0::2] << 4) | flat[1::2]  # (ceil(n / 2),)


def unpack_4bit(packed: Tensor, count: int) -> Tensor:
    """The ``count`` codes that `pack_4bit` packed: uint8 (count,), high nibble first."""
    integer_tensor(packed, "packed", ndim=1)
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor, got dtype {packed.dtype}")
    count = nonnegative_int(count, "count")
    low, high = max(0, 2 * packed.numel() - 1), 2 * packed.numel()
    if not low <= count <= high:
        raise ValueError(f"count must be in [{low}, {high}] for {packed.numel()} packed bytes, got {count}")
    return torch.stack([packed >> 4, packed & 0x0F], dim=1).view(-1)[:count]  # (count,)


class DoubleQuantized(NamedTuple):
    """Quantization constants quantized again (QLoRA's double quantization).

    codes: int8 (n,), the centred constants in 8 bits; scales: float32 (ceil(n / block_size),),
    one step per block; offset: float32 0-d, the mean subtracted first; block_size.
    """

    codes: Tensor
    scales: Tensor
    offset: Tensor
    block_size: int


def double_quantize(absmax: Tensor, block_size: int = 256) -> DoubleQuantized:
    """8-bit quantization of the per-block constants of `quantize_nf4`, in blocks of ``block_size``.

    As in QLoRA (section 3, Double Quantization): the constants are all positive, so their mean is
    subtracted first to centre them on 0 and use a symmetric 8-bit code; each block of
    ``block_size`` centred constants then gets one float32 scale. QLoRA's 8-bit code is a float
    format (bitsandbytes' dynamic map); here it is this module's symmetric absmax int8
    (`quantize_absmax` with 8 bits): the same storage, 8 bits per constant plus 32 bits per block.
    A size that ``block_size`` does not divide leaves a shorter last block.
    """
    float_tensor(absmax, "absmax", ndim=1)
    block_size = positive_int(block_size, "block_size")
    if absmax.numel() == 0:
        raise ValueError("absmax must not be empty")
    constants = absmax.detach().float()  # (n,)
    offset = constants.mean()
    q, scale = quantize_absmax(_blocks(constants - offset, block_size), bits=8)  # (n_blocks, block_size), (n_blocks, 1)
    return DoubleQuantized(q.view(-1)[:constants.numel()], scale.view(-1), offset, block_size)


def double_dequantize(quantized: DoubleQuantized) -> Tensor:
    """The float32 constants (n,) that `double_quantize` codes stand for: ``code * scale + offset``."""
    if not isinstance(quantized, DoubleQuantized):
        raise TypeError(f"quantized must be a DoubleQuantized (from double_quantize), got {type_name(quantized)}")
    codes, scales, offset, block_size = quantized
    block = torch.arange(codes.numel(), device=codes.device) // block_size  # (n,)
    return codes.float() * scales[block] + offset  # (n,)


def bits_per_parameter(block_size: int = 64, double_quant: bool = False, dq_block_size: int = 256) -> float:
    """Average storage of one NF4 weight, in bits: 4 for the code plus its share of the constants.

    Without double quantization each block of ``block_size`` weights stores a float32 absmax:
    ``4 + 32 / block_size`` (4.5 at 64). With it, each absmax takes 8 bits and each block of
    ``dq_block_size`` constants one float32 scale: ``4 + 8 / block_size + 32 / (block_size *
    dq_block_size)`` (4.127 at 64 and 256: QLoRA's 0.127 bits of constants per parameter instead of
    0.5). The one float32 mean per tensor that double quantization also stores is left out, as in
    the paper's arithmetic.
    """
    block_size = positive_int(block_size, "block_size")
    dq_block_size = positive_int(dq_block_size, "dq_block_size")
    if not isinstance(double_quant, bool):
        raise TypeError(f"double_quant must be a bool, got {type_name(double_quant)} {double_quant!r}")
    if not double_quant:
        return 4 + 32 / block_size
    return 4 + 8 / block_size + 32 / (block_size * dq_block_size)


class MemoryBreakdown(NamedTuple):
    """Bytes a fine-tuning run holds, by what they are for (floats: quantized weights take
    fractional bytes per parameter)."""

    weights: float
    gradients: float
    optimizer_states: float
    activations: float

    @property
    def total(self) -> float:
        """The sum of the four parts, in bytes."""
        return self.weights + self.gradients + self.optimizer_states + self.activations


def finetuning_memory(n_params: int, method: str, *, adapter_params: int = 0, activation_bytes: float = 0,
                      bytes_per_weight: float = 2, block_size: int = 64, double_quant: bool = True,
                      dq_block_size: int = 256) -> MemoryBreakdown:
    """Memory of fine-tuning a model of ``n_params`` parameters with Adam, by part, in bytes.

    ``method``:

    - ``"full"``: every weight is trained: weights and gradients at ``bytes_per_weight`` each
      (2: bf16/fp16), Adam's two float32 states (8 bytes) per weight.
    - ``"lora"``: the base weights stay at ``bytes_per_weight`` and are frozen (no gradient, no
      state); the ``adapter_params`` adapter parameters have a weight and a gradient at
      ``bytes_per_weight`` and 8 bytes of Adam state.
    - ``"qlora"``: as LoRA, but the frozen base is stored in NF4 at `bits_per_parameter`
      (``block_size``, ``double_quant``, ``dq_block_size``) / 8 bytes per weight.

    ``activation_bytes`` (what the forward pass keeps for the backward pass: it depends on batch,
    sequence length, architecture and checkpointing) is the caller's, measured or estimated, and is
    the same for the three methods: the gradient must still flow back through every frozen layer.
    Assumed away: a float32 master copy of the weights (mixed-precision training often keeps one:
    4 more bytes per trained weight), the bf16 copy QLoRA dequantizes each frozen matrix into for
    its matmul (one matrix at a time), temporary buffers and the framework's own memory.
    """
    n_params = positive_int(n_params, "n_params")
    method = one_of(method, "method", ("full", "lora", "qlora"))
    adapter_params = nonnegative_int(adapter_params, "adapter_params")
    activation_bytes = real(activation_bytes, "activation_bytes")
    if activation_bytes < 0:
        raise ValueError(f"activation_bytes must be non-negative, got {activation_bytes:g}")
    bytes_per_weight = positive_number(bytes_per_weight, "bytes_per_weight")
    if method == "full" and adapter_params:
        raise ValueError(f"adapter_params must be 0 for method 'full', got {adapter_params}")
    if method != "full" and adapter_params == 0:
        raise ValueError(f"adapter_params must be positive for method {method!r}, got 0")
    trained = n_params if method == "full" else adapter_params
    frozen_bytes = {"full": 0.0, "lora": n_params * bytes_per_weight,
                    "qlora": n_params * bits_per_parameter(block_size, double_quant, dq_block_size) / 8}[method]
    return MemoryBreakdown(weights=frozen_bytes + trained * bytes_per_weight,
                           gradients=float(trained * bytes_per_weight),
                           optimizer_states=float(trained * ADAM_STATE_BYTES),
                           activations=activation_bytes)
