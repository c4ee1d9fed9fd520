"""Continual learning: keeping an old task while training on a new one, by anchoring weights or
replaying old examples.

- `diagonal_fisher`: how much the log-likelihood of task A depends on each parameter, the diagonal
  of the Fisher information, ``F_i = mean over examples of (d log p(y | x) / d theta_i)^2``.
- `ewc_penalty`: elastic weight consolidation (Kirkpatrick et al. 2017, equation 3): train task B on
  ``L_B(theta) + sum_i (lambda / 2) F_i (theta_i - theta*_i)^2``, where theta* are the weights
  after task A. A parameter that task A's likelihood is sensitive to (large F_i) is held near its
  old value; the others are free to move. The penalty is a quadratic (Laplace) approximation of
  task A's log-posterior around theta*, with a diagonal Fisher as its curvature.
- `ReplayBuffer`: a fixed-size sample of every example seen so far (reservoir sampling, Vitter's
  Algorithm R), mixed into the new task's batches so the old data keeps contributing gradients.

Empirical vs true Fisher. The true Fisher takes the expectation over labels drawn from the model,
``E_x E_{y ~ p_theta(y | x)} [(d log p_theta(y | x) / d theta)^2]``; the *empirical* Fisher, computed
here, uses the observed labels y instead. It costs one backward pass per example and no sampling,
and it is what many EWC implementations compute, but it is a different matrix: the two agree when
the model's predictive distribution matches the data's, and can differ a lot away from that
(Kunstner et al. 2019). At a well-fitted optimum of task A, where EWC computes it, they are close.

Left out: the true Fisher (sampling labels from the model), online EWC and other ways to combine
several tasks' penalties (Schwarz et al. 2018; Huszar 2018), other importance measures (synaptic
intelligence, MAS), KL anchoring to a reference model, and prioritised or class-balanced replay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from course_lib.validation import (
    callable_arg,
    float_tensor,
    module,
    number_in_range,
    positive_int,
    tensor,
    type_name,
)

__all__ = ["ReplayBuffer", "diagonal_fisher", "ewc_penalty"]


def _check_model(model: Any) -> nn.Module:
    module(model, "model")
    return model


def diagonal_fisher(model: nn.Module, batches: Iterable[Any],
                    loss_fn: Callable[[nn.Module, Any], Tensor]) -> dict[str, Tensor]:
    """Empirical diagonal Fisher information of ``model``'s trainable parameters: ``{name: F}``.

    ``loss_fn(model, batch)`` returns the negative log-likelihood of each example in the batch
    (any shape; every element is one example, so a 0-d loss is a batch of one). F has each
    parameter's shape: the mean over all examples of all batches of the squared gradient of that
    example's log-likelihood, so it does not depend on how the examples are split into batches.
    The model's mode is left as it is (call ``model.eval()`` first to switch dropout off) and no
    ``.grad`` is touched.
    """
    _check_model(model)
    callable_arg(loss_fn, "loss_fn", "callable as loss_fn(model, batch)")
    if not isinstance(batches, Iterable):
        raise TypeError(f"batches must be an iterable of batches, got {type_name(batches)}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    totals = [torch.zeros_like(p) for p in params]
    n_examples = 0
    for batch in batches:
        nll = float_tensor(loss_fn(model, batch), "loss_fn(model, batch)").reshape(-1)  # (n,)
        for i in range(len(nll)):  # one backward pass per example: squares of per-example gradients
            grads = torch.autograd.grad(nll[i], params, retain_graph=i + 1 < len(nll), allow_unused=True)
            for total, grad in zip(totals, grads):
                if grad is not None:
                    total += grad.detach() ** 2
        n_examples += len(nll)
    if n_examples == 0:
        raise ValueError("batches must yield at least one example, got none")
    return {name: total / n_examples for (name, _), total in zip(named, totals)}


def ewc_penalty(model: nn.Module, fisher: Mapping[str, Tensor], anchor_params: Mapping[str, Tensor],
                strength: float) -> Tensor:
    """EWC penalty ``strength / 2 * sum_i F_i (theta_i - theta*_i)^2`` (Kirkpatrick et al. 2017, eq. 3).

    fisher: ``{name: F}`` as `diagonal_fisher` returns; anchor_params: ``{name: theta*}``, the
    weights after the old task (e.g. ``{n: p.detach().clone() for n, p in
    model.named_parameters()}``). The sum runs over the parameters named in fisher. Returns a 0-d
    tensor that carries the gradient ``strength * F * (theta - theta*)`` to the model.
    """
    params = _check_named(model, fisher, anchor_params)
    strength = number_in_range(strength, "strength", 0.0, math.inf, high_open=True)
    terms = [(fisher[n] * (params[n] - anchor_params[n]) ** 2).sum() for n in fisher]  # one per tensor
    return strength / 2 * torch.stack(terms).sum()


def _check_named(model: nn.Module, fisher: Mapping[str, Tensor],
                 anchor_params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """model's parameters by name, after checking that fisher and anchor_params match them."""
    params = dict(_check_model(model).named_parameters())
    for what, mapping in (("fisher", fisher), ("anchor_params", anchor_params)):
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{what} must be a mapping of parameter names to tensors, got {type_name(mapping)}")
    if not fisher:
        raise ValueError("fisher must name at least one parameter, got an empty mapping")
    for name in fisher:
        if name not in params:
            raise ValueError(f"fisher names {name!r}, which is not a parameter of model")
        if name not in anchor_params:
            raise ValueError(f"anchor_params has no entry for {name!r}, which fisher names")
        shape = tuple(params[name].shape)
        for what, value in ((f"fisher[{name!r}]", fisher[name]), (f"anchor_params[{name!r}]", anchor_params[name])):
            if tuple(tensor(value, what).shape) != shape:
                raise ValueError(f"{what} must have the parameter's shape {shape}, got {tuple(value.shape)}")
    return params


class ReplayBuffer:
    """A uniform random sample of at most ``capacity`` of the items added so far (reservoir sampling).

    The first ``capacity`` items are kept. The n-th item after them (n counted from 1 over all
    items) replaces a random kept item with probability capacity / n, otherwise it is discarded
    (Vitter 1985, Algorithm R). After N items, each of them is in the buffer with the same
    probability capacity / N, whatever the order. ``generator`` (a ``torch.Generator``) makes the
    choices, so a seeded generator gives the same buffer and the same samples on every run.
    """

    def __init__(self, capacity: int, generator: torch.Generator) -> None:
        self.capacity = positive_int(capacity, "capacity")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type_name(generator)}")
        self.generator = generator
        self.items: list[Any] = []
        self.seen = 0  # items offered to add() so far

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Any) -> None:
        """Offer one item: kept if the buffer is not full, else it replaces a random item with
        probability capacity / (items seen, this one included)."""
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        slot = int(torch.randint(self.seen, (), generator=self.generator))  # uniform in [0, seen)
        if slot < self.capacity:
            self.items[slot] = item

    def sample(self, n: int) -> list[Any]:
        """n distinct items of the buffer, drawn uniformly at random without replacement."""
        n = positive_int(n, "n")
        if n > len(self.items):
            raise ValueError(f"n must be at most the {len(self.items)} items in the buffer, got {n}")
        order = torch.randperm(len(self.items), generator=self.generator)[:n]  # (n,)
        return [self.items[int(i)] for i in order]
