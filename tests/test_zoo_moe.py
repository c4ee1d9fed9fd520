"""Tests for course_lib.zoo.moe: the shipped MoE models load safely and reproduce their recorded metrics.

The fast tests score the shipped models on the validation documents (a few seconds); the slow test
(``pytest -m slow tests/test_zoo_moe.py``) retrains them from scratch, a few minutes of one core each.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import DATA_DIR, load_corpus, sha256
from course_lib.evaluation import document_nats
from course_lib.moe import MoEGPT, parameter_counts
from course_lib.zoo import MOE_ZOO, RECIPES, MoETrainConfig, load_moe_gpt, load_tiny_gpt, train_moe_gpt
from course_lib.zoo.moe import expert_load


@pytest.fixture(scope="module")
def shipped():
    return {name: load_moe_gpt(name) for name in MOE_ZOO}


@pytest.mark.parametrize("name", sorted(MOE_ZOO))
def test_files_are_small_plain_safetensors(name):
    paths = checkpoint_paths(name)
    raw = paths["weights"].read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for key, spec in header.items() if key != "__metadata__")
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not torch.save's zip, not a pickle
    assert paths["weights"].stat().st_size < 1_500_000


@pytest.mark.parametrize("name", sorted(MOE_ZOO))
def test_card_matches_the_shipped_config_and_its_files(name):
    card = load_card(name)
    assert card["training"] == MOE_ZOO[name].to_dict()
    assert list(card["training"]) == list(MOE_ZOO[name].to_dict())
    for file, digest in card["metrics"]["corpus_sha256"].items():
        assert sha256(DATA_DIR / file) == digest, f"{file} changed since {name} was trained: retrain it"
    for file, digest in card["metrics"]["tokenizer_sha256"].items():
        assert sha256(DATA_DIR / "zoo" / file) == digest


def test_the_two_models_differ_only_in_the_balance_weight():
    balanced, unbalanced = (MOE_ZOO[name].to_dict() for name in ("moe_gpt", "moe_gpt_unbalanced"))
    assert {key for key in balanced if balanced[key] != unbalanced[key]} == {"name", "balance_weight"}


def test_loaded_models_reproduce_their_recorded_metrics(shipped):
    val = load_corpus("val")
    for name, (model, tokenizer) in shipped.items():
        metrics = load_card(name)["metrics"]
        assert isinstance(model, MoEGPT) and not model.training
        counts = parameter_counts(model)
        assert (counts.total, counts.active) == (metrics["parameters"], metrics["active_parameters"])
        nats = float(document_nats(model, tokenizer, val).sum())
        assert nats == pytest.approx(metrics["val_nats"], rel=1e-5)
        assert nats / metrics["generator_nats"] == pytest.approx(metrics["ratio"], rel=1e-5)
        load = expert_load(model, tokenizer, val[:100])
        assert all(sum(row) == pytest.approx(1.0) for row in load)


def test_moe_gpt_holds_more_parameters_for_the_active_count_of_its_dense_twin():
    dense, _ = load_tiny_gpt()
    metrics = load_card("moe_gpt")["metrics"]
    routers_and_biases = 2 * (64 * 8 + 64)  # per layer: the router and a second expert's output bias
    assert metrics["active_parameters"] == dense.num_parameters() + routers_and_biases
    assert metrics["parameters"] > 2.4 * dense.num_parameters()


def test_the_balancing_loss_balances_the_load():
    balanced, unbalanced = (load_card(name)["metrics"] for name in ("moe_gpt", "moe_gpt_unbalanced"))
    spread = lambda load: max(max(row) - min(row) for row in load)  # noqa: E731
    assert spread(balanced["expert_load"]) < spread(unbalanced["expert_load"])
    assert balanced["final_balance_loss"] == pytest.approx(2 * 2, rel=0.05)  # 2 per layer when balanced
    assert unbalanced["final_balance_loss"] is None


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(top_k=9), ValueError, "top_k"),
    (dict(balance_weight=-0.1), ValueError, "balance_weight"),
    (dict(tokenizer=None), TypeError, "tokenizer"),
    (dict(expert_d_ff=0), ValueError, "expert_d_ff"),
])
def test_bad_config_raises_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        MoETrainConfig(**kwargs)


def test_train_refuses_another_config_and_the_models_are_registered():
    with pytest.raises(TypeError, match="config must be a MoETrainConfig"):
        train_moe_gpt(RECIPES["tiny_gpt"].config, progress=False)
    assert {name: RECIPES[name].config for name in MOE_ZOO} == MOE_ZOO


def test_datasheet_states_the_shipped_ratios():
    text = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for name in MOE_ZOO:
        assert f"{load_card(name)['metrics']['ratio']:.4f}" in text, "data/README.md: update the MoE metrics"


def test_a_short_run_trains_and_records_its_losses():
    config = replace(MOE_ZOO["moe_gpt"], steps=3, warmup_steps=1)
    model, extra, metrics = train_moe_gpt(config, progress=False)
    assert extra is None and metrics["steps"] == 3 and metrics["ratio"] > 1
    assert metrics["final_balance_loss"] > 0 and len(metrics["expert_load"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MOE_ZOO))
def test_retraining_reproduces_the_recorded_metrics(name):
    recorded = load_card(name)["metrics"]
    _, _, metrics = train_moe_gpt(MOE_ZOO[name], progress=False)
    # Bit for bit on the same CPU; another CPU may round differently, within a fraction of a percent.
    assert metrics["val_nats"] == pytest.approx(recorded["val_nats"], rel=5e-3)
    assert metrics["ratio"] == pytest.approx(recorded["ratio"], rel=5e-3)
    assert metrics["parameters"] == recorded["parameters"] and metrics["steps"] == recorded["steps"]
