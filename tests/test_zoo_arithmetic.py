"""Tests for course_lib.zoo.arithmetic: the shipped chain-sum models load safely and reproduce their cards.

The fast tests re-score the shipped models (greedy, 300 problems per size, about a second); the slow
test (``pytest -m slow``) retrains both from scratch, about two CPU minutes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest
import torch

from course_lib.arithmetic import ChainSum, accuracy_by_size
from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.models import TinyGPT
from course_lib.zoo import (
    ARITHMETIC_ZOO,
    RECIPES,
    ArithmeticTrainConfig,
    load_chain_sum,
    save_chain_sum,
    train_chain_sum,
)

NAMES = sorted(ARITHMETIC_ZOO)


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_plain_safetensors_and_small(name):
    paths = checkpoint_paths(name)
    assert not paths["tokenizer"].exists()  # the alphabet is fixed: no tokenizer file
    raw = paths["weights"].read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for key, spec in header.items() if key != "__metadata__")
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not torch.save's zip, not a pickle
    assert paths["weights"].stat().st_size < 500_000


@pytest.mark.parametrize("name", NAMES)
def test_card_matches_the_shipped_config_and_the_loaded_model(name):
    card = load_card(name)
    config = ARITHMETIC_ZOO[name]
    assert card["training"] == config.to_dict() and list(card["training"]) == list(config.to_dict())
    model, task = load_chain_sum(name)
    assert isinstance(model, TinyGPT) and not model.training
    assert model.config.to_dict() == card["model"] and task == config.task()
    assert card["metrics"]["parameters"] == model.num_parameters()
    assert name in RECIPES


def test_both_models_have_the_same_parameters_and_budget():
    cards = [load_card(name) for name in NAMES]
    assert cards[0]["model"] == cards[1]["model"]
    for field in ("steps", "batch_size", "learning_rate", "seed"):
        assert cards[0]["training"][field] == cards[1]["training"][field]


@pytest.mark.parametrize("name", NAMES)
def test_loaded_model_reproduces_the_recorded_accuracy_by_size(name):
    card = load_card(name)
    model, task = load_chain_sum(name)
    training = card["training"]
    accuracy = accuracy_by_size(model, task, training["eval_problems"], training["eval_seed"])
    assert {str(size): value for size, value in accuracy.items()} == pytest.approx(
        card["metrics"]["accuracy_by_size"], abs=2 / training["eval_problems"])


def test_the_scratchpad_learns_every_size_and_the_direct_model_none():
    scratch = load_card("chain_sum_scratchpad")["metrics"]["accuracy_by_size"]
    direct = load_card("chain_sum_direct")["metrics"]["accuracy_by_size"]
    assert min(scratch.values()) >= 0.99  # the lesson's claim
    assert max(direct.values()) < 0.2  # chance is 0.1


def test_save_load_round_trip_and_wrong_names(tmp_path):
    config = ArithmeticTrainConfig(name="my_chain", scratchpad=True, max_terms=3, d_model=8, n_heads=2, n_layers=1)
    torch.manual_seed(0)
    model = TinyGPT(config.model_config(config.task()))
    save_chain_sum(model, config.task(), config, {"accuracy_by_size": {}}, zoo_dir=tmp_path)
    loaded, task = load_chain_sum("my_chain", zoo_dir=tmp_path)
    assert task == ChainSum(True, 2, 3)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(),
                                                    strict=True))
    with pytest.raises(ValueError, match="name must be a model in"):
        load_chain_sum("no_such_model", zoo_dir=tmp_path)
    with pytest.raises(ValueError, match="name must be a chain-sum model in .*, got 'tiny_gpt'"):
        load_chain_sum("tiny_gpt")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"scratchpad": "yes"}, TypeError, "scratchpad must be a bool"),
    ({"eval_problems": 0}, ValueError, "eval_problems must be"),
    ({"max_terms": 1}, ValueError, "max_terms must be an integer in"),
    ({"d_model": 30, "n_heads": 4}, ValueError, "d_model must be divisible by n_heads"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay must be >= 0"),
])
def test_bad_config_raises_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        ArithmeticTrainConfig(**kwargs)


def test_train_refuses_another_config():
    with pytest.raises(ValueError, match="config must be an ArithmeticTrainConfig"):
        train_chain_sum(object(), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_retraining_reproduces_the_card(name):
    _, _, metrics = train_chain_sum(ARITHMETIC_ZOO[name], progress=False)
    card = load_card(name)["metrics"]
    assert metrics["parameters"] == card["parameters"] and metrics["target_tokens_seen"] == card["target_tokens_seen"]
    assert metrics["accuracy_by_size"] == pytest.approx(card["accuracy_by_size"], abs=0.03)


def test_a_short_run_trains_and_records_its_metrics():
    config = replace(ARITHMETIC_ZOO["chain_sum_scratchpad"], name="short", max_terms=3, steps=3, warmup_steps=1,
                     eval_problems=4, d_model=16, n_heads=2, n_layers=1)
    model, task, metrics = train_chain_sum(config, progress=False)
    assert set(metrics["accuracy_by_size"]) == {"2", "3"} and metrics["steps"] == 3
    assert metrics["parameters"] == model.num_parameters() and task == config.task()
    assert metrics["target_tokens_seen"] > 0 and metrics["threads"] == 1
