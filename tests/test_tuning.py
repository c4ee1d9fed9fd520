"""course_lib.tuning: the grid is the exact product, random search reproduces with its seed, early
stopping stops at the right step of a hand-made curve, Adam + L2 differs from AdamW (and both equal
their hand-written updates); bad input is named."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib.tuning import (
    EarlyStopping,
    LRSweep,
    Trial,
    Uniform,
    best_trial,
    grid_points,
    grid_search,
    log_spaced,
    lr_sweep,
    make_optimizer,
    random_points,
    random_search,
)

SPACE = {"lr": [1e-3, 1e-2, 1e-1], "width": [16, 32], "act": ["relu", "gelu"]}


# --- grid and random search -------------------------------------------------------------------------


def test_grid_covers_the_product_exactly_once():
    points = grid_points(SPACE)
    assert len(points) == 3 * 2 * 2
    as_tuples = [(p["lr"], p["width"], p["act"]) for p in points]
    assert as_tuples == list(itertools.product(*SPACE.values()))  # every combination, the last name fastest
    assert len(set(as_tuples)) == len(as_tuples)


def test_grid_search_scores_every_point_in_order():
    trials = grid_search(lambda lr, width, act: lr * width + (act == "gelu"), SPACE)
    assert [t.params for t in trials] == grid_points(SPACE)
    assert [t.score for t in trials] == [p["lr"] * p["width"] + (p["act"] == "gelu") for p in grid_points(SPACE)]
    assert best_trial(trials).params == {"lr": 1e-3, "width": 16, "act": "relu"}


def test_random_search_reproduces_with_its_seed_and_differs_with_another():
    space = {"lr": Uniform(1e-4, 1e-1, log=True), "dropout": Uniform(0.0, 0.5), "width": [16, 32, 64]}
    first = random_points(space, 20, torch.Generator().manual_seed(3))
    again = random_points(space, 20, torch.Generator().manual_seed(3))
    other = random_points(space, 20, torch.Generator().manual_seed(4))
    assert first == again and first != other
    assert all(1e-4 <= p["lr"] <= 1e-1 and 0 <= p["dropout"] <= 0.5 and p["width"] in (16, 32, 64) for p in first)
    trials = random_search(lambda lr, dropout, width: lr, space, 20, torch.Generator().manual_seed(3))
    assert [t.params for t in trials] == first


def test_random_draws_follow_their_distributions():
    space = {"u": Uniform(2.0, 4.0), "g": Uniform(1e-4, 1.0, log=True), "c": ["a", "b"]}
    points = random_points(space, 4000, torch.Generator().manual_seed(0))
    u = np.array([p["u"] for p in points])
    log_g = np.log10([p["g"] for p in points])
    assert abs(u.mean() - 3.0) < 0.05 and abs(u.std() - 2 / math.sqrt(12)) < 0.03  # uniform on [2, 4]
    assert abs(log_g.mean() + 2.0) < 0.1  # log-uniform: uniform in log10 on [-4, 0]
    assert abs(sum(p["c"] == "a" for p in points) / 4000 - 0.5) < 0.03


def test_random_search_tries_more_distinct_values_of_one_dimension_than_a_grid():
    grid = grid_points({"x": np.linspace(0, 1, 3).tolist(), "y": np.linspace(0, 1, 3).tolist()})
    rand = random_points({"x": Uniform(0, 1), "y": Uniform(0, 1)}, 9, torch.Generator().manual_seed(0))
    assert len({p["x"] for p in grid}) == 3 and len({p["x"] for p in rand}) == 9


def test_best_trial_skips_diverged_runs():
    trials = [Trial({"lr": 1.0}, float("nan")), Trial({"lr": 0.1}, 2.0), Trial({"lr": 0.5}, math.inf),
              Trial({"lr": 0.01}, 3.0)]
    assert best_trial(trials).params == {"lr": 0.1}
    with pytest.raises(ValueError, match="finite score"):
        best_trial(trials[:1])


@pytest.mark.parametrize("space, error, match", [
    ({}, ValueError, "at least one hyperparameter"),
    ({"lr": []}, ValueError, r"space\['lr'\] must hold at least one value"),
    ({"lr": "0.1"}, TypeError, r"space\['lr'\] must be a sequence"),
    ([("lr", [1])], TypeError, "space must be a mapping"),
    ({"lr": Uniform(0.1, 1.0)}, TypeError, r"space\['lr'\] must be a sequence of values, got Uniform"),
])
def test_bad_grid_spaces_are_named(space, error, match):
    with pytest.raises(error, match=match):
        grid_points(space)


def test_bad_random_search_arguments_are_named():
    space = {"lr": Uniform(0.1, 1.0)}
    with pytest.raises(ValueError, match="trials must be a positive integer, got 0"):
        random_points(space, 0, torch.Generator())
    with pytest.raises(TypeError, match="trials"):
        random_points(space, 2.0, torch.Generator())
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        random_points(space, 2, 0)
    with pytest.raises(ValueError, match="high must be greater than low"):
        Uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="low must be > 0 for a log-uniform range, got 0"):
        Uniform(0, 1.0, log=True)
    with pytest.raises(TypeError, match="objective must be"):
        random_search(None, space, 2, torch.Generator())
    with pytest.raises(TypeError, match="the objective's score must be a real number"):
        grid_search(lambda lr: "bad", {"lr": [1]})
    assert random_points({"n": np.arange(3).tolist()}, np.int64(2), torch.Generator().manual_seed(0))


# --- learning-rate sweep ----------------------------------------------------------------------------


def test_log_spaced_is_geometric_with_exact_ends():
    values = log_spaced(1e-4, 1e-1, 4)
    assert values[0] == 1e-4 and values[-1] == 1e-1
    assert np.allclose(values, [1e-4, 1e-3, 1e-2, 1e-1], rtol=1e-12)
    with pytest.raises(ValueError, match="n must be >= 2"):
        log_spaced(1e-4, 1e-1, 1)
    with pytest.raises(ValueError, match="high must be greater than low"):
        log_spaced(1e-1, 1e-4, 3)
    with pytest.raises(ValueError, match="low must be positive, got 0"):
        log_spaced(0, 1.0, 3)


def test_lr_sweep_finds_the_best_rate_of_gradient_descent_on_a_quadratic():
    """Gradient descent on 0.5 * a * x^2 for 5 steps multiplies x by (1 - lr * a) each step: lr = 1/a is exact."""
    a = 4.0

    def train(lr: float) -> float:
        x = 1.0
        for _ in range(5):
            x -= lr * a * x
        return 0.5 * a * x * x if abs(x) < 1e5 else math.nan

    sweep = lr_sweep(train, 1 / 64, 4.0, 17)  # powers of 2 from 2^-6 to 2^2: includes 1/4
    assert isinstance(sweep, LRSweep) and len(sweep.lrs) == len(sweep.losses) == 17
    assert math.isclose(sweep.best_lr, 1 / a, rel_tol=1e-9)
    assert math.isnan(sweep.losses[-1])  # lr = 4 diverges: |1 - 16|^5 > 1e5
    with pytest.raises(TypeError, match="train must be"):
        lr_sweep(3, 1e-3, 1.0, 3)


# --- early stopping ---------------------------------------------------------------------------------

CURVE = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.9, 3.3, 3.4, 3.6]


def _run(stopper: EarlyStopping, curve: list[float]) -> int | None:
    for step, loss in enumerate(curve):
        if stopper.step(loss):
            return step
    return None


def test_early_stopping_stops_after_patience_steps_without_improvement():
    stopper = EarlyStopping(patience=3)
    assert _run(stopper, CURVE) == 5  # best 3.0 at step 2; steps 3, 4, 5 do not improve
    assert stopper.best_step == 2 and stopper.best_loss == 3.0 and stopper.should_stop


def test_early_stopping_with_more_patience_finds_the_later_minimum():
    stopper = EarlyStopping(patience=4)
    assert _run(stopper, CURVE) is None  # 2.9 at step 6 resets the count; steps 7, 8, 9 are only three
    stopper = EarlyStopping(patience=4)
    assert _run(stopper, CURVE + [3.7]) == 10 and stopper.best_step == 6


def test_min_delta_ignores_small_improvements():
    stopper = EarlyStopping(patience=4, min_delta=0.2)
    assert _run(stopper, CURVE) == 6  # 2.9 improves on 3.0 by only 0.1: no reset
    assert stopper.best_step == 2


def test_nan_never_improves_and_patience_one_stops_at_once():
    stopper = EarlyStopping(patience=1)
    assert _run(stopper, [1.0, math.nan]) == 1 and stopper.best_step == 0
    stopper = EarlyStopping(patience=2)
    assert _run(stopper, [math.nan, math.nan]) == 1 and stopper.best_step is None


def test_early_stopping_restores_the_best_weights():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    kept = None
    for step, loss in enumerate([3.0, 1.0, 2.0, 4.0]):
        with torch.no_grad():
            model.weight.fill_(float(step))
        if step == 1:
            kept = model.weight.detach().clone()
        stopper.step(loss, model)
    assert stopper.stopped_step == 3
    assert stopper.restore(model) == 1
    assert torch.equal(model.weight, kept)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(patience=0), ValueError, "patience must be a positive integer, got 0"),
    (dict(patience=1.5), TypeError, "patience"),
    (dict(patience=True), TypeError, "patience"),
    (dict(patience=2, min_delta=-0.1), ValueError, "min_delta must be >= 0, got -0.1"),
])
def test_bad_early_stopping_settings_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)


def test_restore_without_kept_weights_and_bad_losses_are_named():
    stopper = EarlyStopping(patience=2)
    stopper.step(1.0)
    with pytest.raises(ValueError, match="pass the model to step"):
        stopper.restore(torch.nn.Linear(1, 1))
    with pytest.raises(TypeError, match="loss must be a real number"):
        stopper.step("1.0")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        stopper.step(1.0, model=3)


# --- Adam + L2 vs AdamW -----------------------------------------------------------------------------


def _problem():
    """A least-squares fit whose two weights see gradients of very different sizes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64) * torch.tensor([10.0, 0.1], dtype=torch.float64)
    y = x @ torch.tensor([0.5, -2.0], dtype=torch.float64)
    return x, y


def _train(kind: str, weight_decay: float, steps: int = 5, lr: float = 0.1, explicit_l2: float = 0.0):
    x, y = _problem()
    w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    optimizer = make_optimizer([w], kind, lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = ((x @ w - y) ** 2).mean() + 0.5 * explicit_l2 * (w ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return w.detach()


def test_adam_l2_and_adamw_differ_with_decay_and_agree_without():
    assert not torch.allclose(_train("adam_l2", 0.5), _train("adamw", 0.5), atol=1e-3)
    assert torch.equal(_train("adam_l2", 0.0), _train("adamw", 0.0))


def test_adam_l2_equals_adam_on_the_loss_plus_an_l2_penalty():
    assert torch.allclose(_train("adam_l2", 0.5), _train("adam_l2", 0.0, explicit_l2=0.5), rtol=1e-12, atol=1e-12)


def test_adamw_equals_shrinking_then_adam_by_hand():
    x, y = _problem()
    lr, decay, b1, b2, eps = 0.1, 0.5, 0.9, 0.999, 1e-8
    w, m, v = torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for t in range(1, 6):
        grad = 2 * x.T @ (x @ w - y) / len(x)  # gradient of the loss alone
        w = w * (1 - lr * decay)
        m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad ** 2
        w = w - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
    assert torch.allclose(_train("adamw", decay), w, rtol=1e-12, atol=1e-12)


def test_under_sgd_l2_is_weight_decay():
    assert torch.allclose(_train("sgd", 0.5, lr=0.001), _train("sgd", 0.0, lr=0.001, explicit_l2=0.5), rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kind="adam"), ValueError, r"kind must be one of \('sgd', 'adam_l2', 'adamw'\), got 'adam'"),
    (dict(kind="adamw", lr=0.0), ValueError, "lr must be positive, got 0"),
    (dict(kind="adamw", weight_decay=-1.0), ValueError, "weight_decay must be >= 0, got -1"),
    (dict(kind=3), TypeError, "kind must be a str"),
])
def test_bad_optimizer_configs_are_named(kwargs, error, match):
    arguments = {"lr": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        make_optimizer([torch.nn.Parameter(torch.ones(1))], **arguments)
