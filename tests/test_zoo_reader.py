"""Tests for course_lib.zoo.reader: the shipped reader loads safely, its card matches its config, and
evaluating it on load reproduces the recorded accuracies; the slow test retrains it (about three
minutes of one core)."""

from __future__ import annotations

import json
import random
import struct
from dataclasses import replace

import pytest
import torch

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import DATA_DIR, WORLD_FILE, load_world, sha256
from course_lib.models import TinyGPT
from course_lib.retrieval import ReadingTask, reading_pool
from course_lib.zoo import READER_ZOO, RECIPES, ReaderTrainConfig, load_tiny_reader, train_tiny_reader
from course_lib.zoo.reader import IGNORE, _batch, evaluate_reader

NAME = "tiny_reader"
ACCURACIES = ("closed_book_accuracy", "passage_accuracy", "distractor_accuracy", "update_accuracy",
              "distractor_copied")


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_tiny_reader()
    return model, tokenizer, load_card(NAME)


def test_the_weights_are_plain_safetensors_and_the_files_small():
    paths = checkpoint_paths(NAME)
    assert sum(p.stat().st_size for p in paths.values()) < 1_000_000
    raw = paths["weights"].read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for key, spec in header.items() if key != "__metadata__")
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not torch.save's zip, not a pickle


def test_the_card_lists_the_shipped_config_and_the_recipe_is_registered(shipped):
    model, tokenizer, card = shipped
    config = READER_ZOO[NAME]
    assert card["training"] == config.to_dict() and list(card["training"]) == list(config.to_dict())
    assert isinstance(model, TinyGPT) and not model.training and model.config.to_dict() == card["model"]
    assert tokenizer.vocab_size == model.vocab_size == config.tokenizer_vocab_size
    assert card["metrics"]["parameters"] == model.num_parameters()
    assert card["metrics"]["world_sha256"] == {WORLD_FILE: sha256(DATA_DIR / WORLD_FILE)}
    assert RECIPES[NAME].config == config


def test_evaluation_on_load_reproduces_the_recorded_accuracies(shipped):
    model, tokenizer, card = shipped
    metrics = evaluate_reader(model, tokenizer, READER_ZOO[NAME])
    for key in ACCURACIES:
        assert metrics[key] == pytest.approx(card["metrics"][key], abs=1e-9), key
    recorded = card["metrics"]
    # what the lessons rely on: memory closed book, reading in unseen worlds, and a passage beating memory
    assert recorded["closed_book_accuracy"] > 0.95
    assert recorded["passage_accuracy"] > 0.5 and recorded["update_accuracy"] > 0.5
    assert recorded["distractor_copied"] > recorded["distractor_accuracy"]  # a retrieval miss is copied


def test_a_batch_scores_only_the_answer_tokens(shipped):
    _, tokenizer, _ = shipped
    config = replace(READER_ZOO[NAME], batch_size=8)
    task = ReadingTask(load_world(), reading_pool(5))
    inputs, targets = _batch(task, tokenizer, random.Random(0), config)
    examples = [task.sample(random.Random(0))]  # the batch's first example, drawn again from the same seed
    prompt, answer = tokenizer.encode(examples[0].prompt), tokenizer.encode(examples[0].answer)
    scored = targets[0] != IGNORE
    assert targets[0, scored].tolist() == answer
    assert int(scored.nonzero()[0]) == len(prompt) - 1  # the last prompt token predicts the first answer token
    assert inputs[0, :len(prompt)].tolist() == prompt
    assert inputs.shape == targets.shape and inputs.dtype == torch.long


@pytest.mark.parametrize("kwargs, message", [
    ({"read_fraction": 0.5}, "must sum to 1"),
    ({"pool_worlds": 0}, "pool_worlds must be a positive integer, got 0"),
    ({"max_distractors": -1}, "max_distractors must be a non-negative integer"),
    ({"recall_fraction": 1.5, "read_fraction": -0.5}, "must be"),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        replace(READER_ZOO[NAME], **kwargs)
    assert isinstance(READER_ZOO[NAME], ReaderTrainConfig)


@pytest.mark.slow
def test_retraining_reproduces_the_recorded_accuracies():
    recorded = load_card(NAME)["metrics"]
    _, _, metrics = train_tiny_reader(READER_ZOO[NAME], progress=False)
    # The same CPU reproduces the weights bit for bit; another may round differently over the steps.
    for key in ACCURACIES:
        assert metrics[key] == pytest.approx(recorded[key], abs=0.05), key
    assert metrics["parameters"] == recorded["parameters"] and metrics["steps"] == recorded["steps"]
