"""Choosing hyperparameters and when to stop: grid and random search, a learning-rate sweep, early
stopping, and the two ways of adding weight decay to Adam.

A search space maps each hyperparameter's name to the values it may take. `grid_points` lists every
combination of finite value lists (their Cartesian product, in the space's order); `random_points`
draws each hyperparameter independently, uniformly from a value list or from a `Uniform` range
(optionally log-uniform), with an explicit `torch.Generator`, so a seed reproduces the draws.
`grid_search` and `random_search` evaluate an objective (lower is better) at those points and return
the `Trial`s; `best_trial` picks the lowest finite score. With the same budget of n trials a grid over
d hyperparameters tries only n^(1/d) distinct values of each, while random search tries n distinct
values of every continuous one: when one hyperparameter matters much more than the others, random
search explores it far better (Bergstra & Bengio 2012, section 2 and figure 1).

`log_spaced` gives learning rates evenly spaced in log scale; `lr_sweep` trains once per rate and
returns the losses (a diverged run keeps its infinite or NaN loss and is never the best).

`EarlyStopping` watches a validation loss: a step improves if the loss is below the best so far by
more than ``min_delta``; after ``patience`` steps without improvement it says stop, and it can restore
the model's weights from the best step.

`make_optimizer` builds SGD, Adam with an L2 penalty, or AdamW from one config. Adam's
``weight_decay`` (PyTorch's `torch.optim.Adam`) adds ``weight_decay * w`` to the gradient, which Adam
then divides by its running gradient scale, so weights with large gradients are barely decayed; AdamW
shrinks every weight by ``lr * weight_decay * w`` apart from the adaptive step (Loshchilov & Hutter
2019). With plain SGD the two are the same update; with Adam they differ, and they agree when the
decay is zero.

Left out: Bayesian optimisation (TPE, Gaussian processes), successive halving and Hyperband,
population-based training, cross-validation, the one-run learning-rate range test (the rate rising
every step), muP/muTransfer, and parameter groups that exempt biases and norms from decay.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from course_lib.validation import (
    boolean,
    callable_arg,
    module,
    nonnegative_number,
    positive_int,
    positive_number,
    real,
    string,
    type_name,
)

__all__ = ["OPTIMIZERS", "EarlyStopping", "LRSweep", "Trial", "Uniform", "best_trial", "grid_points", "grid_search",
           "log_spaced", "lr_sweep", "make_optimizer", "random_points", "random_search"]

OPTIMIZERS = ("sgd", "adam_l2", "adamw")


@dataclass(frozen=True)
class Uniform:
    """A continuous range for random search: uniform in [low, high], or log-uniform with ``log=True``."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        low, high = real(self.low, "low"), real(self.high, "high")
        boolean(self.log, "log")
        if not low < high:
            raise ValueError(f"high must be greater than low, got low={self.low!r}, high={self.high!r}")
        if self.log and low <= 0:
            raise ValueError(f"low must be > 0 for a log-uniform range, got {self.low!r}")

    def draw(self, generator: torch.Generator) -> float:
        """One value, from one uniform draw of ``generator``."""
        u = torch.rand((), generator=generator, dtype=torch.float64).item()
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


class Trial(NamedTuple):
    """One evaluated point of a search: the hyperparameters and the objective's score (lower is better)."""

    params: dict[str, Any]
    score: float


def _space(space: object, name: str = "space", ranges: bool = False) -> dict[str, Sequence | Uniform]:
    """The search space checked: a non-empty mapping of names to non-empty value lists (or ranges)."""
    if not isinstance(space, Mapping):
        raise TypeError(f"{name} must be a mapping of names to values, got {type_name(space)}")
    if not space:
        raise ValueError(f"{name} must name at least one hyperparameter, got {dict(space)!r}")
    for key, values in space.items():
        string(key, f"a name of {name}", nonempty=True)
        if ranges and isinstance(values, Uniform):
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            kinds = "a sequence of values or a Uniform range" if ranges else "a sequence of values"
            raise TypeError(f"{name}[{key!r}] must be {kinds}, got {type_name(values)}")
        if not values:
            raise ValueError(f"{name}[{key!r}] must hold at least one value, got {values!r}")
    return dict(space)


def grid_points(space: Mapping[str, Sequence]) -> list[dict[str, Any]]:
    """Every combination of the space's values, the last name varying fastest."""
    space = _space(space)
    return [dict(zip(space, values)) for values in itertools.product(*space.values())]


def random_points(space: Mapping[str, Sequence | Uniform], trials: int,
                  generator: torch.Generator) -> list[dict[str, Any]]:
    """``trials`` points, each hyperparameter drawn independently: uniformly from a list, or from a range."""
    space = _space(space, ranges=True)
    trials = positive_int(trials, "trials")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type_name(generator)}")
    points = []
    for _ in range(trials):
        point = {}
        for key, values in space.items():
            if isinstance(values, Uniform):
                point[key] = values.draw(generator)
            else:
                point[key] = values[int(torch.randint(len(values), (), generator=generator))]
        points.append(point)
    return points


def _score(value: object, name: str) -> float:
    """value as a float, NaN and infinities allowed (a diverged run); TypeError for a non-number."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and value.is_floating_point():
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return value
    return real(value, name, finite=False)


def _evaluate(objective: Callable[..., float], points: Iterable[dict[str, Any]]) -> list[Trial]:
    objective = callable_arg(objective, "objective", "a function of the hyperparameters returning a float")
    return [Trial(point, _score(objective(**point), "the objective's score")) for point in points]


def grid_search(objective: Callable[..., float], space: Mapping[str, Sequence]) -> list[Trial]:
    """``objective(**point)`` at every point of the grid (`grid_points`), in grid order."""
    return _evaluate(objective, grid_points(space))


def random_search(objective: Callable[..., float], space: Mapping[str, Sequence | Uniform], trials: int,
                  generator: torch.Generator) -> list[Trial]:
    """``objective(**point)`` at ``trials`` random points (`random_points`), in the order drawn."""
    return _evaluate(objective, random_points(space, trials, generator))


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The trial with the lowest finite score (the first of equal ones)."""
    finite = [t for t in trials if isinstance(t, Trial) and math.isfinite(t.score)]
    if not finite:
        raise ValueError(f"trials must hold at least one Trial with a finite score, got {list(trials)!r:.100}")
    return min(finite, key=lambda t: t.score)


def log_spaced(low: float, high: float, n: int) -> list[float]:
    """``n`` values from ``low`` to ``high`` (both included), evenly spaced in log scale."""
    low, high, n = positive_number(low, "low"), positive_number(high, "high"), positive_int(n, "n")
    if not low < high:
        raise ValueError(f"high must be greater than low, got low={low!r}, high={high!r}")
    if n < 2:
        raise ValueError(f"n must be >= 2 to include both ends, got {n}")
    return [low * (high / low) ** (i / (n - 1)) for i in range(n - 1)] + [high]


class LRSweep(NamedTuple):
    """The learning rates tried and the loss each one reached (infinite or NaN where training diverged)."""

    lrs: list[float]
    losses: list[float]

    @property
    def best_lr(self) -> float:
        """The learning rate with the lowest finite loss."""
        return best_trial([Trial({"lr": lr}, loss) for lr, loss in zip(self.lrs, self.losses)]).params["lr"]


def lr_sweep(train: Callable[[float], float], low: float, high: float, n: int) -> LRSweep:
    """Call ``train(lr)`` (a fresh run, returning its final loss) at ``n`` log-spaced rates from low to high."""
    train = callable_arg(train, "train", "a function of the learning rate returning a loss")
    lrs = log_spaced(low, high, n)
    return LRSweep(lrs, [_score(train(lr), "the loss train returned") for lr in lrs])


class EarlyStopping:
    """Stop when the validation loss has not improved by more than ``min_delta`` for ``patience`` steps.

    Call `step` once per evaluation, steps counted from 0. It returns True once training should
    stop. Passing the model to `step` keeps a copy of its weights at the best step, which `restore`
    loads back. A NaN loss never improves.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = positive_int(patience, "patience")
        self.min_delta = nonnegative_number(min_delta, "min_delta")
        self.best_loss = math.inf
        self.best_step: int | None = None
        self.stopped_step: int | None = None  # the step at which `step` first returned True
        self.steps = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    @property
    def should_stop(self) -> bool:
        """Whether patience has run out."""
        return self.stopped_step is not None

    def step(self, loss: float, model: torch.nn.Module | None = None) -> bool:
        """Record this step's validation ``loss`` (and ``model``'s weights if it is the best); True = stop."""
        loss = _score(loss, "loss")
        if model is not None:
            module(model, "model")
        current, self.steps = self.steps, self.steps + 1
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step = loss, current
            if model is not None:
                self._best_state = copy.deepcopy(model.state_dict())
        else:
            since_best = current - (-1 if self.best_step is None else self.best_step)
            if self.stopped_step is None and since_best >= self.patience:
                self.stopped_step = current
        return self.should_stop

    def restore(self, model: torch.nn.Module) -> int:
        """Load the weights kept at the best step into ``model``; returns that step."""
        module(model, "model")
        if self._best_state is None:
            raise ValueError("no weights were kept: pass the model to step() to keep the best step's weights")
        model.load_state_dict(self._best_state)
        return self.best_step


def make_optimizer(params: Iterable[torch.nn.Parameter], kind: str, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.Optimizer:
    """SGD, Adam with an L2 penalty (coupled) or AdamW (decoupled decay), from one config.

    ``"sgd"``: `torch.optim.SGD` with ``weight_decay`` (L2 and decoupled decay are one update there).
    ``"adam_l2"``: `torch.optim.Adam`, whose ``weight_decay`` adds ``weight_decay * w`` to the gradient
    before the adaptive scaling. ``"adamw"``: `torch.optim.AdamW`, which multiplies ``w`` by
    ``1 - lr * weight_decay`` and then takes Adam's step on the loss gradient alone.
    """
    kind = string(kind, "kind")
    if kind not in OPTIMIZERS:
        raise ValueError(f"kind must be one of {OPTIMIZERS}, got {kind!r}")
    lr, weight_decay = positive_number(lr, "lr"), nonnegative_number(weight_decay, "weight_decay")
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    adam = torch.optim.Adam if kind == "adam_l2" else torch.optim.AdamW
    return adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
