"""The softmax family: softmax, log-softmax and the softmax Jacobian, written out and numerically stable.

Every function subtracts the row maximum before exponentiating (softmax is shift-invariant), gives
``-inf`` entries probability exactly 0, and defines a row of all ``-inf`` as all zeros (so a fully
masked attention row has zero weights, not NaN). Half-precision inputs (float16, bfloat16) are
computed in float32 and the result is cast back, as PyTorch's own kernels do: summing exponentials
in bfloat16 loses about three significant digits.

Left out: temperature (``course_lib.decoding.sampling_distribution`` divides the logits first),
sparsemax and other normalisers, and a fused backward (autograd differentiates the written-out
formula; ``softmax_jacobian`` shows the matrix it multiplies by).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["softmax", "log_softmax", "softmax_jacobian"]

HALF_DTYPES = (torch.float16, torch.bfloat16)  # computed in float32, returned in their own dtype


def _check_logits(x: Tensor, dim: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim must be in [{-x.ndim}, {x.ndim - 1}] for {name} of shape "
                         f"{tuple(x.shape)}, got {dim}")
    if x.shape[dim] == 0:
        raise ValueError(f"{name} has size 0 along dim {dim}; softmax needs at least one entry")


def _shifted(x: Tensor, dim: int, name: str = "x", in_place: bool = False) -> Tensor:
    """Validate x and return ``x - max`` along dim; a row of all -inf is shifted by 0 (so it stays
    all -inf and its normaliser is 0, which the callers turn into 1 instead of dividing by 0).
    in_place: subtract inside x itself (only for a tensor nobody else needs); a non-contiguous x
    (e.g. an expanded one, whose elements may share memory) is subtracted out of place instead."""
    _check_logits(x, dim, name)
    row_max = x.detach().amax(dim=dim, keepdim=True)  # softmax is shift-invariant: no gradient
    if not bool((row_max < math.inf).all()):  # False for NaN and for +inf
        what = "NaN" if bool(torch.isnan(row_max).any()) else "+inf"
        raise ValueError(f"{name} contains {what}; softmax is only defined for finite or -inf "
                         f"entries (clip the logits, or mask with -inf)")
    shift = row_max.masked_fill(torch.isneginf(row_max), 0.0)
    return x.sub_(shift) if in_place and x.is_contiguous() else x - shift


def softmax(x: Tensor, dim: int = -1, *, overwrite: bool = False) -> Tensor:
    """Numerically stable softmax: ``exp(x - max) / sum(exp(x - max))`` along ``dim``.

    Subtracting the row maximum changes nothing mathematically (softmax is shift-invariant) and
    keeps every exponent <= 0, so logits of 1000 do not overflow. ``-inf`` entries get probability
    exactly 0. A row whose entries are all ``-inf`` has nothing to normalise: its result is all
    zeros (documented choice, so fully masked attention rows give zero weights, not NaN).
    overwrite: when no gradient is tracked, compute the result inside x's own memory (x is lost);
    attention does this with the score matrix it has just built, so an n x n softmax costs no
    extra n x n allocation. Without it, x is left alone and the result takes one allocation.
    Raises ValueError if x contains NaN or ``+inf``.
    """
    if getattr(x, "dtype", None) in HALF_DTYPES:
        return softmax(x.float(), dim).to(x.dtype)
    no_grad = not (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad)
    exps = _shifted(x, dim, in_place=overwrite and no_grad).exp_()  # exponents <= 0: no overflow
    normaliser = exps.sum(dim=dim, keepdim=True)  # >= 1, or 0 for a row of all -inf
    normaliser = normaliser.masked_fill(normaliser == 0, 1.0)
    return exps.div_(normaliser) if no_grad else exps / normaliser  # autograd keeps exps as they are


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Numerically stable log-softmax: ``(x - max) - log(sum(exp(x - max)))`` along ``dim``.

    Computed directly, never as ``log(softmax(x))``, so tiny probabilities keep their exact log
    instead of underflowing to ``log(0)``. A row of all ``-inf`` gives all ``-inf`` (the log of the
    zeros ``softmax`` returns). Raises ValueError if x contains NaN or ``+inf``.
    """
    if getattr(x, "dtype", None) in HALF_DTYPES:
        return log_softmax(x.float(), dim).to(x.dtype)
    shifted = _shifted(x, dim)
    normaliser = torch.exp(shifted).sum(dim=dim, keepdim=True)  # >= 1, or 0 for all -inf rows
    return shifted - torch.log(normaliser.masked_fill(normaliser == 0, 1.0))


def softmax_jacobian(s: Tensor) -> Tensor:
    """Jacobian of softmax at output s: ``J[i, j] = d s_i / d z_j = diag(s) - s s^T``, shape (n, n).

    s is a 1-D probability vector, ``s = softmax(z)``. J is symmetric and each row sums to 0,
    because the outputs always sum to 1 whatever z is.
    """
    if not isinstance(s, Tensor):
        raise TypeError(f"s must be a torch.Tensor, got {type(s).__name__}")
    if s.ndim != 1 or s.numel() == 0:
        raise ValueError(f"s must be a non-empty 1-D tensor, got shape {tuple(s.shape)}")
    return torch.diag(s) - torch.outer(s, s)  # (n, n)

