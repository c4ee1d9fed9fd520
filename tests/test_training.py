"""course_lib.training: optimizer_step equals the hand-written update, train_loop equals the loop written
out, the schedule, the determinism switch and the base config; bad input is named."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from course_lib.training import (
    TrainingConfig,
    deterministic,
    learning_rate,
    optimizer_step,
    train_loop,
)


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


# --- train_loop ------------------------------------------------------------------------------------


def _regression(seed: int = 0) -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3), torch.randn(6, 8, 4), torch.randn(6, 8, 3)


def test_train_loop_equals_the_loop_written_out():
    """Same batches, same rates, same clipping: the weights agree bit for bit, and each loss is recorded."""
    def rate(step: int) -> float:
        return 0.1 / (step + 1)

    model, x, y = _regression()
    by_hand = torch.nn.Linear(4, 3)
    by_hand.load_state_dict(model.state_dict())
    optimizer = torch.optim.Adam(by_hand.parameters())
    expected_a, expected_b = [], []
    for step in range(6):
        a, b = ((by_hand(x[step]) - y[step]) ** 2).mean(), by_hand(x[step]).abs().mean()
        optimizer_step(optimizer, a + b, rate(step), grad_clip=0.5)
        expected_a.append(a.item())
        expected_b.append(b.item())

    def step_losses(step: int) -> dict[str, torch.Tensor]:
        return {"a": ((model(x[step]) - y[step]) ** 2).mean(), "b": model(x[step]).abs().mean()}

    history = train_loop(model, torch.optim.Adam(model.parameters()), step_losses, 6, rate, grad_clip=0.5)
    assert history == {"a": expected_a, "b": expected_b}
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), by_hand.parameters()))


def test_train_loop_minimises_the_sum_of_the_named_losses():
    model = torch.nn.Linear(4, 3)
    weight, bias = model.weight.detach().clone(), model.bias.detach().clone()
    history = train_loop(model, torch.optim.SGD(model.parameters(), lr=1.0),
                         lambda step: {"up": model.bias.sum(), "down": -2 * model.bias.sum()}, 1, lambda step: 0.5)
    # d(up + down)/d bias = 1 - 2 = -1 for every element: SGD at rate 0.5 raises each bias by 0.5
    torch.testing.assert_close(model.bias.detach(), bias + 0.5)
    assert torch.equal(model.weight, weight)  # no loss reads the weight
    assert history == {"up": [bias.sum().item()], "down": [-2 * bias.sum().item()]}


def test_train_loop_leaves_the_model_in_eval_mode_and_trains_in_training_mode():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    modes = []

    def step_losses(step: int) -> dict[str, torch.Tensor]:
        modes.append(model.training)
        return {"loss": model(torch.ones(1, 2)).sum()}

    model.eval()
    train_loop(model, torch.optim.SGD(model.parameters(), lr=1.0), step_losses, 3, lambda step: 0.0)
    assert modes == [True, True, True] and not model.training


@pytest.mark.parametrize("call, error, match", [
    (lambda m, o: train_loop("model", o, lambda s: {}, 1, lambda s: 0.1), TypeError, "model must be a torch.nn.Module"),
    (lambda m, o: train_loop(m, o, lambda s: {"loss": m.bias.sum()}, 0, lambda s: 0.1), ValueError,
     "steps must be a positive integer, got 0"),
    (lambda m, o: train_loop(m, o, lambda s: {"loss": m.bias.sum()}, 1, 0.1), TypeError,
     "step_losses and lr must be functions of the step"),
    (lambda m, o: train_loop(m, o, lambda s: m.bias.sum(), 1, lambda s: 0.1), TypeError,
     "step_losses must return a non-empty dict of named losses"),
    (lambda m, o: train_loop(m, o, lambda s: {}, 1, lambda s: 0.1), TypeError,
     "step_losses must return a non-empty dict of named losses, got {}"),
])
def test_train_loop_bad_inputs_are_named(call, error, match):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(error, match=match):
        call(model, torch.optim.SGD(model.parameters(), lr=1.0))


# --- the schedule, the determinism switch, the base config ------------------------------------------


def test_learning_rate_schedule():
    config = TrainingConfig(steps=100, warmup_steps=10, learning_rate=1e-2, final_lr_ratio=0.1)
    assert learning_rate(0, config) == pytest.approx(1e-3)
    assert learning_rate(9, config) == pytest.approx(1e-2)
    assert learning_rate(99, config) == pytest.approx(1e-3)
    middle = 10 + (99 - 10) / 2
    cosine = 0.5 * (1 + math.cos(math.pi * (int(middle) - 10) / 89))
    assert learning_rate(int(middle), config) == pytest.approx(1e-2 * (0.1 + 0.9 * cosine))
    for step in (-5, 100, 2.0):
        with pytest.raises(ValueError, match=rf"step must be an int in \[0, steps=100\), got {step}"):
            learning_rate(step, config)


def test_deterministic_switches_on_and_restores_the_settings():
    threads, mode = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with deterministic(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == mode
    with pytest.raises(RuntimeError), deterministic(1):
        raise RuntimeError("training failed")
    assert torch.are_deterministic_algorithms_enabled() == mode  # restored after an error too
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"), deterministic(0):
        pass


@dataclass(frozen=True)
class _Recipe(TrainingConfig):
    width: int = 8

    FIELD_ORDER = ("name", "width", "batch_size")


def test_to_dict_follows_field_order_then_the_declaration_order():
    config = _Recipe(name="recipe", width=4)
    assert list(config.to_dict()) == ["name", "width", "batch_size", "steps", "learning_rate", "warmup_steps",
                                      "final_lr_ratio", "seed", "threads"]
    assert config.to_dict()["width"] == 4 and _Recipe(**config.to_dict()) == config


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"threads": 0}, "threads must be a positive integer, got 0"),
    ({"warmup_steps": 10, "steps": 10}, r"warmup_steps must be in \[0, steps=10\), got 10"),
    ({"warmup_steps": 2.5}, r"warmup_steps must be in \[0, steps=1000\), got 2.5"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"final_lr_ratio": 2.0}, r"final_lr_ratio must be in \[0, 1\], got 2.0"),
    ({"name": "my model"}, "name must be an identifier-like string"),
])
def test_bad_training_config_raises_a_clear_error(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        TrainingConfig(**kwargs)
