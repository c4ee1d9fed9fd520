"""Tests for course_lib.zoo: the shipped checkpoint loads safely and reproduces its recorded metrics.

The fast tests score the shipped model on the validation documents (well under a second); the slow
test (``pytest -m slow tests/test_zoo.py``) retrains it from scratch, about three minutes on 2 cores.
"""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

from course_lib.datasets import DATA_DIR, load_corpus, load_generator, optimal_loss, sha256
from course_lib.decoding import greedy_decode
from course_lib.models import TinyGPT
from course_lib.zoo import (
    ZOO,
    TrainConfig,
    checkpoint_paths,
    document_nats,
    encode_document,
    learning_rate,
    load_card,
    load_tiny_gpt,
    train_tiny_gpt,
)

NAME = "tiny_gpt"


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_tiny_gpt(NAME)
    return model, tokenizer, load_card(NAME)


def test_checkpoint_files_are_small_and_the_weights_are_plain_safetensors():
    paths = checkpoint_paths(NAME)
    assert sum(p.stat().st_size for p in paths.values()) < 3_000_000
    raw = paths["weights"].read_bytes()
    header_length = struct.unpack("<Q", raw[:8])[0]  # safetensors: u64 header size, JSON header, raw data
    header = json.loads(raw[8:8 + header_length])
    tensors = {key: spec for key, spec in header.items() if key != "__metadata__"}
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for spec in tensors.values())
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not a zip (torch.save) or a pickle
    stored = {"token_embedding.weight", "lm_head.weight"} & set(header)
    assert len(stored) == 1  # the tied table is stored once


def test_loaded_model_is_tied_in_eval_mode_and_matches_its_card(shipped):
    model, tokenizer, card = shipped
    assert isinstance(model, TinyGPT) and not model.training
    assert model.lm_head.weight.data_ptr() == model.token_embedding.weight.data_ptr()
    assert model.config.to_dict() == card["model"]
    assert tokenizer.vocab_size == model.vocab_size == card["training"]["tokenizer_vocab_size"]
    assert card["metrics"]["parameters"] == model.num_parameters()


def test_card_was_made_from_the_shipped_corpus(shipped):
    _, _, card = shipped
    for file, digest in card["metrics"]["corpus_sha256"].items():
        retrain = "run python -m course_lib.zoo --retrain"
        assert sha256(DATA_DIR / file) == digest, f"{file} changed since the model was trained: {retrain}"


def test_loaded_model_reproduces_the_recorded_validation_loss(shipped):
    model, tokenizer, card = shipped
    metrics, val = card["metrics"], load_corpus("val")
    assert len(val) == metrics["val_documents"]
    nats = document_nats(model, tokenizer, val)
    assert float(nats.sum()) == pytest.approx(metrics["val_nats"], rel=1e-5)
    generator_nats = optimal_loss(val, load_generator()).nats_per_document * len(val)
    assert generator_nats == pytest.approx(metrics["generator_nats"], rel=1e-12)
    assert metrics["ratio"] == pytest.approx(metrics["val_nats"] / metrics["generator_nats"])
    assert 1.0 < metrics["ratio"] < 1.1  # no model beats the generator on 500 documents


def test_document_nats_scores_each_document_whole_from_its_first_token(shipped):
    model, tokenizer, _ = shipped
    document = load_corpus("val")[0]
    ids = torch.tensor(encode_document(tokenizer, document))  # "\n" + document + "\n"
    assert tokenizer.decode(ids.tolist()) == "\n" + document + "\n"
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids[None, :-1]).double(), dim=-1)[0]  # (L - 1, V)
    expected = -log_probs[torch.arange(len(ids) - 1), ids[1:]].sum()
    torch.testing.assert_close(document_nats(model, tokenizer, [document])[0], expected)
    batched = document_nats(model, tokenizer, load_corpus("val")[:7], batch_size=3)  # padding is not scored
    torch.testing.assert_close(batched[0], expected, rtol=1e-6, atol=1e-6)


def test_the_model_writes_documents_and_ends_them(shipped):
    model, tokenizer, _ = shipped
    newline = tokenizer.encode("\n")[0]
    prompt = torch.tensor(tokenizer.encode("\n") + tokenizer.encode(load_corpus("val")[0].split()[0]))
    text = tokenizer.decode(greedy_decode(model.as_next_logits(), prompt, 40, eos_id=newline).tolist())
    assert text.endswith(".\n") and text.count("\n") == 2


def test_learning_rate_schedule():
    config = TrainConfig(steps=100, warmup_steps=10, learning_rate=1e-2, final_lr_ratio=0.1)
    assert learning_rate(0, config) == pytest.approx(1e-3)
    assert learning_rate(9, config) == pytest.approx(1e-2)
    assert learning_rate(99, config) == pytest.approx(1e-3)
    middle = 10 + (99 - 10) / 2
    cosine = 0.5 * (1 + math.cos(math.pi * (int(middle) - 10) / 89))
    assert learning_rate(int(middle), config) == pytest.approx(1e-2 * (0.1 + 0.9 * cosine))


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be a positive int, got 0"),
    ({"warmup_steps": 10, "steps": 10}, r"warmup_steps must be in \[0, steps=10\), got 10"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"name": "my model"}, "name must be an identifier-like string"),
    ({"final_lr_ratio": 2.0}, r"final_lr_ratio must be in \[0, 1\], got 2.0"),
])
def test_bad_train_config_raises_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_model_name_raises_a_clear_value_error():
    with pytest.raises(ValueError, match="name must be a model in"):
        load_tiny_gpt("no_such_model")


@pytest.mark.slow
def test_retraining_reproduces_the_recorded_metrics():
    card = load_card(NAME)
    config = ZOO[NAME]
    assert TrainConfig(**card["training"]) == config
    _, _, metrics = train_tiny_gpt(config, progress=False)
    recorded = card["metrics"]
    # The same CPU reproduces the checkpoint bit for bit; another may round differently, and the
    # loss then agrees to a fraction of a percent.
    assert metrics["val_nats"] == pytest.approx(recorded["val_nats"], rel=5e-3)
    assert metrics["ratio"] == pytest.approx(recorded["ratio"], rel=5e-3)
    assert metrics["generator_nats"] == pytest.approx(recorded["generator_nats"], rel=1e-12)
    assert metrics["steps"] == recorded["steps"] and metrics["tokens_seen"] == recorded["tokens_seen"]


def test_datasheet_states_the_shipped_ratio():
    ratio = load_card("tiny_gpt")["metrics"]["ratio"]
    assert f"{ratio:.4f}" in (DATA_DIR / "README.md").read_text(encoding="utf-8"), "data/README.md: update the zoo metrics"
