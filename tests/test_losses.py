"""Tests for course_lib.losses against torch.nn.functional and the textbook identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.losses import (
    IGNORE_INDEX,
    cross_entropy,
    cross_entropy_grad,
    distribution_cross_entropy,
    entropy,
    kl_divergence,
    kl_divergence_log,
    perplexity,
)

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_distributions(shape: tuple[int, ...], seed: int, zeros: bool = False) -> torch.Tensor:
    """Random probability vectors along the last dim; with zeros=True about a third are exactly 0."""
    logits = 2 * torch.randn(shape, generator=gen(seed), dtype=F64)
    if zeros:
        logits = logits.masked_fill(torch.rand(shape, generator=gen(seed + 1), dtype=F64) < 0.33, -math.inf)
        logits[..., 0] = 0.0  # keep at least one outcome possible
    return torch.softmax(logits, dim=-1)


@pytest.mark.parametrize("shape", [(7,), (5, 7), (2, 3, 7), (4, 1)])
@pytest.mark.parametrize("ignore_index", [-100, 0, 3])
def test_cross_entropy_matches_torch(shape, ignore_index):
    logits = 3 * torch.randn(shape, generator=gen(0), dtype=F64)
    V = shape[-1]
    targets = torch.randint(V, shape[:-1], generator=gen(1))
    if ignore_index == -100 and targets.dim() > 0:
        targets[..., 0] = -100
    expected = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index)
    result = cross_entropy(logits, targets, ignore_index=ignore_index)
    assert result.shape == ()
    if torch.isnan(expected):  # every target ignored in a small case
        assert torch.isnan(result)
    else:
        torch.testing.assert_close(result, expected)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    logits = torch.randn(3, 5)
    targets = torch.full((3,), IGNORE_INDEX)
    assert torch.isnan(cross_entropy(logits, targets))
    assert torch.isnan(F.cross_entropy(logits, targets))


def test_cross_entropy_float32_and_extreme_logits():
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, -math.inf, 5.0]])
    targets = torch.tensor([2, 2])
    torch.testing.assert_close(cross_entropy(logits, targets), F.cross_entropy(logits, targets))


def test_uniform_logits_give_log_v_and_perplexity_v():
    for V in (2, 10, 50257):
        logits = torch.zeros(4, V, dtype=F64)
        loss = cross_entropy(logits, torch.arange(4) % V)
        torch.testing.assert_close(loss, torch.tensor(math.log(V), dtype=F64))
        torch.testing.assert_close(perplexity(loss), torch.tensor(float(V), dtype=F64))


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    logits = torch.randn(2, 5, 6, generator=gen(2), dtype=F64, requires_grad=True)
    targets = torch.randint(6, (2, 5), generator=gen(3))
    targets[0, :2] = IGNORE_INDEX
    cross_entropy(logits, targets).backward()
    grad = cross_entropy_grad(logits.detach(), targets)
    torch.testing.assert_close(grad, logits.grad)
    assert torch.all(grad[0, :2] == 0)
    kept = targets != IGNORE_INDEX
    expected = (torch.softmax(logits.detach(), -1) - F.one_hot(targets.clamp(min=0), 6)) / kept.sum()
    torch.testing.assert_close(grad[kept], expected[kept])
    torch.testing.assert_close(grad.sum(-1), torch.zeros(2, 5, dtype=F64))  # rows of the gradient sum to 0


def test_cross_entropy_is_negative_log_likelihood_and_kl_to_one_hot():
    logits = torch.randn(8, 5, generator=gen(4), dtype=F64)
    targets = torch.randint(5, (8,), generator=gen(5))
    q = torch.softmax(logits, dim=-1)
    one_hot = F.one_hot(targets, 5).to(F64)
    loss = cross_entropy(logits, targets)
    torch.testing.assert_close(loss, -q[torch.arange(8), targets].log().mean())
    torch.testing.assert_close(loss, distribution_cross_entropy(one_hot, q).mean())
    torch.testing.assert_close(loss, kl_divergence(one_hot, q).mean())
    torch.testing.assert_close(entropy(one_hot), torch.zeros(8, dtype=F64))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), V=st.integers(1, 12), zeros=st.booleans())
def test_cross_entropy_is_entropy_plus_kl(seed, V, zeros):
    p = random_distributions((3, V), seed, zeros=zeros)
    q = random_distributions((3, V), seed + 7)
    torch.testing.assert_close(distribution_cross_entropy(p, q), entropy(p) + kl_divergence(p, q))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), V=st.integers(2, 12), zeros=st.booleans())
def test_kl_nonnegative_zero_iff_equal_and_matches_torch(seed, V, zeros):
    p = random_distributions((4, V), seed, zeros=zeros)
    q = random_distributions((4, V), seed + 11)
    kl = kl_divergence(p, q)
    assert torch.all(kl >= 0)
    assert torch.all(kl > 0) or torch.allclose(p, q)
    torch.testing.assert_close(kl_divergence(p, p), torch.zeros(4, dtype=F64))
    torch.testing.assert_close(kl, F.kl_div(q.log(), p, reduction="none").sum(-1))
    torch.testing.assert_close(kl_divergence_log(_log(p), q.log()), kl)


def _log(p: torch.Tensor) -> torch.Tensor:
    return p.log()  # log 0 = -inf: the log-space variant must handle it


def test_kl_is_asymmetric_worked_example():
    # p = (1/2, 1/2), q = (1/4, 3/4): KL(p||q) = ln 2 - (1/2) ln 3 ~ 0.1438, KL(q||p) = (3/4) ln 3 - ln 2 ~ 0.1308.
    p = torch.tensor([0.5, 0.5], dtype=F64)
    q = torch.tensor([0.25, 0.75], dtype=F64)
    torch.testing.assert_close(kl_divergence(p, q), torch.tensor(math.log(2) - 0.5 * math.log(3), dtype=F64))
    torch.testing.assert_close(kl_divergence(q, p), torch.tensor(0.75 * math.log(3) - math.log(2), dtype=F64))
    assert kl_divergence(p, q) != kl_divergence(q, p)


def test_kl_infinite_when_q_misses_support_and_zero_terms_dropped():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    q = torch.tensor([0.5, 0.0, 0.5], dtype=F64)
    assert kl_divergence(p, q) == math.inf
    torch.testing.assert_close(kl_divergence(p, torch.tensor([0.5, 0.5, 0.0], dtype=F64)), torch.tensor(0.0, dtype=F64))
    torch.testing.assert_close(kl_divergence(torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.5, 0.5], dtype=F64)),
                               torch.tensor(math.log(2), dtype=F64))


def test_gradients_have_no_nan_at_zero_probabilities():
    p = torch.tensor([0.7, 0.3, 0.0], dtype=F64, requires_grad=True)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=F64, requires_grad=True)
    (kl_divergence(p, q) + entropy(p) + distribution_cross_entropy(p, q)).backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()
    log_p = torch.tensor([0.0, -math.inf], dtype=F64, requires_grad=True)
    log_q = torch.log(torch.tensor([0.4, 0.6], dtype=F64)).requires_grad_(True)
    kl_divergence_log(log_p, log_q).backward()
    assert torch.isfinite(log_p.grad).all() and torch.isfinite(log_q.grad).all()
    torch.testing.assert_close(log_q.grad, torch.tensor([-1.0, 0.0], dtype=F64))  # d/dlog_q = -p


def test_kl_divergence_log_on_log_softmax_matches_probability_form():
    student = torch.randn(3, 9, generator=gen(6), dtype=F64)
    teacher = torch.randn(3, 9, generator=gen(7), dtype=F64)
    result = kl_divergence_log(F.log_softmax(teacher, -1), F.log_softmax(student, -1))
    expected = kl_divergence(torch.softmax(teacher, -1), torch.softmax(student, -1))
    torch.testing.assert_close(result, expected)


def test_entropy_worked_values():
    torch.testing.assert_close(entropy(torch.full((4,), 0.25, dtype=F64)), torch.tensor(math.log(4), dtype=F64))
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0]], dtype=F64)
    torch.testing.assert_close(entropy(p), torch.tensor([1.5 * math.log(2)], dtype=F64))


def test_perplexity_is_exp_of_cross_entropy():
    logits = torch.randn(6, 10, generator=gen(8), dtype=F64)
    targets = torch.randint(10, (6,), generator=gen(9))
    loss = cross_entropy(logits, targets)
    torch.testing.assert_close(perplexity(loss), loss.exp())
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(7)) == pytest.approx(7.0)
    assert isinstance(perplexity(1.0), float)


def test_perplexity_overflows_to_inf_for_floats_and_tensors_alike():
    assert perplexity(1000.0) == math.inf == float(perplexity(torch.tensor(1000.0)))
    assert perplexity(709.0) == math.exp(709.0)


@pytest.mark.parametrize(
    ("logits", "targets", "message"),
    [
        (torch.randn(3, 5), torch.zeros(4, dtype=torch.long),
         r"targets must have shape logits.shape\[:-1\] = \(3,\), got \(4,\)"),
        (torch.randn(3, 5), torch.tensor([0, 5, 1]),
         r"targets must lie in \[0, V\) = \[0, 5\) or equal ignore_index=-100, got 5"),
        (torch.randn(3, 5), torch.tensor([0, -1, 1]), r"got -1"),
        (torch.randn(3, 0), torch.zeros(3, dtype=torch.long), r"non-empty last dimension"),
    ],
)
def test_cross_entropy_bad_input(logits, targets, message):
    with pytest.raises(ValueError, match=message):
        cross_entropy(logits, targets)
    with pytest.raises(ValueError, match=message):
        cross_entropy_grad(logits, targets)


@pytest.mark.parametrize(
    ("logits", "targets", "message"),
    [
        (torch.randn(3, 5), torch.zeros(3), "targets must be an integer tensor, got dtype torch.float32"),
        (torch.randn(3, 5), [0, 1, 2], "targets must be a torch.Tensor, got list"),
        (torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, dtype=torch.long),
         "logits must be a floating-point tensor, got dtype torch.int64"),
        (torch.randn(3, 5).numpy(), torch.zeros(3, dtype=torch.long), "logits must be a torch.Tensor, got ndarray"),
    ],
)
def test_cross_entropy_wrong_types(logits, targets, message):
    with pytest.raises(TypeError, match=message):
        cross_entropy(logits, targets)
    with pytest.raises(TypeError, match=message):
        cross_entropy_grad(logits, targets)


def test_cross_entropy_ignore_index_must_be_an_integer():
    logits, targets = torch.randn(2, 3), torch.tensor([0, 2])
    with pytest.raises(TypeError, match="ignore_index must be an integer, got float 0.5"):
        cross_entropy(logits, targets, ignore_index=0.5)
    with pytest.raises(TypeError, match="ignore_index must be an integer, got True"):
        cross_entropy(logits, targets, ignore_index=True)
    torch.testing.assert_close(cross_entropy(logits, targets, ignore_index=np.int64(2)),
                               cross_entropy(logits, targets, ignore_index=2))


GOOD = torch.tensor([0.2, 0.8])


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (torch.tensor([0.2, 0.7]), r"p must sum to 1 along the last dim \(within 0.0001\), got sums in \[0.9"),
        (torch.tensor([1.5, -0.5]), r"p must be non-negative, got a minimum of -0.5"),
        (torch.tensor([float("nan"), 1.0]), "p contains NaN"),
        (torch.tensor([1.0, 2.0]), "sum to 1"),  # logits passed where probabilities belong
        (torch.tensor(1.0), "non-empty last dimension"),
        (np.array([0.2, 0.7]), "p must sum to 1"),
    ],
)
def test_probability_checks(p, message):
    for call in (lambda: entropy(p), lambda: kl_divergence(p, GOOD), lambda: distribution_cross_entropy(p, GOOD)):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (torch.tensor([1, 0]), "p must be a floating-point tensor, got dtype torch.int64"),
        (np.array([1, 0]), "p must be a floating-point tensor, got dtype torch.int64"),
        ([0.2, 0.8], "p must be a torch.Tensor, got list"),
    ],
)
def test_probability_type_checks(p, message):
    for call in (lambda: entropy(p), lambda: kl_divergence(p, GOOD), lambda: distribution_cross_entropy(p, GOOD)):
        with pytest.raises(TypeError, match=message):
            call()


def test_entropy_and_kl_accept_numpy_arrays():
    p, q = random_distributions((3, 6), seed=11, zeros=True), random_distributions((3, 6), seed=12)
    torch.testing.assert_close(entropy(p.numpy()), entropy(p))
    torch.testing.assert_close(kl_divergence(p.numpy(), q.numpy()), kl_divergence(p, q))
    torch.testing.assert_close(kl_divergence(p.numpy(), q), kl_divergence(p, q))
    torch.testing.assert_close(distribution_cross_entropy(p.numpy(), q.numpy()), distribution_cross_entropy(p, q))
    torch.testing.assert_close(kl_divergence_log(np.log(q.numpy()), np.log(q.numpy())), torch.zeros(3, dtype=F64))
    assert isinstance(entropy(np.array([0.5, 0.5])), torch.Tensor)


def test_probability_tolerance_and_q_checks():
    nearly = torch.tensor([0.2, 0.8 + 5e-5])  # within the documented tolerance
    assert torch.isfinite(entropy(nearly))
    half = torch.tensor([0.2, 0.8 + 5e-3], dtype=torch.bfloat16)  # bfloat16: tolerance 1e-2
    assert torch.isfinite(entropy(half))
    with pytest.raises(ValueError, match="q must sum to 1"):
        kl_divergence(GOOD, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match=r"p and q must have the same shape, got \(2,\) and \(3,\)"):
        kl_divergence(GOOD, torch.full((3,), 1 / 3))


@pytest.mark.parametrize(
    ("log_p", "log_q", "message"),
    [
        (torch.tensor([0.0, 0.0]), GOOD.log(), r"log_p must satisfy logsumexp = 0 along the last dim"),
        (GOOD.log(), torch.tensor([math.inf, 0.0]), "log_q contains NaN or \\+inf"),
        (GOOD.log(), torch.full((3,), 1 / 3).log(), "log_p and log_q must have the same shape"),
        (torch.tensor([-math.inf, -math.inf]), GOOD.log(), "log_p must satisfy logsumexp = 0"),
    ],
)
def test_kl_divergence_log_bad_input(log_p, log_q, message):
    with pytest.raises(ValueError, match=message):
        kl_divergence_log(log_p, log_q)


@pytest.mark.parametrize(("loss", "error", "message"), [
    (-0.1, ValueError, r"loss must be in \[0, inf\], got -0.1"),
    (float("nan"), ValueError, "loss must be a finite number, got nan"),
    (torch.tensor([0.5, -1.0]), ValueError, "loss must be a non-negative cross-entropy"),
    ("1.0", TypeError, "loss must be a real number, got str '1.0'"),
    (True, TypeError, "loss must be a real number, got bool True"),
    (torch.tensor(1), TypeError, "loss must be a floating-point tensor, got dtype torch.int64"),
])
def test_perplexity_bad_input(loss, error, message):
    with pytest.raises(error, match=message):
        perplexity(loss)


def test_perplexity_of_numpy_scalars():
    assert perplexity(np.float64(math.log(3))) == pytest.approx(3.0)
    assert perplexity(np.int64(0)) == 1.0
