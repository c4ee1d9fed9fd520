"""Tests for course_lib.checkpoints: plain safetensors weights (a tied table stored once), the card's
layout, the tokenizer file only when there is a tokenizer, and the folder that follows COURSE_DATA_DIR."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import pytest
import torch

from course_lib.checkpoints import (
    checkpoint_dir,
    checkpoint_paths,
    load_card,
    read_weights,
    write_checkpoint,
)
from course_lib.datasets import DATA_DIR
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig


@dataclass(frozen=True)
class _Config(TrainingConfig):
    width: int = 8

    FIELD_ORDER = ("name", "width")


def _tiny_gpt(seed: int = 0) -> TinyGPT:
    torch.manual_seed(seed)
    return TinyGPT(TinyGPTConfig(vocab_size=260, context_length=8, d_model=8, n_heads=2, n_layers=1))


def _safetensors_header(path) -> dict:
    raw = path.read_bytes()
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not a zip (torch.save) or a pickle
    return json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])  # u64 header size, JSON header, raw data


def test_write_then_read_gives_the_same_weights_and_the_card(tmp_path):
    model, config = _tiny_gpt(), _Config(name="tiny")
    tokenizer = BPETokenizer()
    tokenizer.train("Rozi lives in Pominport. Vuna has a pet cat.\n", 260)
    paths = write_checkpoint(model, config, {"loss": 1.5}, tmp_path / "new", tokenizer=tokenizer, extra={"a": 1})
    assert paths == checkpoint_paths("tiny", tmp_path / "new") and all(p.is_file() for p in paths.values())
    header = _safetensors_header(paths["weights"])
    tensors = {key: spec for key, spec in header.items() if key != "__metadata__"}
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for spec in tensors.values())
    assert len({"token_embedding.weight", "lm_head.weight"} & set(header)) == 1  # the tied table stored once
    card = load_card("tiny", tmp_path / "new")
    assert list(card) == ["model", "training", "extra", "metrics"]
    assert list(card["training"]) == ["name", "width", "batch_size", "steps", "learning_rate", "warmup_steps",
                                      "final_lr_ratio", "seed", "threads"]
    assert card["model"] == model.config.to_dict() and card["metrics"] == {"loss": 1.5}
    loaded = read_weights(_tiny_gpt(seed=1), "tiny", tmp_path / "new")
    assert not loaded.training and loaded.lm_head.weight is loaded.token_embedding.weight
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert BPETokenizer.load(paths["tokenizer"]).merges == tokenizer.merges


def test_no_tokenizer_file_without_a_tokenizer(tmp_path):
    paths = write_checkpoint(_tiny_gpt(), _Config(name="bare"), {}, tmp_path)
    assert sorted(paths) == ["card", "weights"] and not checkpoint_paths("bare", tmp_path)["tokenizer"].exists()


def test_an_unknown_name_is_named_with_its_folder(tmp_path):
    with pytest.raises(ValueError, match=f"name must be a model in {tmp_path} .*got 'no_such_model'"):
        load_card("no_such_model", tmp_path)


def test_the_default_folder_follows_course_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert checkpoint_dir() == DATA_DIR / "zoo" and checkpoint_paths("tiny_gpt")["card"].is_file()
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert checkpoint_dir() == tmp_path / "zoo"
    write_checkpoint(_tiny_gpt(), _Config(name="elsewhere"), {"loss": 2.0})  # into $COURSE_DATA_DIR/zoo
    assert load_card("elsewhere")["metrics"] == {"loss": 2.0}
    with pytest.raises(ValueError, match="name must be a model in"):
        load_card("tiny_gpt")  # the repository's checkpoints are not read any more
