"""Position information for attention: sinusoidal and learned absolute positions, rotary position
embeddings (RoPE) and ALiBi biases.

- ``sinusoidal_positions``: the fixed table of Vaswani et al. 2017 (section 3.5), added to the
  token embeddings. ``PE[p, 2i] = sin(p w_i)``, ``PE[p, 2i + 1] = cos(p w_i)``,
  ``w_i = base^(-2i / d_model)``; the dot product of two rows depends only on their offset.
- ``LearnedPositions``: a trained table, as in GPT-1/2/3 and BERT, initialised N(0, 0.01) like
  GPT-2's position table.
- ``apply_rope``: RoPE (Su et al. 2021, RoFormer) rotates each pair of coordinates of q and k by
  an angle proportional to the position, so the score between positions m and n depends on the
  offset n - m only. Pairing convention: *interleaved* pairs (2i, 2i + 1), as in the RoFormer paper
  and Meta's original LLaMA code, with frequency ``w_i = base^(-2i / d)``. GPT-NeoX and the Hugging
  Face LLaMA code pair coordinate i with i + d/2 ("rotate half"); the two conventions differ by a
  fixed permutation of the head dimensions, so checkpoints are not interchangeable without
  permuting the q and k projection weights.
- ``alibi_slopes`` and ``alibi_bias``: ALiBi (Press et al. 2022) adds ``-m_h * |i - j|`` to the
  scores of head h instead of adding anything to the embeddings.

Left out: relative position biases of T5 and Transformer-XL, RoPE scaling for context extension
(position interpolation, NTK, YaRN), and partial rotary dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib.validation import float_tensor, number_in_range, positive_int, tensor

__all__ = ["sinusoidal_positions", "LearnedPositions", "apply_rope", "alibi_slopes", "alibi_bias"]


def _check_base(base: float) -> float:
    return number_in_range(base, "base", 1.0, math.inf, low_open=True, high_open=True)


def _frequencies(d: int, base: float, device: torch.device | str | None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """Angular frequencies w_i = base^(-2i / d) of the d / 2 coordinate pairs, shape (d / 2,)."""
    return base ** (-torch.arange(0, d, 2, device=device, dtype=dtype) / d)


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10000.0,
                         device: torch.device | str | None = None) -> Tensor:
    """The sinusoidal position table (n_positions, d_model) of Vaswani et al. 2017, section 3.5.

    Column 2i holds ``sin(p w_i)`` and column 2i + 1 ``cos(p w_i)`` with ``w_i = base^(-2i/d)``,
    so ``<PE[p], PE[p + k]> = sum_i cos(k w_i)`` does not depend on p. d_model must be even.
    """
    n_positions = positive_int(n_positions, "n_positions")
    d_model = positive_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"d_model must be even (sin/cos pairs), got {d_model}")
    base = _check_base(base)
    p = torch.arange(n_positions, device=device, dtype=torch.float32)[:, None]  # (n, 1)
    angles = p * _frequencies(d_model, base, device)  # (n, d/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (n, d): sin, cos, ...


class LearnedPositions(nn.Module):
    """A learned absolute position table (n_positions, d_model), initialised N(0, 0.01) (GPT-2).

    forward(positions) looks up integer positions of any shape (...) and returns (..., d_model).
    Positions must lie in [0, n_positions): a learned table has nothing for longer sequences.
    """

    def __init__(self, n_positions: int, d_model: int) -> None:
        super().__init__()
        n_positions = positive_int(n_positions, "n_positions")
        d_model = positive_int(d_model, "d_model")
        self.n_positions = n_positions
        self.table = nn.Embedding(n_positions, d_model)
        nn.init.normal_(self.table.weight, mean=0.0, std=0.01)

    def forward(self, positions: Tensor) -> Tensor:
        """(...) integer positions -> (..., d_model)."""
        if not isinstance(positions, Tensor) or positions.dtype not in (torch.int32, torch.int64):
            got = positions.dtype if isinstance(positions, Tensor) else type(positions).__name__
            raise TypeError(f"positions must be an int32/int64 tensor, got {got}")
        if positions.numel():
            low, high = int(positions.min()), int(positions.max())
            if low < 0 or high >= self.n_positions:
                raise ValueError(f"positions must lie in [0, n_positions={self.n_positions}), got "
                                 f"values from {low} to {high}")
        return self.table(positions)  # (..., d_model)


def apply_rope(x: Tensor, positions: Tensor | None = None, base: float = 10000.0) -> Tensor:
    """Rotate x (..., T, d) by RoPE; returns a tensor of the same shape and dtype.

    Interleaved convention (RoFormer): the pair (x[2i], x[2i + 1]) at position p is rotated by the
    angle ``p * base^(-2i / d)``. positions: (T,) integer or float positions, default 0 ... T - 1
    (pass ``cache_length + arange(T)`` when decoding with a KV cache). Apply it to q and k (never to
    v) after splitting heads; then ``<rope(q)[m], rope(k)[n]>`` depends on n - m only.
    d must be even.
    """
    if float_tensor(x, "x").ndim < 2:
        raise ValueError(f"x must have shape (..., T, d), got {tuple(x.shape)}")
    T, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"the last dimension of x (the head dim) must be even for RoPE, got {d}")
    base = _check_base(base)
    positions = torch.arange(T, device=x.device) if positions is None else tensor(positions, "positions")
    if positions.shape != (T,):
        raise ValueError(f"positions must have shape (T,) = ({T},), got {tuple(positions.shape)}")
    dtype = torch.promote_types(x.dtype, torch.float32)  # half inputs are rotated in float32
    freqs = _frequencies(d, base, x.device, dtype)  # (d/2,)
    angles = positions.to(dtype)[:, None] * freqs  # (T, d/2)
    cos, sin = angles.cos(), angles.sin()  # (T, d/2)
    x_even, x_odd = x[..., 0::2].to(dtype), x[..., 1::2].to(dtype)  # (..., T, d/2)
    rotated = torch.stack([x_even * cos - x_odd * sin,
                           x_even * sin + x_odd * cos], dim=-1)  # (..., T, d/2, 2)
    return rotated.flatten(-2).to(x.dtype)  # (..., T, d)


def alibi_slopes(n_heads: int) -> Tensor:
    """ALiBi's head slopes, shape (n_heads,).

    For n_heads = h a power of two: ``m_i = 2^(-8 i / h)``, i = 1 ... h, a geometric sequence
    starting at and with ratio 2^(-8/h) (Press et al. 2022, section 3: 1/2, 1/4, ..., 1/256 for
    8 heads). Other head counts follow the rule of the authors' reference implementation (the paper
    only trains powers of two): take the h' = 2^floor(log2 h) slopes for h' heads, then the first
    h - h' slopes of the 2h'-head sequence at odd i (2^(-8/(2h')), 2^(-24/(2h')), ...), i.e. the
    geometric means of neighbouring slopes of the h'-head sequence, the first of them with 1.
    """
    n_heads = positive_int(n_heads, "n_heads")
    lower = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = [2.0 ** (-8.0 * i / lower) for i in range(1, lower + 1)]
    slopes += [2.0 ** (-8.0 * i / (2 * lower)) for i in range(1, 2 * (n_heads - lower), 2)]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(n_heads: int, n_positions: int, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """ALiBi bias (n_heads, n_positions, n_positions): ``bias[h, i, j] = -m_h * |i - j|``.

    Added to the scaled scores of a causal model this is the paper's bias on every allowed key
    (j <= i) and the future keys are masked anyway; for a bidirectional encoder it is the symmetric
    extension. Pass it as ``scaled_dot_product_attention(..., bias=alibi_bias(...))``, with
    ``dtype=q.dtype`` when q, k and v are half precision (a float32 bias would promote the scores
    to float32, and their product with half-precision values fails). Computed in float32, then cast.
    """
    n_positions = positive_int(n_positions, "n_positions")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    m = alibi_slopes(n_heads).to(device)  # (H,)
    p = torch.arange(n_positions, device=device, dtype=torch.float32)  # (T,)
    distance = (p[:, None] - p[None, :]).abs()  # (T, T)
    return (-m[:, None, None] * distance).to(dtype)  # (H, T, T)
