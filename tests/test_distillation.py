"""Tests for course_lib.distillation: a hand-derived case, torch's kl_div and cross_entropy, ignored
positions, the T^2 gradient scale, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.distillation import distillation_loss


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def torch_reference(student, teacher, targets, T, alpha):
    """The same loss from torch's own functions, on positions flattened to rows."""
    V = student.shape[-1]
    s, t, y = student.reshape(-1, V), teacher.reshape(-1, V), targets.reshape(-1)
    keep = y != -100
    kl = F.kl_div(F.log_softmax(s[keep] / T, -1), F.log_softmax(t[keep] / T, -1), log_target=True,
                  reduction="batchmean")  # sum over classes and rows / rows
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(s, y, ignore_index=-100)


def test_hand_derived_case():
    teacher = torch.tensor([[2 * math.log(3), 0.0]], dtype=torch.float64)  # T = 2: p = (3/4, 1/4)
    student = torch.zeros(1, 2, dtype=torch.float64)  # q = (1/2, 1/2)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # = 0.1308...
    loss = distillation_loss(student, teacher, temperature=2.0, alpha=1.0)
    assert float(loss) == pytest.approx(4 * kl, rel=1e-12)  # T^2 = 4
    targets = torch.tensor([1])  # hard term: -log(1/2) at T = 1
    mixed = distillation_loss(student, teacher, targets, temperature=2.0, alpha=0.25)
    assert float(mixed) == pytest.approx(0.25 * 4 * kl + 0.75 * math.log(2), rel=1e-12)


@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_matches_torch_kl_div_and_cross_entropy(T, alpha):
    student, teacher = randn(3, 5, 11, seed=1) * 3, randn(3, 5, 11, seed=2) * 3  # (B, T, V)
    targets = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(3))
    loss = distillation_loss(student, teacher, targets, temperature=T, alpha=alpha)
    torch.testing.assert_close(loss, torch_reference(student, teacher, targets, T, alpha), rtol=1e-12, atol=1e-12)


def test_without_targets_it_is_the_scaled_kl_alone():
    student, teacher = randn(4, 7, seed=1), randn(4, 7, seed=2)
    loss = distillation_loss(student, teacher, temperature=3.0, alpha=1.0)
    kl = F.kl_div(F.log_softmax(student / 3, -1), F.log_softmax(teacher / 3, -1), log_target=True,
                  reduction="batchmean")
    torch.testing.assert_close(loss, 9 * kl, rtol=1e-12, atol=1e-12)


def test_soft_term_is_zero_when_the_student_equals_the_teacher_up_to_a_shift():
    teacher = randn(6, 9, seed=4)
    shifted = teacher + torch.arange(6, dtype=torch.float64)[:, None]  # softmax is shift-invariant
    assert float(distillation_loss(shifted, teacher, temperature=4.0, alpha=1.0)) == pytest.approx(0, abs=1e-14)


def test_ignored_positions_count_in_neither_term():
    student, teacher = randn(2, 6, 5, seed=5), randn(2, 6, 5, seed=6)
    targets = torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(7))
    targets[0, 4:] = -100
    targets[1, 0] = -100
    loss = distillation_loss(student, teacher, targets, temperature=2.0, alpha=0.6)
    keep = targets != -100
    on_kept = distillation_loss(student[keep], teacher[keep], targets[keep], temperature=2.0, alpha=0.6)
    torch.testing.assert_close(loss, on_kept, rtol=1e-12, atol=1e-12)
    changed = student.clone()
    changed[~keep] = 100.0  # anything at an ignored position
    torch.testing.assert_close(distillation_loss(changed, teacher, targets, 2.0, 0.6), loss, rtol=0, atol=0)
    torch.testing.assert_close(loss, torch_reference(student, teacher, targets, 2.0, 0.6), rtol=1e-12, atol=1e-12)


def test_no_gradient_reaches_the_teacher():
    student, teacher = randn(3, 4, seed=1).requires_grad_(), randn(3, 4, seed=2).requires_grad_()
    distillation_loss(student, teacher, temperature=2.0, alpha=1.0).backward()
    assert teacher.grad is None and student.grad is not None


def soft_gradient_norm(T: float, scaled: bool) -> float:
    """Norm of the soft term's gradient with respect to the student's logits (zero-mean logits)."""
    student, teacher = randn(64, 20, seed=8), randn(64, 20, seed=9)
    student = (student - student.mean(-1, keepdim=True)).requires_grad_()
    teacher = teacher - teacher.mean(-1, keepdim=True)
    loss = distillation_loss(student, teacher, temperature=T, alpha=1.0)
    (loss if scaled else loss / T**2).backward()
    return float(student.grad.norm())


def test_t_squared_keeps_the_soft_gradient_on_one_scale():
    temperatures = [4.0, 8.0, 16.0, 32.0]
    with_t2 = [soft_gradient_norm(T, scaled=True) for T in temperatures]
    without = [soft_gradient_norm(T, scaled=False) for T in temperatures]
    assert max(with_t2) / min(with_t2) < 1.05  # about constant across T (measured: within 2%)
    for T, g in zip(temperatures, without):
        assert g * T**2 == pytest.approx(with_t2[0], rel=0.05)  # g shrinks as 1/T^2
    assert without[0] / without[-1] == pytest.approx((32 / 4) ** 2, rel=0.05)  # 64x smaller at 8x the T


@pytest.mark.parametrize("call, error, message", [
    (lambda: distillation_loss(randn(2, 3), randn(2, 3)), ValueError,
     "alpha must be 1 when targets is None .* got 0.5"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 4), alpha=1.0), ValueError,
     r"must have the same shape \(\.\.\., V\), got \(2, 3\) and \(2, 4\)"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 3), torch.tensor([0, 1, 2])), ValueError,
     r"targets must have shape \(2,\) .* got \(3,\)"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 3), torch.tensor([0.0, 1.0])), TypeError,
     "targets must be an integer tensor"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 3), torch.tensor([0, 3])), ValueError, "targets"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 3), temperature=0, alpha=1.0), ValueError,
     "temperature must be positive, got 0"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 3), temperature=-2.0, alpha=1.0), ValueError,
     "temperature must be positive, got -2"),
    (lambda: distillation_loss(randn(2, 3), randn(2, 3), torch.tensor([0, 1]), alpha=1.5), ValueError,
     r"alpha must be in \[0, 1\], got 1.5"),
    (lambda: distillation_loss(randn(2, 3).long(), randn(2, 3), alpha=1.0), TypeError,
     "student_logits must be a floating-point tensor"),
    (lambda: distillation_loss(randn(2, 3), [[0.0] * 3] * 2, alpha=1.0), TypeError,
     "teacher_logits must be a torch.Tensor, got list"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
