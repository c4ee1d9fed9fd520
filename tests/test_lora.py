"""Tests for course_lib.lora: the adapted layer, merging, add/remove on TinyGPT, counts, bad input."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from conftest import load_script
from torch import nn

from course_lib.lora import (
    LoRALinear,
    ParameterCounts,
    add_lora,
    lora_parameter_count,
    parameter_counts,
    remove_lora,
)
from course_lib.measure import count_flops
from course_lib.models import TinyGPT, TinyGPTConfig


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear(n_in: int = 6, n_out: int = 5, bias: bool = True, dtype: torch.dtype = torch.float64) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(n_in, n_out, bias=bias, dtype=dtype)


def trained_adapter(layer: LoRALinear, seed: int = 1) -> LoRALinear:
    """Give B non-zero values, as training would (a fresh adapter has B = 0)."""
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator(seed), dtype=layer.lora_B.dtype))
    return layer


def tiny_gpt(dtype: torch.dtype = torch.float32) -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(TinyGPTConfig(vocab_size=50, context_length=12, d_model=32, n_heads=4, n_layers=2)).to(dtype)


IDS = torch.randint(0, 50, (3, 12), generator=generator(7))
ATTENTION_NAMES = [f"decoder.blocks.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]


# --------------------------------------------------------------------------------------------------
# The layer


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_a_fresh_adapter_returns_the_base_output_exactly(dtype, bias):
    base = linear(bias=bias, dtype=dtype)
    x = torch.randn(4, 3, 6, generator=generator(), dtype=dtype)  # (B, T, in)
    expected = base(x)
    layer = LoRALinear(base, r=2, alpha=4)
    assert torch.equal(layer(x), expected)
    assert layer.lora_A.dtype == dtype and layer.lora_B.dtype == dtype


def test_initialisation_a_kaiming_uniform_b_zero_and_shapes():
    base = nn.Linear(400, 30)
    layer = LoRALinear(base, r=8, alpha=16)
    assert layer.lora_A.shape == (8, 400) and layer.lora_B.shape == (30, 8)
    assert torch.equal(layer.lora_B, torch.zeros(30, 8))
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)), as nn.Linear
    A = layer.lora_A.detach()
    assert float(A.abs().max()) <= bound
    assert float(A.abs().max()) > 0.95 * bound  # 3,200 uniform draws reach the edge
    assert abs(float(A.std()) - bound / math.sqrt(3)) < 0.05 * bound  # std of U(-b, b)
    assert layer.scaling == 2.0 and layer.base is base


def test_forward_is_the_low_rank_formula_and_the_merged_weight():
    base = linear()
    layer = trained_adapter(LoRALinear(base, r=3, alpha=6))
    x = torch.randn(7, 6, generator=generator(), dtype=torch.float64)  # (N, in)
    A, B, W, b = layer.lora_A, layer.lora_B, base.weight, base.bias
    expected = x @ W.T + b + 2.0 * (x @ A.T @ B.T)  # (N, out)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-13)
    torch.testing.assert_close(layer(x), x @ (W + 2.0 * B @ A).T + b, rtol=0, atol=1e-13)
    assert torch.linalg.matrix_rank(layer.delta_weight()).item() <= 3


def test_merged_output_equals_unmerged_and_unmerge_restores_the_weight():
    base = linear(n_in=40, n_out=30)
    original = base.weight.detach().clone()
    layer = trained_adapter(LoRALinear(base, r=4, alpha=8))
    x = torch.randn(5, 40, generator=generator(), dtype=torch.float64)
    unmerged = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(base.weight, original + layer.delta_weight(), rtol=0, atol=0)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)  # float64: equal to rounding
    layer.unmerge()
    assert not layer.merged
    torch.testing.assert_close(base.weight, original, rtol=0, atol=1e-14)
    torch.testing.assert_close(layer(x), unmerged, rtol=0, atol=1e-12)


def test_only_a_merged_adapter_costs_no_extra_flops():
    base = nn.Linear(64, 48, bias=False)
    layer = trained_adapter(LoRALinear(base, r=4, alpha=4), seed=2)
    x = torch.randn(10, 64, generator=generator())
    base_flops = 2 * 10 * 64 * 48
    with torch.no_grad():
        assert count_flops(lambda: base(x)) == base_flops
        assert count_flops(lambda: layer(x)) == base_flops + 2 * 10 * 4 * (64 + 48)  # x A^T, then B
        layer.merge()
        assert count_flops(lambda: layer(x)) == base_flops


def test_disabled_adapter_gives_the_base_output_and_merge_state_is_guarded():
    base = linear()
    x = torch.randn(3, 6, generator=generator(), dtype=torch.float64)
    layer = trained_adapter(LoRALinear(base, r=2, alpha=2))
    adapted = layer(x)
    layer.enabled = False
    assert torch.equal(layer(x), base(x))
    with pytest.raises(RuntimeError, match="disabled"):
        layer.merge()
    layer.enabled = True
    assert torch.equal(layer(x), adapted)
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.enabled = False
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    with pytest.raises(TypeError, match="enabled must be a bool"):
        layer.enabled = 0


def test_base_is_frozen_and_only_the_adapter_gets_gradients():
    base = linear()
    layer = trained_adapter(LoRALinear(base, r=2, alpha=2))
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    layer(torch.randn(4, 6, generator=generator(), dtype=torch.float64)).square().sum().backward()
    assert base.weight.grad is None and base.bias.grad is None
    assert float(layer.lora_A.grad.abs().sum()) > 0 and float(layer.lora_B.grad.abs().sum()) > 0


def test_dropout_acts_on_the_adapter_input_only():
    base = linear()
    layer = trained_adapter(LoRALinear(base, r=2, alpha=2, dropout=0.5))
    x = torch.randn(200, 6, generator=generator(), dtype=torch.float64)
    eval_out = layer.eval()(x)
    torch.testing.assert_close(eval_out, base(x) + x @ layer.delta_weight().T, rtol=0, atol=1e-12)
    torch.manual_seed(0)
    train_out = layer.train()(x)
    assert not torch.allclose(train_out, eval_out)
    layer.enabled = False
    assert torch.equal(layer(x), base(x))  # the base path never sees dropout


# --------------------------------------------------------------------------------------------------
# A model


def test_add_lora_on_tinygpt_wraps_the_named_linears_and_freezes_the_rest():
    model = tiny_gpt()
    before = model(IDS)
    total = model.num_parameters()
    names = add_lora(model, r=4, alpha=8, targets=("q_proj", "v_proj"))
    assert names == ATTENTION_NAMES
    assert all(isinstance(model.get_submodule(n), LoRALinear) for n in names)
    assert torch.equal(model(IDS), before)  # fresh adapters change nothing
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"{n}.lora_{m}" for n in names for m in "AB"]
    added = 4 * lora_parameter_count(32, 32, 4)
    assert added == 4 * 4 * (32 + 32)
    assert parameter_counts(model) == ParameterCounts(trainable=added, total=total + added)


def test_targets_match_whole_name_components_only():
    model = tiny_gpt()
    assert add_lora(model, 2, 2, "fc_in") == ["decoder.blocks.0.mlp.fc_in", "decoder.blocks.1.mlp.fc_in"]
    with pytest.raises(ValueError, match=r"targets must name nn.Linear modules of the model, got \('proj',\)"):
        add_lora(tiny_gpt(), 2, 2, "proj")  # a suffix of "q_proj", not a name component
    assert add_lora(tiny_gpt(), 2, 2, ["blocks.1.mlp.fc_out"]) == ["decoder.blocks.1.mlp.fc_out"]


def test_parameter_counts_per_layer_are_r_times_in_plus_out():
    model = tiny_gpt()
    add_lora(model, r=3, alpha=3, targets=["fc_in", "fc_out", "out_proj"])
    for module in model.modules():
        if isinstance(module, LoRALinear):
            counts = parameter_counts(module)
            assert counts.trainable == lora_parameter_count(module.in_features, module.out_features, 3)
            assert counts.total == counts.trainable + module.base.weight.numel() + module.base.bias.numel()
    assert lora_parameter_count(12288, 12288, 4) == 98_304  # one GPT-3-sized (d x d) matrix at r = 4


def test_parameter_counts_count_tied_weights_once():
    model = tiny_gpt()
    counts = parameter_counts(model)
    assert counts == ParameterCounts(model.num_parameters(), model.num_parameters())
    assert counts.trainable_fraction == 1.0
    assert ParameterCounts(0, 0).trainable_fraction == 0.0


def test_remove_lora_after_training_restores_the_base_model_exactly():
    model = tiny_gpt()
    before = model(IDS).detach()
    bases = {n: model.get_submodule(n) for n in ATTENTION_NAMES}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, r=4, alpha=8, targets=("q_proj", "v_proj"))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        model(IDS).logsumexp(-1).mean().backward()
        optimizer.step()
    assert not torch.allclose(model(IDS), before)  # the adapters learned something
    assert remove_lora(model) == ATTENTION_NAMES
    assert all(model.get_submodule(n) is bases[n] for n in ATTENTION_NAMES)
    assert torch.equal(model(IDS), before)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert remove_lora(model) == []


def test_remove_lora_with_merge_keeps_what_the_adapters_learned():
    model = tiny_gpt(torch.float64)
    add_lora(model, r=2, alpha=4, targets=["q_proj", "fc_in"])
    for i, module in enumerate(m for m in model.modules() if isinstance(m, LoRALinear)):
        trained_adapter(module, seed=i)
    model.get_submodule("decoder.blocks.1.mlp.fc_in").enabled = False  # contributes nothing: dropped
    adapted = model(IDS)
    model.get_submodule("decoder.blocks.0.mlp.fc_in").merge()  # already merged: kept as it is
    names = remove_lora(model, merge=True)
    assert len(names) == 4 and not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(IDS), adapted, rtol=0, atol=1e-10)


def test_remove_lora_unmerges_a_merged_adapter():
    model = tiny_gpt(torch.float64)
    before = model(IDS)
    add_lora(model, r=2, alpha=4, targets="v_proj")
    layer = trained_adapter(model.get_submodule("decoder.blocks.0.self_attn.v_proj"))
    layer.merge()
    remove_lora(model)
    torch.testing.assert_close(model(IDS), before, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kwargs, error, message", [
    ({"r": 0}, ValueError, "r must be a positive integer, got 0"),
    ({"r": 2.0}, TypeError, "r must be an integer, got float 2.0"),
    ({"r": True}, TypeError, "r must be an integer, got True"),
    ({"alpha": 0}, ValueError, "alpha must be positive, got 0"),
    ({"alpha": -1.5}, ValueError, "alpha must be positive, got -1.5"),
    ({"alpha": math.nan}, ValueError, "alpha must be a finite number, got nan"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1"),
    ({"dropout": -0.1}, ValueError, r"dropout must be in \[0, 1\), got -0.1"),
])
def test_bad_hyperparameters_raise_naming_the_argument_and_value(kwargs, error, message):
    arguments = {"r": 2, "alpha": 4.0, "dropout": 0.0} | kwargs
    with pytest.raises(error, match=message):
        LoRALinear(linear(), **arguments)
    model = tiny_gpt()
    with pytest.raises(error, match=message):
        add_lora(model, targets="q_proj", **arguments)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())  # nothing changed before the error


def test_numpy_integer_rank_is_accepted():
    assert LoRALinear(linear(), r=np.int64(3), alpha=np.float32(6.0)).scaling == 2.0


@pytest.mark.parametrize("call, error, message", [
    (lambda: LoRALinear(nn.Conv1d(2, 2, 1), 2, 2), TypeError, "base must be a torch.nn.Linear, got Conv1d"),
    (lambda: add_lora("model", 2, 2, "q_proj"), TypeError, "model must be a torch.nn.Module, got str"),
    (lambda: add_lora(tiny_gpt(), 2, 2, []), ValueError, r"targets must name at least one module .* got \(\)"),
    (lambda: add_lora(tiny_gpt(), 2, 2, [""]), ValueError, "targets must name at least one module"),
    (lambda: add_lora(tiny_gpt(), 2, 2, ["q_proj", 3]), TypeError, "targets must hold str, got int 3"),
    (lambda: add_lora(tiny_gpt(), 2, 2, 3), TypeError, "targets must be a str or an iterable of str, got int"),
    (lambda: add_lora(tiny_gpt(), 2, 2, "norm"), ValueError, r"got \('norm',\), which match none"),
    (lambda: add_lora(tiny_gpt(), 2, 2, "lm_head"), ValueError, r"'lm_head', whose weight is tied to \['token_embedding.weight'\]"),
    (lambda: remove_lora(tiny_gpt(), merge=1), TypeError, "merge must be a bool, got int 1"),
    (lambda: lora_parameter_count(0, 4, 2), ValueError, "in_features must be a positive integer, got 0"),
    (lambda: lora_parameter_count(4, 4, 0), ValueError, "r must be a positive integer, got 0"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_model_with_adapters_refuses_a_second_add_lora():
    model = tiny_gpt()
    add_lora(model, 2, 2, "q_proj")
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        add_lora(model, 2, 2, "k_proj")


# --------------------------------------------------------------------------------------------------
# The benchmark script


def test_bench_lora_runs_and_a_lora_step_changes_only_the_adapters(monkeypatch, capsys):
    bench = load_script("bench_lora")
    full, lora = bench.make_models(d_model=32, n_layers=1, vocab_size=40, context_length=8, r=2)
    assert all(p.requires_grad for p in full.parameters())
    assert torch.equal(full(IDS[:, :8] % 40), lora(IDS[:, :8] % 40))  # the same start
    frozen = {n: p.detach().clone() for n, p in lora.named_parameters() if not p.requires_grad}
    ids = torch.randint(0, 40, (2, 8), generator=generator())
    step = bench.make_step(lora, ids)
    step()
    assert all(torch.equal(p, frozen[n]) for n, p in lora.named_parameters() if not p.requires_grad)
    monkeypatch.setattr(sys, "argv", ["bench_lora.py", "--repeats", "2", "--d-model", "32", "--n-layers", "1",
                                      "--batch", "2", "--context", "8", "--threads", "1"])
    bench.main()
    assert "LoRA / full" in capsys.readouterr().out
