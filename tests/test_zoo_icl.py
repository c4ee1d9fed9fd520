"""Tests for course_lib.zoo.icl: the shipped in-context learner loads safely and reproduces its card.

The fast tests re-measure the card's accuracy curves on the loaded model (about a second); the slow
test (``pytest -m slow tests/test_zoo_icl.py``) retrains it from scratch (a minute or two of one core).
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest
import torch

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import DATA_DIR
from course_lib.icl_tasks import ThresholdTasks
from course_lib.models import TinyGPT
from course_lib.zoo import ICL_ZOO, RECIPES, ICLTrainConfig, evaluate_icl, load_icl_gpt, save_icl_gpt, train_icl_gpt

NAME = "icl_gpt"


@pytest.fixture(scope="module")
def shipped():
    model, tasks = load_icl_gpt(NAME)
    return model, tasks, load_card(NAME)


def test_files_are_small_plain_safetensors_and_registered():
    paths = checkpoint_paths(NAME)
    assert not paths["tokenizer"].exists()  # the tokens are the task's own ids
    assert paths["weights"].stat().st_size + paths["card"].stat().st_size < 1_000_000
    raw = paths["weights"].read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for key, spec in header.items() if key != "__metadata__")
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not a zip (torch.save) or a pickle
    assert RECIPES[NAME].config == ICL_ZOO[NAME]


def test_card_matches_the_shipped_config_and_the_model(shipped):
    model, tasks, card = shipped
    config = ICL_ZOO[NAME]
    assert card["training"] == config.to_dict() and list(card["training"]) == list(config.to_dict())
    assert isinstance(model, TinyGPT) and not model.training
    assert model.config.to_dict() == card["model"] == config.model_config().to_dict()
    assert tasks == config.tasks() == ThresholdTasks(**card["tasks"])
    assert card["metrics"]["parameters"] == model.num_parameters()


def test_loaded_model_reproduces_the_recorded_accuracy(shipped):
    model, _, card = shipped
    measured = evaluate_icl(model, ICL_ZOO[NAME])
    recorded = card["metrics"]["accuracy"]
    assert measured["bayes_held_out"] == pytest.approx(recorded["bayes_held_out"], abs=1e-12)
    for curve in ("held_out", "held_out_random_labels", "train_tasks"):
        # a prediction flips only where the two logits tie to float rounding: a few prompts in 2,000
        assert measured[curve] == pytest.approx(recorded[curve], abs=2e-3), curve


def test_the_card_shows_in_context_learning(shipped):
    accuracy = shipped[2]["metrics"]["accuracy"]
    held_out, bayes = accuracy["held_out"], accuracy["bayes_held_out"]
    assert abs(held_out[0] - 0.5) < 0.05  # no demonstration: chance, the tasks are symmetric
    assert held_out[-1] > 0.85 and held_out[-1] > held_out[4] > held_out[0] + 0.15
    assert all(m <= b + 0.03 for m, b in zip(held_out, bayes))  # nothing beats the ideal learner by more than noise
    assert max(abs(a - 0.5) for a in accuracy["held_out_random_labels"]) < 0.05  # random labels: chance


def test_datasheet_quotes_the_card():
    accuracy = load_card(NAME)["metrics"]["accuracy"]
    text = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for k in (0, 4, 23):
        assert f"{accuracy['held_out'][k]:.3f}" in text, "data/README.md: update the icl_gpt metrics"


@pytest.mark.parametrize("kwargs, message", [
    ({"n_pairs": 0}, "n_pairs"),
    ({"eval_tasks": 0}, "eval_tasks"),
    ({"n_bits": 0}, "n_bits"),
    ({"d_model": 30, "n_heads": 4}, "divisible"),
    ({"weight_decay": -1.0}, "weight_decay"),
])
def test_bad_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ICLTrainConfig(**kwargs)


def test_train_refuses_another_config_and_save_load_round_trip(tmp_path):
    with pytest.raises(ValueError, match="ICLTrainConfig"):
        train_icl_gpt(ICL_ZOO[NAME].to_dict())
    config = replace(ICL_ZOO[NAME], name="icl_small", steps=3, warmup_steps=1, eval_tasks=20, prior_samples=500)
    model, tasks, metrics = train_icl_gpt(config, progress=False)
    assert metrics["steps"] == 3 and len(metrics["accuracy"]["held_out"]) == config.n_pairs
    save_icl_gpt(model, tasks, config, metrics, tmp_path)
    loaded, loaded_tasks = load_icl_gpt("icl_small", tmp_path)
    assert loaded_tasks == tasks
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_retraining_reproduces_the_recorded_metrics():
    config = ICL_ZOO[NAME]
    assert ICLTrainConfig(**load_card(NAME)["training"]) == config
    _, _, metrics = train_icl_gpt(config, progress=False)
    recorded = load_card(NAME)["metrics"]
    assert metrics["accuracy"]["bayes_held_out"] == pytest.approx(recorded["accuracy"]["bayes_held_out"], abs=1e-12)
    # The same CPU reproduces the checkpoint bit for bit; another rounds differently, and the curves of
    # 2,000 prompts then agree to about a percent.
    for curve in ("held_out", "held_out_random_labels", "train_tasks"):
        assert metrics["accuracy"][curve] == pytest.approx(recorded["accuracy"][curve], abs=0.02), curve
    assert metrics["final_train_loss"] == pytest.approx(recorded["final_train_loss"], rel=0.02)
    assert metrics["steps"] == recorded["steps"] and metrics["sequences_seen"] == recorded["sequences_seen"]
