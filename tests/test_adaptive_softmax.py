"""Tests for course_lib.adaptive_softmax: equality with torch.nn.AdaptiveLogSoftmaxWithLoss (state
dicts both ways, log-probabilities, loss, predictions, gradients), cutoff checks, FLOP counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.adaptive_softmax import (
    AdaptiveLogSoftmax,
    adaptive_softmax_flops,
    full_softmax_flops,
    zipf_probabilities,
)
from course_lib.measure import count_flops

CONFIGS = [  # in_features, n_classes, cutoffs, div_value, head_bias
    (16, 50, [5, 20], 2.0, False),
    (32, 100, [10, 30, 60], 2.0, True),
    (24, 40, [8], 4.0, False),
]


def pair(in_features, n_classes, cutoffs, div_value, head_bias, seed=0):
    """torch's module with random weights and ours loaded from its state dict, both float64."""
    torch.manual_seed(seed)
    theirs = nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=div_value,
                                           head_bias=head_bias).double()
    ours = AdaptiveLogSoftmax(in_features, n_classes, cutoffs, div_value=div_value,
                              head_bias=head_bias).double()
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    return ours, theirs


def inputs(in_features, n_classes, n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_features, generator=g, dtype=torch.float64)
    target = torch.cat([torch.arange(n_classes), torch.randint(n_classes, (n,), generator=g)])[:n]
    return x, target  # every class appears when n >= n_classes


@pytest.mark.parametrize("config", CONFIGS)
def test_state_dicts_load_both_ways(config):
    ours, theirs = pair(*config)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    fresh = nn.AdaptiveLogSoftmaxWithLoss(*config[:3], div_value=config[3], head_bias=config[4]).double()
    fresh.load_state_dict(ours.state_dict())
    for a, b in zip(fresh.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    assert ours.cutoffs == theirs.cutoffs and ours.shortlist_size == theirs.shortlist_size
    assert ours.n_clusters == theirs.n_clusters


@pytest.mark.parametrize("config", CONFIGS)
def test_log_prob_forward_and_predict_equal_torch(config):
    ours, theirs = pair(*config)
    x, target = inputs(config[0], config[1], n=max(64, config[1]))
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x), rtol=0, atol=1e-12)
    got, expected = ours(x, target), theirs(x, target)
    torch.testing.assert_close(got.output, expected.output, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=1e-12)
    assert got.output.shape == target.shape and got.loss.shape == ()
    assert torch.equal(ours.predict(x), theirs.predict(x))


@pytest.mark.parametrize("config", CONFIGS)
def test_gradients_equal_torch(config):
    ours, theirs = pair(*config)
    x, target = inputs(config[0], config[1], n=max(64, config[1]))
    ours(x, target).loss.backward()
    theirs(x, target).loss.backward()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-12, msg=name)


def test_a_batch_without_targets_in_some_cluster_equals_torch():
    ours, theirs = pair(*CONFIGS[1])
    x, _ = inputs(32, 100, n=6)
    target = torch.tensor([0, 3, 9, 65, 70, 99])  # head and the last cluster only
    torch.testing.assert_close(ours(x, target).loss, theirs(x, target).loss, rtol=0, atol=1e-12)


def test_single_example_and_extra_leading_dimensions():
    ours, theirs = pair(*CONFIGS[0])
    x, target = inputs(16, 50, n=12)
    single = ours(x[3], target[3])
    assert single.output.shape == ()
    torch.testing.assert_close(single.output, theirs(x[3], target[3]).output)
    batched = ours(x.reshape(3, 4, 16), target.reshape(3, 4))
    assert batched.output.shape == (3, 4)
    torch.testing.assert_close(batched.output.reshape(-1), ours(x, target).output)
    assert ours.log_prob(x.reshape(3, 4, 16)).shape == (3, 4, 50)
    assert torch.equal(ours.predict(x.reshape(3, 4, 16)).reshape(-1), ours.predict(x))


def test_full_distribution_is_normalised_and_forward_picks_from_it():
    ours, _ = pair(*CONFIGS[1])
    x, target = inputs(32, 100, n=100)
    log_probs = ours.log_prob(x)  # (100, 100)
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(100, dtype=torch.float64))
    torch.testing.assert_close(ours(x, target).output, log_probs.gather(1, target[:, None]).squeeze(1))


def test_predict_equals_argmax_when_a_cluster_wins_the_head():
    ours, theirs = pair(*CONFIGS[1])
    with torch.no_grad():  # make the head's cluster entries win for about half the rows
        ours.head.weight[10:] *= 6.0
    theirs.load_state_dict(ours.state_dict())
    x, _ = inputs(32, 100, n=200)
    head_best = ours.head(x).argmax(-1)
    assert (head_best >= 10).any() and (head_best < 10).any()  # both paths of predict run
    assert torch.equal(ours.predict(x), ours.log_prob(x).argmax(-1))
    assert torch.equal(ours.predict(x), theirs.predict(x))


@pytest.mark.parametrize("cutoffs, error, match", [
    ([], ValueError, "at least one cutoff"),
    ([20, 5], ValueError, r"strictly increasing, got \[20, 5\]"),
    ([5, 5], ValueError, "strictly increasing"),
    ([0, 10], ValueError, r"\[1, n_classes - 1\] = \[1, 49\], got \[0, 10\]"),
    ([10, 50], ValueError, r"\[1, 49\]"),
    ([5, 2.5], TypeError, r"cutoffs\[1\] must be an integer"),
    ("ab", TypeError, "cutoffs must be a sequence"),
    (5, TypeError, "cutoffs must be a sequence of integers, got int"),
])
def test_bad_cutoffs_are_named(cutoffs, error, match):
    with pytest.raises(error, match=match):
        AdaptiveLogSoftmax(16, 50, cutoffs)
    with pytest.raises(error, match=match):
        adaptive_softmax_flops(16, cutoffs, torch.ones(50))


def test_numpy_cutoffs_and_sizes_are_accepted():
    layer = AdaptiveLogSoftmax(np.int64(16), np.int64(50), np.array([5, 20]), div_value=2)
    assert layer.cutoffs == [5, 20, 50] and all(type(c) is int for c in layer.cutoffs)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"div_value": 0.0}, ValueError, "div_value must be positive"),
    ({"div_value": 8.0}, ValueError, r"div_value = 8 give \[2, 0\]"),  # 16 // 64 = 0 dimensions
    ({"head_bias": 1}, TypeError, "head_bias must be a bool"),
    ({"in_features": 0}, ValueError, "in_features"),
    ({"n_classes": 2.0}, TypeError, "n_classes"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    args = {"in_features": 16, "n_classes": 50, "cutoffs": [5, 20]} | kwargs
    with pytest.raises(error, match=match):
        AdaptiveLogSoftmax(**args)


def test_bad_inputs_are_named():
    layer = AdaptiveLogSoftmax(16, 50, [5, 20])
    x = torch.randn(4, 16)
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 49\], got values in \[0, 50\]"):
        layer(x, torch.tensor([0, 1, 2, 50]))
    with pytest.raises(ValueError, match="target must hold classes"):
        layer(x, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(TypeError, match="target must be an integer tensor"):
        layer(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"target must have shape x.shape\[:-1\] = \(4,\)"):
        layer(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in_features = 16\), got \(4, 15\)"):
        layer.log_prob(torch.randn(4, 15))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        layer.predict(torch.ones(4, 16, dtype=torch.long))


def test_flops_by_hand_and_measured():
    # d = 8, shortlist {0, 1}, cluster 1 = {2, 3} through 8 // 2 = 4 dims, cluster 2 = {4, 5, 6}
    # through 8 // 4 = 2 dims. Target counts: 6 of 10 in the head, 2 in each cluster.
    counts = torch.tensor([4, 2, 1, 1, 1, 0, 1])
    head = 2 * 8 * (2 + 2)  # 64
    cluster_1 = 2 * 8 * 4 + 2 * 4 * 2  # 80
    cluster_2 = 2 * 8 * 2 + 2 * 2 * 3  # 44
    expected = head + 0.2 * cluster_1 + 0.2 * cluster_2  # 88.8
    assert adaptive_softmax_flops(8, [2, 4], counts, div_value=2.0) == pytest.approx(expected)
    assert full_softmax_flops(8, 7) == 112
    layer = AdaptiveLogSoftmax(8, 7, [2, 4], div_value=2.0)
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 3, 4, 6])  # exactly the counts
    with torch.no_grad():
        measured = count_flops(lambda: layer(torch.randn(10, 8), target))
    assert measured == pytest.approx(10 * expected)


def test_flops_on_a_zipf_vocabulary_are_a_fraction_of_the_full_softmax():
    probs = zipf_probabilities(50_000)
    ratio = adaptive_softmax_flops(512, [2000, 10_000], probs) / full_softmax_flops(512, 50_000)
    assert 0.03 < ratio < 0.1
    uniform = adaptive_softmax_flops(512, [2000, 10_000], torch.ones(50_000))
    assert uniform > adaptive_softmax_flops(512, [2000, 10_000], probs)  # skew is what pays


def test_zipf_probabilities():
    p = zipf_probabilities(1000, exponent=1.2)
    assert p.dtype == torch.float64 and p.shape == (1000,)
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert math.isclose(float(p[0] / p[1]), 2 ** 1.2) and bool((p[:-1] > p[1:]).all())
    torch.testing.assert_close(zipf_probabilities(4, exponent=0), torch.full((4,), 0.25, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_classes"):
        zipf_probabilities(0)
    with pytest.raises(ValueError, match="exponent"):
        zipf_probabilities(10, exponent=float("nan"))


@pytest.mark.parametrize("probs, match", [
    (torch.tensor([0.5, -0.1, 0.6]), "non-negative"),
    (torch.zeros(3), "positive sum"),
    (torch.tensor([1.0, float("nan"), 0.0]), "finite"),
])
def test_bad_class_probs_are_named(probs, match):
    with pytest.raises(ValueError, match=match):
        adaptive_softmax_flops(8, [1], probs)
    with pytest.raises(ValueError, match="class_probs must have 1 dimensions"):
        adaptive_softmax_flops(8, [1], torch.ones(2, 3))
