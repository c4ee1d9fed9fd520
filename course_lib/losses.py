"""Cross-entropy, entropy, KL divergence and perplexity: the quantities a language model's loss is made of.

The language-modelling loss is the mean negative log-likelihood of the observed tokens,
``cross_entropy(logits, targets) = mean_t -log softmax(logits_t)[target_t]``, and its gradient with
respect to the logits is ``(softmax - one_hot) / N``. Between two distributions over the same
outcomes, ``H(p, q) = H(p) + KL(p || q)``; a one-hot target has ``H(p) = 0``, so for it cross-entropy
and KL are the same number. Perplexity is ``exp`` of the mean cross-entropy in nats.

Conventions:

- Distributions lie along the last dimension; functions of distributions return one value per
  distribution, shape ``p.shape[:-1]``.
- ``0 * log 0 = 0``: outcomes with ``p_i = 0`` contribute nothing (and no NaN gradients);
  ``KL(p || q)`` is ``+inf`` when some ``p_i > 0`` has ``q_i = 0``.
- Probability inputs are checked: no negative or NaN entries, and each distribution sums to 1
  within ``1e-4`` (``1e-2`` for float16 and bfloat16), loose enough for a float32 softmax over a
  large vocabulary and tight enough to catch unnormalised scores. Log-probabilities get the same
  check on ``logsumexp``.
- Targets equal to ``ignore_index`` (-100 by default, as in PyTorch) are left out of the mean.
  If every target is ignored the mean has no terms and the result is NaN, as in
  ``torch.nn.functional.cross_entropy``.

Left out: label smoothing, class weights, reductions other than the mean, and probability targets
for `cross_entropy` (`distribution_cross_entropy` takes two distributions instead).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

from course_lib.softmax import log_softmax, softmax
from course_lib.validation import as_float_tensor, float_tensor, integer, integer_tensor, number_in_range

__all__ = [
    "IGNORE_INDEX", "cross_entropy", "cross_entropy_grad", "entropy", "distribution_cross_entropy", "kl_divergence",
    "kl_divergence_log", "perplexity",
]

IGNORE_INDEX = -100


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean negative log-likelihood of `targets` (...) under ``softmax(logits)``, logits (..., V).

    The mean runs over the positions whose target is not `ignore_index`; the result is a 0-d
    tensor, equal to ``torch.nn.functional.cross_entropy`` on the flattened inputs (NaN when every
    target is ignored).
    """
    keep = _check_logits_and_targets(logits, targets, ignore_index)  # (...)
    log_probs = log_softmax(logits, dim=-1)  # (..., V)
    picked = log_probs.gather(-1, targets.masked_fill(~keep, 0).unsqueeze(-1)).squeeze(-1)  # (...)
    nll = torch.where(keep, -picked, 0.0)  # (...)
    return nll.sum() / keep.sum()


def cross_entropy_grad(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Gradient of `cross_entropy` with respect to the logits, written out: shape (..., V).

    ``(softmax(logits) - one_hot(targets)) / N`` at the N kept positions, 0 at ignored ones.
    """
    keep = _check_logits_and_targets(logits, targets, ignore_index)  # (...)
    one_hot = torch.nn.functional.one_hot(targets.masked_fill(~keep, 0), logits.shape[-1])  # (..., V)
    grad = softmax(logits, dim=-1) - one_hot.to(logits.dtype)  # (..., V)
    return grad * keep.unsqueeze(-1) / keep.sum()  # (..., V)


def entropy(p: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Shannon entropy in nats, ``H(p) = -sum_i p_i log p_i``, of each distribution: p.shape[:-1]."""
    p = _check_probabilities(p, "p")
    return -_expected(p, _log_where_positive(p))


def distribution_cross_entropy(p: torch.Tensor | np.ndarray, q: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cross-entropy between distributions, ``H(p, q) = -sum_i p_i log q_i``, in nats: p.shape[:-1].

    Equals ``entropy(p) + kl_divergence(p, q)``; with a one-hot p it is `cross_entropy`.
    """
    p, q = _check_pair(p, q)
    return -_expected(p, _log_where_positive(q))


def kl_divergence(p: torch.Tensor | np.ndarray, q: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)`` in nats for each distribution: p.shape[:-1].

    Non-negative, 0 exactly when p == q, not symmetric in p and q. Matches
    ``torch.nn.functional.kl_div(q.log(), p, reduction="none").sum(-1)``.
    """
    p, q = _check_pair(p, q)
    return _expected(p, _log_where_positive(p) - _log_where_positive(q))


def kl_divergence_log(log_p: torch.Tensor | np.ndarray, log_q: torch.Tensor | np.ndarray) -> torch.Tensor:
    """`kl_divergence` from log-probabilities, e.g. two ``log_softmax`` outputs: log_p.shape[:-1].

    Working in log space keeps tiny probabilities exact, so this is the form to use on model
    outputs (distillation, a KL penalty against a reference model).
    """
    log_p = _check_log_probabilities(log_p, "log_p")
    log_q = _check_log_probabilities(log_q, "log_q")
    _check_same_shape(log_p, log_q, "log_p", "log_q")
    return _expected(log_p.exp(), log_p - log_q)


_MAX_EXP_ARGUMENT = math.log(sys.float_info.max)  # 709.78...: above it a float's exp overflows


def perplexity(loss: float | torch.Tensor) -> float | torch.Tensor:
    """``exp(loss)`` for a mean cross-entropy in nats; a float for a float, a tensor for a tensor.

    A perplexity of k means the model is as uncertain, on average, as a uniform choice among k
    tokens: uniform logits over V tokens give loss ln V and perplexity V.
    """
    if isinstance(loss, torch.Tensor):
        if not bool((float_tensor(loss, "loss") >= 0).all()):
            raise ValueError(f"loss must be a non-negative cross-entropy, got {loss}")
        return loss.exp()
    loss = number_in_range(loss, "loss", 0.0, math.inf)  # a float; +inf gives +inf
    return math.exp(loss) if loss <= _MAX_EXP_ARGUMENT else math.inf  # inf, as torch gives, not OverflowError


def _log_where_positive(x: torch.Tensor) -> torch.Tensor:
    """log x, with log 0 = -inf and a zero (not NaN) gradient at the zeros."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).log(), -math.inf)


def _expected(p: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_i p_i values_i`` along the last dim over the support of p, so 0 * log 0 counts as 0."""
    return (p * torch.where(p > 0, values, 0.0)).sum(dim=-1)  # (...)


def _sum_tolerance(dtype: torch.dtype) -> float:
    return 1e-4 if torch.finfo(dtype).bits >= 32 else 1e-2


def _check_outcomes(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """x as a floating-point tensor (a NumPy array is converted) with a non-empty last dimension."""
    x = as_float_tensor(x, name)
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last dimension (the outcomes), got shape {tuple(x.shape)}")
    return x


def _check_probabilities(p: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    p = _check_outcomes(p, name)
    if bool(torch.isnan(p).any()):
        raise ValueError(f"{name} contains NaN")
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a minimum of {p.min().item():.4g}")
    sums = p.sum(dim=-1)  # (...)
    _check_normalised(sums, p.dtype, f"{name} must sum to 1 along the last dim", "sums")
    return p


def _check_log_probabilities(log_p: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    log_p = _check_outcomes(log_p, name)
    if bool(torch.isnan(log_p).any()) or bool(torch.isposinf(log_p).any()):
        raise ValueError(f"{name} contains NaN or +inf; log-probabilities lie in [-inf, 0]")
    totals = torch.logsumexp(log_p, dim=-1)  # (...)
    _check_normalised(totals.exp(), log_p.dtype, f"{name} must satisfy logsumexp = 0 along the last dim",
                      "exp(logsumexp)")
    return log_p


def _check_normalised(sums: torch.Tensor, dtype: torch.dtype, requirement: str, what: str) -> None:
    tolerance = _sum_tolerance(dtype)
    if bool(((sums - 1).abs() > tolerance).any()):
        raise ValueError(f"{requirement} (within {tolerance:g}), got {what} in "
                         f"[{sums.min().item():.6g}, {sums.max().item():.6g}]")


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _check_pair(p: torch.Tensor | np.ndarray, q: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    p, q = _check_probabilities(p, "p"), _check_probabilities(q, "q")
    _check_same_shape(p, q, "p", "q")
    return p, q


def _check_logits_and_targets(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Validate the inputs of `cross_entropy`; returns the mask of kept (not ignored) positions."""
    _check_outcomes(float_tensor(logits, "logits"), "logits")
    integer_tensor(targets, "targets")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must have shape logits.shape[:-1] = {tuple(logits.shape[:-1])}, "
                         f"got {tuple(targets.shape)}")
    ignore_index = integer(ignore_index, "ignore_index")
    keep = targets != ignore_index  # (...)
    V = logits.shape[-1]
    out_of_range = keep & ((targets < 0) | (targets >= V))
    if bool(out_of_range.any()):
        raise ValueError(f"targets must lie in [0, V) = [0, {V}) or equal ignore_index={ignore_index}, "
                         f"got {targets[out_of_range][0].item()}")
    return keep
