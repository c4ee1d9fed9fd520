"""Tests for course_lib.moe: routing, the layer against a per-token loop, capacity, the balancing
loss against its written-out definition, and parameter counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.measure import count_flops
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.moe import (
    MoEFeedForward,
    MoEGPT,
    MoEGPTConfig,
    MoELayer,
    expert_capacity,
    load_balancing_loss,
    parameter_counts,
    top_k_routing,
)
from course_lib.transformer import MLP


def layer_and_input(top_k: int, shape: tuple[int, ...], n_experts: int = 4, seed: int = 0,
                    **kwargs) -> tuple[MoELayer, torch.Tensor]:
    torch.manual_seed(seed)
    layer = MoELayer(shape[-1], 12, n_experts, top_k=top_k, **kwargs).double()
    return layer, torch.randn(*shape, dtype=torch.float64)


def loop_over_tokens(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    """The definition, one token at a time: softmax over all experts, keep the top k, renormalise."""
    rows = []
    for token in x.reshape(-1, layer.d_model):  # (D,)
        probs = torch.softmax(layer.router(token), dim=-1)  # (E,)
        top = probs.topk(layer.top_k)
        gates = top.values / top.values.sum()  # (k,)
        rows.append(sum(g * layer.experts[int(e)](token) for g, e in zip(gates, top.indices)))
    return torch.stack(rows).reshape(x.shape)


def test_one_expert_is_a_plain_mlp():
    layer, x = layer_and_input(1, (2, 5, 8), n_experts=1)
    mlp = MLP(8, 12).double()
    mlp.load_state_dict(layer.experts[0].state_dict())
    assert torch.equal(layer(x)[0], mlp(x))


@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("shape", [(3, 5, 8), (7, 8)])
def test_output_equals_a_loop_over_tokens(top_k, shape):
    layer, x = layer_and_input(top_k, shape)
    output, router_logits = layer(x)
    assert output.shape == x.shape and router_logits.shape == (math.prod(shape[:-1]), 4)
    torch.testing.assert_close(output, loop_over_tokens(layer, x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(router_logits, x.reshape(-1, 8) @ layer.router.weight.T)
    assert layer.last_dropped == 0


def test_gates_sum_to_one_and_experts_are_the_largest_logits():
    logits = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, 0.0, 3.5, -2.0]])
    gates, experts = top_k_routing(logits, 2)
    assert experts.tolist() == [[1, 3], [2, 0]]
    torch.testing.assert_close(gates.sum(-1), torch.ones(2))
    torch.testing.assert_close(gates[0], torch.softmax(torch.tensor([2.0, 0.5]), -1))


def test_gradients_reach_the_router_and_the_experts_as_in_the_loop():
    layer, x = layer_and_input(2, (4, 6, 8))
    weights = torch.randn(4, 6, 8, dtype=torch.float64)  # a loss that weighs every output differently
    grads = []
    for forward in (lambda: layer(x)[0], lambda: loop_over_tokens(layer, x)):
        layer.zero_grad()
        (forward() * weights).sum().backward()
        grads.append([p.grad.clone() for p in layer.parameters()])
    assert layer.router.weight.grad.abs().sum() > 0
    for ours, reference in zip(*grads):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_with_top_1_the_router_learns_only_from_the_balancing_loss():
    layer, x = layer_and_input(1, (16, 8))
    output, router_logits = layer(x)
    output.sum().backward(retain_graph=True)  # renormalised top-1 gates are exactly 1: no gradient to the router
    assert torch.equal(layer.router.weight.grad, torch.zeros_like(layer.router.weight))
    load_balancing_loss(router_logits).backward()
    assert layer.router.weight.grad.abs().sum() > 0


def test_an_empty_batch_gives_an_empty_output():
    layer, x = layer_and_input(2, (0, 8), capacity_factor=1.0)
    output, router_logits = layer(x)
    assert output.shape == (0, 8) and router_logits.shape == (0, 4) and layer.last_dropped == 0


def test_capacity_formula():
    assert expert_capacity(10, 4, 2, 1.25) == 7  # ceil(6.25)
    assert expert_capacity(8, 4, 1, 1.0) == 2  # balanced routing fills each expert exactly
    assert expert_capacity(3, 8, 1, 0.1) == 1  # ceil never gives 0 for a positive factor


def routed_by_hand(logits: list[list[float]], top_k: int, capacity_factor: float) -> MoELayer:
    """A layer with d_model = n_experts and the identity as router, so x's rows are the logits."""
    n_experts = len(logits[0])
    torch.manual_seed(0)
    layer = MoELayer(n_experts, 5, n_experts, top_k=top_k, capacity_factor=capacity_factor).double()
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(n_experts))
    return layer


def test_capacity_drops_first_choices_last_and_counts_exactly():
    # 4 tokens, 3 experts, top-2, capacity ceil(0.75 * 4 * 2 / 3) = 2 per expert.
    logits = [[2.0, 3.0, 0.0],   # token 0: expert 1, then 0
              [3.0, 2.0, 0.0],   # token 1: expert 0, then 1
              [3.0, 0.0, 2.0],   # token 2: expert 0, then 2
              [3.0, 2.0, 0.0]]   # token 3: expert 0, then 1
    # First choices queue first: expert 0 takes tokens 1, 2 and drops token 3; expert 1 takes 0.
    # Second choices: expert 0 is full (drops token 0); expert 1 takes token 1 and is full
    # (drops token 3); expert 2 takes token 2. Three assignments dropped; token 3 lost both.
    layer = routed_by_hand(logits, top_k=2, capacity_factor=0.75)
    x = torch.tensor(logits, dtype=torch.float64)
    output, _ = layer(x)
    assert layer.last_dropped == 3
    kept = {0: [1], 1: [0, 1], 2: [0, 2], 3: []}  # token -> experts that processed it
    gates, experts = top_k_routing(x, 2)
    for token, served in kept.items():
        expected = sum((g * layer.experts[int(e)](x[token])
                        for g, e in zip(gates[token], experts[token]) if int(e) in served),
                       torch.zeros(3, dtype=torch.float64))
        torch.testing.assert_close(output[token], expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(output[3], torch.zeros(3, dtype=torch.float64))
    layer.capacity_factor = 1.5  # capacity 4: nothing dropped, and the count is for this forward only
    layer(x)
    assert layer.last_dropped == 0


def test_capacity_of_top_1_drops_later_tokens_and_no_capacity_drops_nothing():
    logits = [[1.0, 0.0]] * 5 + [[0.0, 1.0]]  # 5 tokens want expert 0, capacity ceil(6 / 2) = 3
    x = torch.tensor(logits, dtype=torch.float64)
    layer = routed_by_hand(logits, top_k=1, capacity_factor=1.0)
    output, _ = layer(x)
    assert layer.last_dropped == 2
    assert (output[3:5] == 0).all() and (output[:3] != 0).any(dim=1).all() and (output[5] != 0).any()
    layer.capacity_factor = None
    output, _ = layer(x)
    assert layer.last_dropped == 0 and (output != 0).any(dim=1).all()


def test_balancing_loss_is_1_for_balanced_and_n_experts_for_collapsed_routing():
    n = 4
    balanced = 5.0 * torch.eye(n).repeat(3, 1)  # (12, 4): each expert first for 3 tokens
    torch.testing.assert_close(load_balancing_loss(balanced), torch.tensor(1.0))
    collapsed = torch.zeros(12, n)
    collapsed[:, 2] = 100.0  # every token to expert 2 with probability 1 (to float32 precision)
    torch.testing.assert_close(load_balancing_loss(collapsed), torch.tensor(float(n)))
    two_each = torch.tensor([[5.0, 5.0, 0.0, 0.0], [0.0, 0.0, 5.0, 5.0]])  # top-2, balanced
    torch.testing.assert_close(load_balancing_loss(two_each, top_k=2), torch.tensor(2.0))


def hf_style_loss(router_logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """The Hugging Face Mixtral formula, with its (top_k, E) fraction per choice rank."""
    probs = torch.softmax(router_logits, dim=-1)  # (N, E)
    chosen = probs.topk(top_k, dim=-1).indices  # (N, k)
    tokens_per_expert = nn.functional.one_hot(chosen, router_logits.shape[1]).double().mean(0)  # (k, E)
    return router_logits.shape[1] * (tokens_per_expert * probs.mean(0)).sum()


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_balancing_loss_matches_the_written_out_formula(top_k):
    logits = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(top_k))
    torch.testing.assert_close(load_balancing_loss(logits, top_k), hf_style_loss(logits, top_k))


def test_balancing_loss_gradient_flows_through_the_probabilities_only():
    logits = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours, reference = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    load_balancing_loss(ours).backward()
    f = nn.functional.one_hot(logits.argmax(-1), 4).double().mean(0)  # (E,) a constant
    (4 * (f * torch.softmax(reference, -1).mean(0)).sum()).backward()
    assert ours.grad.abs().sum() > 0
    torch.testing.assert_close(ours.grad, reference.grad)


def test_parameter_counts_by_hand():
    layer = MoELayer(4, 8, n_experts=4, top_k=2)
    expert = 4 * 8 + 8 + 8 * 4 + 4  # two linear layers with biases: 76
    router = 4 * 4
    assert parameter_counts(layer) == (router + 4 * expert, router + 2 * expert)
    model = nn.Sequential(nn.Linear(4, 4), layer)  # 20 more parameters, all active
    assert parameter_counts(model) == (20 + router + 4 * expert, 20 + router + 2 * expert)
    assert parameter_counts(nn.Linear(3, 2)) == (8, 8)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_expert_flops_are_proportional_to_top_k(top_k):
    n, d, h, e = 32, 8, 12, 4
    layer, x = layer_and_input(top_k, (n, d), n_experts=e)  # experts of width 12
    router = 2 * n * d * e
    per_assignment = 2 * (2 * d * h)  # two matmuls of d x h
    assert count_flops(lambda: layer(x)) == router + top_k * n * per_assignment


@pytest.mark.parametrize("kwargs, error, match", [
    ({"top_k": 5}, ValueError, r"top_k must be an integer in \[1, 4\], got 5"),
    ({"top_k": 0}, ValueError, "top_k"),
    ({"top_k": 1.0}, TypeError, "top_k"),
    ({"capacity_factor": 0}, ValueError, "capacity_factor must be positive, got 0"),
    ({"capacity_factor": -1.0}, ValueError, "capacity_factor"),
    ({"capacity_factor": "1"}, TypeError, "capacity_factor"),
    ({"n_experts": 0}, ValueError, "n_experts"),
    ({"n_experts": True}, TypeError, "n_experts"),
    ({"d_model": 0}, ValueError, "d_model"),
    ({"d_hidden": -3}, ValueError, "d_hidden"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    args = {"d_model": 8, "d_hidden": 12, "n_experts": 4} | kwargs
    with pytest.raises(error, match=match):
        MoELayer(**args)


def test_numpy_integer_sizes_are_accepted():
    layer = MoELayer(np.int64(4), np.int32(6), np.int64(3), top_k=np.int64(2))
    assert layer.top_k == 2 and len(layer.experts) == 3


def test_bad_inputs_are_named():
    layer = MoELayer(8, 12, 4)
    with pytest.raises(ValueError, match="d_model = 8"):
        layer(torch.randn(3, 7))
    with pytest.raises(ValueError, match="x must have 2 or 3 dimensions"):
        layer(torch.randn(8))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        layer(torch.ones(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"top_k must be an integer in \[1, 3\], got 4"):
        load_balancing_loss(torch.randn(5, 3), top_k=4)
    with pytest.raises(ValueError, match="router_logits must have 2 dimensions"):
        load_balancing_loss(torch.randn(5))
    with pytest.raises(ValueError, match="at least one token"):
        load_balancing_loss(torch.randn(0, 3))
    with pytest.raises(ValueError, match="NaN"):
        load_balancing_loss(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match="model must be"):
        parameter_counts("model")
    with pytest.raises(ValueError, match="capacity_factor"):
        expert_capacity(10, 4, 2, 0.0)


# --- the MoE language model ------------------------------------------------------------------------


def small_moe_gpt(**kwargs) -> MoEGPT:
    torch.manual_seed(0)
    config = dict(vocab_size=40, context_length=12, d_model=16, n_heads=2, n_layers=2, n_experts=4, top_k=2,
                  expert_d_ff=8)
    return MoEGPT(MoEGPTConfig(**{**config, **kwargs})).double()


def test_moe_gpt_is_a_tiny_gpt_whose_mlps_are_moe_layers():
    model = small_moe_gpt()
    assert isinstance(model, TinyGPT) and len(model.moe_layers()) == 2
    assert all(isinstance(block.mlp, MoEFeedForward) for block in model.decoder.blocks)
    ids = torch.randint(40, (3, 12))
    logits = model(ids)
    assert logits.shape == (3, 12, 40)
    assert [tuple(x.shape) for x in model.router_logits()] == [(36, 4), (36, 4)]
    # the block computes x + moe(norm(x)): replace each MoE layer by the loop definition and compare
    h = model.token_embedding(ids) + model.positions(torch.arange(12))
    for block, layer in zip(model.decoder.blocks, model.moe_layers()):
        h = block.self_sub(h, lambda x, block=block: block.self_attn(x, causal=True, need_weights=False)[0])
        h = h + loop_over_tokens(layer, block.mlp_sub.norm(h))
    torch.testing.assert_close(logits, model.lm_head(model.decoder.final_norm(h)), rtol=1e-10, atol=1e-10)


def test_moe_gpt_parameters_active_equal_a_dense_twin_plus_the_routers():
    model = small_moe_gpt()
    dense = TinyGPT(TinyGPTConfig(vocab_size=40, context_length=12, d_model=16, n_heads=2, n_layers=2, d_ff=16))
    counts = parameter_counts(model)
    routers, second_output_bias = 2 * 16 * 4, 2 * 16  # per layer: a router, and two experts' output biases
    assert counts.active == dense.num_parameters() + routers + second_output_bias
    assert counts.total == counts.active + 2 * 2 * (16 * 8 + 8 + 8 * 16 + 16)  # 2 idle experts per layer


def test_moe_gpt_router_logits_carry_gradient_and_need_a_forward():
    model = small_moe_gpt()
    with pytest.raises(ValueError, match="router_logits needs a forward pass first"):
        model.router_logits()
    model(torch.randint(40, (2, 12)))
    sum(load_balancing_loss(x, 2) for x in model.router_logits()).backward()
    assert all(layer.router.weight.grad is not None and layer.router.weight.grad.abs().sum() > 0
               for layer in model.moe_layers())


def test_moe_gpt_kv_cache_matches_the_full_pass():
    model = small_moe_gpt().eval()
    ids = torch.randint(40, (2, 7))
    full = model(ids)[:, -1]
    step = model.as_next_logits()
    step(ids[:, :-1])
    torch.testing.assert_close(step(ids), full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(top_k=5), ValueError, "top_k"),
    (dict(n_experts=0), ValueError, "n_experts"),
    (dict(expert_d_ff=1.5), TypeError, "expert_d_ff"),
    (dict(capacity_factor=0.0), ValueError, "capacity_factor"),
])
def test_bad_moe_gpt_configs_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        small_moe_gpt(**kwargs)


def test_moe_gpt_refuses_a_dense_config():
    with pytest.raises(TypeError, match="config must be a MoEGPTConfig"):
        MoEGPT(TinyGPTConfig(vocab_size=40, context_length=12))
