"""Tests for course_lib.continual: the Fisher of logistic regression by hand, the EWC penalty's
zero and quadratic growth, and reservoir sampling's equal keep probabilities."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.continual import ReplayBuffer, diagonal_fisher, ewc_penalty


def logistic_data(n: int = 12, d: int = 3, seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
        model.bias.fill_(0.3)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(2, (n,), generator=g).double()
    return model, x, y


def logistic_nll(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y, reduction="none")  # (n,)


def test_fisher_of_logistic_regression_by_hand():
    model, x, y = logistic_data()
    fisher = diagonal_fisher(model, [(x, y)], logistic_nll)
    # d(-log p(y | x)) / dw = (sigmoid(w.x + b) - y) x and / db = sigmoid(w.x + b) - y, per example.
    residual = torch.sigmoid(x @ model.weight[0] + model.bias) - y  # (n,)
    torch.testing.assert_close(fisher["weight"], ((residual[:, None] * x) ** 2).mean(0, keepdim=True))
    torch.testing.assert_close(fisher["bias"], (residual**2).mean(0, keepdim=True))
    assert set(fisher) == {"weight", "bias"} and all(bool((f >= 0).all()) for f in fisher.values())


def test_fisher_is_per_example_so_batching_does_not_matter():
    model, x, y = logistic_data()
    whole = diagonal_fisher(model, [(x, y)], logistic_nll)
    split = diagonal_fisher(model, [(x[:5], y[:5]), (x[5:], y[5:])], logistic_nll)
    one_by_one = diagonal_fisher(model, [(x[i:i + 1], y[i:i + 1]) for i in range(len(x))],
                                 lambda m, b: logistic_nll(m, b).sum())  # 0-d loss: one example
    for name in whole:
        torch.testing.assert_close(split[name], whole[name])
        torch.testing.assert_close(one_by_one[name], whole[name])
    squared_batch_gradient = torch.autograd.grad(logistic_nll(model, (x, y)).mean(), model.weight)[0] ** 2
    assert not torch.allclose(squared_batch_gradient, whole["weight"])  # not the same quantity


def test_fisher_skips_frozen_parameters_and_leaves_grads_alone():
    model, x, y = logistic_data()
    model.bias.requires_grad_(False)
    fisher = diagonal_fisher(model, [(x, y)], logistic_nll)
    assert set(fisher) == {"weight"} and model.weight.grad is None


def test_fisher_of_an_unused_parameter_is_zero():
    model = nn.ModuleDict({"used": nn.Linear(2, 1), "unused": nn.Linear(2, 1)})
    fisher = diagonal_fisher(model, [torch.randn(4, 2)], lambda m, x: m["used"](x).squeeze(-1) ** 2)
    assert torch.equal(fisher["unused.weight"], torch.zeros(1, 2)) and fisher["used.weight"].sum() > 0


def anchored_model() -> tuple[nn.Linear, dict, dict]:
    model, x, y = logistic_data()
    fisher = diagonal_fisher(model, [(x, y)], logistic_nll)
    anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    return model, fisher, anchor


def test_penalty_is_zero_at_the_anchor_and_quadratic_around_it():
    model, fisher, anchor = anchored_model()
    assert ewc_penalty(model, fisher, anchor, strength=100.0).item() == 0.0
    step = {name: torch.randn_like(p) for name, p in anchor.items()}
    values = []
    for t in (1.0, 2.0, -3.0):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(anchor[name] + t * step[name])
        values.append(ewc_penalty(model, fisher, anchor, strength=10.0))
    torch.testing.assert_close(values[1], 4 * values[0])
    torch.testing.assert_close(values[2], 9 * values[0])
    by_hand = 10.0 / 2 * sum((fisher[n] * step[n] ** 2).sum() for n in fisher)
    torch.testing.assert_close(values[0], by_hand)


def test_penalty_gradient_pulls_towards_the_anchor():
    model, fisher, anchor = anchored_model()
    with torch.no_grad():
        model.weight.add_(0.5)
    ewc_penalty(model, fisher, anchor, strength=3.0).backward()
    torch.testing.assert_close(model.weight.grad, 3.0 * fisher["weight"] * 0.5)
    torch.testing.assert_close(model.bias.grad, torch.zeros(1, dtype=torch.float64))


def test_penalty_counts_only_the_parameters_fisher_names():
    model, fisher, anchor = anchored_model()
    with torch.no_grad():
        model.bias.add_(1.0)
    assert ewc_penalty(model, {"weight": fisher["weight"]}, anchor, 5.0).item() == 0.0
    assert ewc_penalty(model, fisher, anchor, 5.0).item() > 0.0


@pytest.mark.parametrize("change, error, match", [
    (lambda f, a: ({**f, "scale": f["bias"]}, a), ValueError, "fisher names 'scale', which is not a parameter"),
    (lambda f, a: (f, {"weight": a["weight"]}), ValueError, "anchor_params has no entry for 'bias'"),
    (lambda f, a: ({**f, "weight": torch.ones(3)}, a), ValueError,
     r"fisher\['weight'\] must have the parameter's shape \(1, 3\), got \(3,\)"),
    (lambda f, a: (f, {**a, "bias": torch.ones(2)}), ValueError, r"anchor_params\['bias'\]"),
    (lambda f, a: ({}, a), ValueError, "fisher must name at least one parameter"),
    (lambda f, a: (f, [1, 2]), TypeError, "anchor_params must be a mapping"),
    (lambda f, a: ({**f, "bias": 0.5}, a), TypeError, r"fisher\['bias'\] must be a torch.Tensor"),
])
def test_penalty_bad_input_is_named(change, error, match):
    model, fisher, anchor = anchored_model()
    fisher, anchor = change(fisher, anchor)
    with pytest.raises(error, match=match):
        ewc_penalty(model, fisher, anchor, 1.0)


def test_penalty_bad_strength_and_model():
    model, fisher, anchor = anchored_model()
    with pytest.raises(ValueError, match="strength must be in"):
        ewc_penalty(model, fisher, anchor, -1.0)
    with pytest.raises(TypeError, match="strength"):
        ewc_penalty(model, fisher, anchor, "1")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ewc_penalty("model", fisher, anchor, 1.0)


def test_fisher_bad_input_is_named():
    model, x, y = logistic_data()
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        diagonal_fisher(model, [(x, y)], "nll")
    with pytest.raises(TypeError, match="batches must be an iterable"):
        diagonal_fisher(model, 3, logistic_nll)
    with pytest.raises(ValueError, match="at least one example"):
        diagonal_fisher(model, [], logistic_nll)
    with pytest.raises(TypeError, match=r"loss_fn\(model, batch\) must be a torch.Tensor"):
        diagonal_fisher(model, [(x, y)], lambda m, b: 1.0)
    with pytest.raises(TypeError, match="model must be"):
        diagonal_fisher(None, [(x, y)], logistic_nll)


def test_reservoir_keeps_every_item_with_equal_probability():
    capacity, stream, runs = 5, 50, 2000
    generator = torch.Generator().manual_seed(0)
    kept = torch.zeros(stream)
    for _ in range(runs):
        buffer = ReplayBuffer(capacity, generator)
        for item in range(stream):
            buffer.add(item)
        kept[buffer.items] += 1
    p = capacity / stream  # 0.1
    expected, sd = runs * p, (runs * p * (1 - p)) ** 0.5  # 200 and about 13.4 per item
    assert kept.sum() == capacity * runs
    assert (kept - expected).abs().max() < 6 * sd, kept  # also fails if early or late items are favoured
    for group in (kept[:capacity], kept[-capacity:]):  # the items kept at first, the latest ones
        assert abs(group.mean() - expected) < 4 * sd / capacity**0.5, group


def test_reservoir_keeps_everything_until_full_and_counts_what_it_saw():
    buffer = ReplayBuffer(4, torch.Generator().manual_seed(1))
    for item in "abc":
        buffer.add(item)
    assert buffer.items == ["a", "b", "c"] and len(buffer) == 3 and buffer.seen == 3
    for item in "defgh":
        buffer.add(item)
    assert len(buffer) == 4 and buffer.seen == 8 and set(buffer.items) <= set("abcdefgh")


def test_same_seed_same_buffer_and_samples():
    def run(seed: int) -> tuple[list, list]:
        buffer = ReplayBuffer(8, torch.Generator().manual_seed(seed))
        for item in range(100):
            buffer.add(item)
        return buffer.items, buffer.sample(5)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_sample_draws_distinct_items_from_the_buffer():
    buffer = ReplayBuffer(6, torch.Generator().manual_seed(0))
    for item in range(30):
        buffer.add(item)
    drawn = buffer.sample(6)
    assert sorted(drawn) == sorted(buffer.items)
    with pytest.raises(ValueError, match="n must be at most the 6 items in the buffer, got 7"):
        buffer.sample(7)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        buffer.sample(0)
    with pytest.raises(ValueError, match="at most the 0 items"):
        ReplayBuffer(3, torch.Generator()).sample(1)


@pytest.mark.parametrize("capacity, generator, error, match", [
    (0, torch.Generator(), ValueError, "capacity must be a positive integer, got 0"),
    (2.0, torch.Generator(), TypeError, "capacity"),
    (3, 7, TypeError, "generator must be a torch.Generator, got int"),
])
def test_replay_buffer_bad_arguments(capacity, generator, error, match):
    with pytest.raises(error, match=match):
        ReplayBuffer(capacity, generator)
