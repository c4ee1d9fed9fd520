"""Knowledge distillation: training a student on a teacher's softened distribution and on the labels.

Hinton et al. 2015 (section 2) train the student on two targets at once::

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
           + (1 - alpha) * cross_entropy(student, targets)

The soft term compares whole distributions: raising the temperature T flattens them, so the
teacher's small probabilities (which wrong answers it finds plausible, its "dark knowledge") weigh
in. Its gradient with respect to the student's logits is ``(q - p) / T`` (q the student's, p the
teacher's softened probabilities); for large T, ``q - p`` itself is about ``(z - v) / (T V)`` for
zero-mean logits z and v over V classes, so the gradient shrinks as ``1 / T^2``. Multiplying the
soft term by ``T^2`` keeps its gradient on the same scale whatever T is, so the balance ``alpha``
between soft and hard targets does not drift when T is tuned. The hard term uses T = 1.

Left out: sequence-level distillation (training on the teacher's generated sequences), feature or
attention matching (DistilBERT's cosine loss), reverse KL and other divergences, and on-policy
distillation.
"""

from __future__ import annotations

import torch

from course_lib.losses import IGNORE_INDEX, cross_entropy, kl_divergence_log
from course_lib.softmax import log_softmax
from course_lib.validation import (
    float_tensor,
    integer_tensor,
    positive_number,
    probability,
)

__all__ = ["distillation_loss"]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      targets: torch.Tensor | None = None, temperature: float = 2.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """Hinton et al.'s distillation loss, a 0-d tensor: logits (..., V), targets (...) or None.

    ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) *
    cross_entropy(student, targets)``, each term averaged over the positions. Positions whose
    target is -100 are left out of both terms (they are padding, not data). ``targets=None`` means
    distillation from the teacher alone: there is no hard term, and ``alpha`` must then be 1 (any
    other value would weight a term that does not exist). No gradient flows into the teacher.
    The soft term's gradient shrinks as ``1 / T^2``; the ``T^2`` factor undoes that (Hinton et al.
    2015, section 2), so ``alpha`` weighs the two terms alike at any temperature.
    """
    float_tensor(student_logits, "student_logits")
    float_tensor(teacher_logits, "teacher_logits")
    if student_logits.ndim == 0 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape (..., V), got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    T = positive_number(temperature, "temperature")
    alpha = probability(alpha, "alpha")
    if targets is None and alpha != 1:
        raise ValueError(f"alpha must be 1 when targets is None (there is no hard-label term), got {alpha:g}")
    log_p = log_softmax(teacher_logits.detach() / T, dim=-1)  # (..., V) the teacher's soft targets
    log_q = log_softmax(student_logits / T, dim=-1)  # (..., V)
    kl = kl_divergence_log(log_p, log_q)  # (...)
    if targets is None:
        return T**2 * kl.mean()
    integer_tensor(targets, "targets")
    if targets.shape != student_logits.shape[:-1]:
        raise ValueError(f"targets must have shape {tuple(student_logits.shape[:-1])} (the logits' "
                         f"without V), got {tuple(targets.shape)}")
    keep = targets != IGNORE_INDEX  # (...)
    soft = torch.where(keep, kl, 0.0).sum() / keep.sum()
    return alpha * T**2 * soft + (1 - alpha) * cross_entropy(student_logits, targets)
