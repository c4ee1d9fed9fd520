"""optimizer_step equals the hand-written update, clips when asked, and rejects bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.training import optimizer_step


def _model_and_loss(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    loss = (model(torch.randn(5, 4)) ** 2).mean() * 100
    return model, loss


def test_matches_a_hand_written_sgd_update():
    model, loss = _model_and_loss()
    before = [p.detach().clone() for p in model.parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer_step(optimizer, loss, lr=0.1)
    assert optimizer.param_groups[0]["lr"] == 0.1
    for p, p0, g in zip(model.parameters(), before, grads):
        assert torch.allclose(p, p0 - 0.1 * g)


def test_two_steps_match_two_hand_written_sgd_updates():
    """The second step must use only the second loss's gradient: old gradients are cleared."""
    torch.manual_seed(0)
    model, inputs = torch.nn.Linear(4, 3), torch.randn(2, 5, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for x, lr in zip(inputs, (0.1, 0.05)):
        before = [p.detach().clone() for p in model.parameters()]
        loss = (model(x) ** 2).mean() * 100
        grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        optimizer_step(optimizer, loss, lr=lr)
        for p, p0, g in zip(model.parameters(), before, grads):
            torch.testing.assert_close(p, p0 - lr * g)


def test_clipping_bounds_the_global_gradient_norm():
    model, loss = _model_and_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer_step(optimizer, loss, lr=1.0, grad_clip=0.5)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"lr": -0.1}, ValueError, "lr must be >= 0, got -0.1"),
    ({"lr": math.inf}, ValueError, "lr must be a finite number, got inf"),
    ({"lr": "0.1"}, TypeError, "lr must be a real number, got str '0.1'"),
    ({"lr": True}, TypeError, "lr must be a real number, got bool True"),
    ({"lr": 0.1, "grad_clip": -1.0}, ValueError, "grad_clip must be positive, got -1.0"),
    ({"lr": 0.1, "grad_clip": "1"}, TypeError, "grad_clip must be a real number, got str '1'"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    model, loss = _model_and_loss()
    with pytest.raises(error, match=match):
        optimizer_step(torch.optim.SGD(model.parameters(), lr=1.0), loss, **kwargs)


def test_numpy_numbers_are_accepted_as_rates():
    model, loss = _model_and_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer_step(optimizer, loss, lr=np.float64(0.25), grad_clip=np.float32(10.0))
    assert optimizer.param_groups[0]["lr"] == 0.25 and type(optimizer.param_groups[0]["lr"]) is float


def test_loss_must_be_a_scalar_tensor():
    model, _ = _model_and_loss()
    with pytest.raises(ValueError, match=r"loss must be a scalar tensor, got shape \(2,\)"):
        optimizer_step(torch.optim.SGD(model.parameters(), lr=1.0), torch.ones(2), lr=0.1)
    with pytest.raises(TypeError, match="loss must be a torch.Tensor, got float"):
        optimizer_step(torch.optim.SGD(model.parameters(), lr=1.0), 1.0, lr=0.1)


def test_a_non_finite_loss_and_a_missing_optimizer_are_refused():
    model, loss = _model_and_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="loss must be finite, got nan"):
        optimizer_step(optimizer, loss * math.nan, lr=0.1, grad_clip=1.0)
    assert all(torch.equal(p, p0) for p, p0 in zip(model.parameters(), before))  # no step taken
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got NoneType"):
        optimizer_step(None, loss, lr=0.1)
