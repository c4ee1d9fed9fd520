"""Tests for course_lib.zoo.finetune: the fine-tuned tiny GPTs load safely, match their cards, reproduce
their recorded forgetting on load, and show what the forgetting lessons rely on.

The fast tests score the shipped fine-tunes (a second or two each); the slow ones
(``pytest -m slow tests/test_zoo_finetune.py``) retrain them, about a minute of one core each.
"""

from __future__ import annotations

import json
import math
import shutil
import struct

import pytest
import torch

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import DATA_DIR, sha256
from course_lib.lora import LoRALinear, add_lora, lora_parameter_count
from course_lib.models import TinyGPT
from course_lib.zoo import FINETUNE_ZOO, FinetuneConfig, load_finetuned, load_tiny_gpt, save_finetuned
from course_lib.zoo.finetune import LORA_TARGETS, forgetting_sets, measure_forgetting, train_finetune

FINAL = ("old_excess", "new_excess", "old_fact_nats", "new_fact_nats")


@pytest.fixture(scope="module")
def base():
    return load_tiny_gpt()


@pytest.fixture(scope="module")
def sets(base):
    return {seed: forgetting_sets(base[1], seed) for seed in {c.new_world_seed for c in FINETUNE_ZOO.values()}}


def header(name: str) -> dict:
    raw = checkpoint_paths(name)["weights"].read_bytes()
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not torch.save's zip, not a pickle
    length = struct.unpack("<Q", raw[:8])[0]  # safetensors: u64 header size, then a JSON header
    return {k: v for k, v in json.loads(raw[8:8 + length]).items() if k != "__metadata__"}


@pytest.mark.parametrize("name, config", FINETUNE_ZOO.items())
def test_card_lists_the_shipped_config_and_the_base_and_corpus_it_was_made_from(name, config):
    card = load_card(name)
    assert card["training"] == config.to_dict() and list(card["training"]) == list(config.to_dict())
    assert FinetuneConfig(**card["training"]) == config
    retrain = f"run python -m course_lib.zoo --retrain --name {name}"
    assert card["metrics"]["base_sha256"] == sha256(checkpoint_paths(config.base)["weights"]), retrain
    for file, digest in card["metrics"]["corpus_sha256"].items():
        assert sha256(DATA_DIR / file) == digest, retrain
    curve = card["metrics"]["curve"]
    assert curve["step"] == list(range(0, config.steps + 1, config.eval_every))
    assert all(curve[key][-1] == card["metrics"][key] for key in FINAL)


@pytest.mark.parametrize("name", sorted(FINETUNE_ZOO))
def test_weights_are_plain_safetensors_and_a_lora_file_holds_only_the_adapter(name):
    tensors = header(name)
    config = FINETUNE_ZOO[name]
    if config.method == "lora":
        assert tensors and all(key.rsplit(".", 1)[-1] in ("lora_A", "lora_B") for key in tensors)
        assert len(tensors) == 2 * 2 * len(LORA_TARGETS)  # A and B for each target of both blocks
        assert checkpoint_paths(name)["weights"].stat().st_size < 200_000
    else:
        assert len({"token_embedding.weight", "lm_head.weight"} & set(tensors)) == 1  # the tied table once


@pytest.mark.parametrize("name", sorted(FINETUNE_ZOO))
def test_loaded_fine_tune_reproduces_its_recorded_forgetting(name, sets):
    model, tokenizer = load_finetuned(name)
    card = load_card(name)
    assert isinstance(model, TinyGPT) and not model.training
    assert model.lm_head.weight.data_ptr() == model.token_embedding.weight.data_ptr()
    config = FINETUNE_ZOO[name]
    measured = measure_forgetting(model, tokenizer, sets[config.new_world_seed])
    for key in FINAL:
        assert measured[key] == pytest.approx(card["metrics"][key], rel=1e-5, abs=1e-6), key
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == card["metrics"]["trainable_parameters"]


def test_the_step_zero_point_of_every_curve_is_the_base(base, sets):
    model, tokenizer = base
    measured = measure_forgetting(model, tokenizer, sets[1])
    for name, config in FINETUNE_ZOO.items():
        if config.new_world_seed == 1:
            curve = load_card(name)["metrics"]["curve"]
            assert all(curve[key][0] == pytest.approx(measured[key], rel=1e-5, abs=1e-6) for key in FINAL), name


def test_disabling_the_adapters_gives_the_base_back_exactly(base):
    model, tokenizer = load_finetuned("finetune_lora_r4")
    ids = torch.tensor([tokenizer.encode("\nRozi lives in Pominport.")])  # (1, T)
    with torch.no_grad():
        expected = base[0](ids)
        adapted = model(ids)
        for layer in model.modules():
            if isinstance(layer, LoRALinear):
                layer.enabled = False
        restored = model(ids)
    assert not torch.equal(adapted, expected)  # the adapter changes the output
    assert torch.equal(restored, expected)  # and switching it off restores the base bit for bit


def test_the_lessons_claims_hold_on_the_shipped_fine_tunes():
    m = {name: load_card(name)["metrics"] for name in FINETUNE_ZOO}
    full = m["finetune_full"]
    assert full["old_excess"] > 10 and full["old_fact_nats"] > 1  # naive fine-tuning forgets, in nats and facts
    assert full["curve"]["new_excess"][0] > 100 > full["new_excess"]  # and learns the new world
    for name in ("finetune_replay", "finetune_ewc", "finetune_full_low_lr"):
        assert m[name]["old_excess"] < full["old_excess"], name  # these remedies forget less ...
        assert m[name]["new_excess"] > full["new_excess"], name  # ... and learn less
    assert m["finetune_replay"]["old_excess"] > -math.log(0.25)  # replay's floor: -ln(share of old data)
    assert m["finetune_ewc"]["old_excess"] < m["finetune_full_low_lr"]["old_excess"] / 2
    ranks = [m[f"finetune_lora_r{r}"] for r in (1, 4, 16)]
    assert ranks[0]["new_excess"] > ranks[1]["new_excess"] > ranks[2]["new_excess"]  # a higher rank learns more
    assert ranks[0]["old_excess"] < ranks[1]["old_excess"] < ranks[2]["old_excess"]  # and forgets more
    assert all(r["old_excess"] > full["old_excess"] and r["new_excess"] > full["new_excess"] for r in ranks)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"method": "adapter"}, ValueError, "method must be one of"),
    ({"method": "replay"}, ValueError, "replay_fraction must be set .* exactly when method is 'replay'"),
    ({"replay_fraction": 0.5}, ValueError, "replay_fraction must be set .* got replay_fraction=0.5 with method='full'"),
    ({"method": "replay", "replay_fraction": 1.0}, ValueError, r"replay_fraction must be in \(0, 1\)"),
    ({"method": "ewc", "ewc_strength": -1.0}, ValueError, "ewc_strength must be"),
    ({"method": "lora", "lora_rank": 4}, ValueError, "lora_alpha must be"),
    ({"lora_alpha": 8.0}, ValueError, "lora_alpha must be 0 unless method is 'lora', got 8.0"),
    ({"new_world_seed": 0}, ValueError, "new_world_seed must differ from the base's world seed 0"),
    ({"eval_every": 0}, ValueError, "eval_every must be a positive integer, got 0"),
    ({"steps": 0}, ValueError, "steps must be a positive integer, got 0"),
])
def test_bad_finetune_configs_raise_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        FinetuneConfig(**kwargs)


def test_bad_finetune_inputs_are_named():
    with pytest.raises(ValueError, match="config must be a FinetuneConfig"):
        train_finetune(FINETUNE_ZOO["finetune_full"].to_dict())
    with pytest.raises(ValueError, match="name must be a fine-tune of the zoo, got 'tiny_gpt'"):
        load_finetuned("tiny_gpt")


def test_save_load_round_trip_of_an_adapter(tmp_path, base):
    for file in checkpoint_paths("tiny_gpt").values():
        shutil.copy(file, tmp_path)
    config = FinetuneConfig(name="my_lora", method="lora", lora_rank=2, lora_alpha=4.0)
    model, tokenizer = load_tiny_gpt()
    add_lora(model, config.lora_rank, config.lora_alpha, LORA_TARGETS)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, LoRALinear):
                layer.lora_B.normal_(generator=torch.Generator().manual_seed(0))
    paths = save_finetuned(model, tokenizer, config, {"old_excess": 1.0}, zoo_dir=tmp_path)
    assert sorted(paths) == ["card", "weights"]
    loaded, _ = load_finetuned("my_lora", zoo_dir=tmp_path)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    per_block = 4 * lora_parameter_count(64, 64, 2) + 2 * lora_parameter_count(64, 256, 2)  # attention, MLP
    assert sum(p.numel() for p in loaded.parameters() if p.requires_grad) == 2 * per_block
    assert paths["weights"].stat().st_size < 4 * 2 * per_block + 4_000  # the float32 adapter and its header


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FINETUNE_ZOO))
def test_retraining_reproduces_the_recorded_forgetting(name):
    recorded = load_card(name)["metrics"]
    _, _, metrics = train_finetune(FINETUNE_ZOO[name], progress=False)
    # The same CPU reproduces the weights bit for bit; another may round differently over 600 steps.
    for key in FINAL:
        assert metrics[key] == pytest.approx(recorded[key], rel=0.05, abs=0.05), key
    assert metrics["old_optimum"] == pytest.approx(recorded["old_optimum"], rel=1e-12)
    assert metrics["new_optimum"] == pytest.approx(recorded["new_optimum"], rel=1e-12)
    assert metrics["trainable_parameters"] == recorded["trainable_parameters"]


def test_datasheet_states_the_shipped_forgetting():
    datasheet = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for name in FINETUNE_ZOO:
        metrics = load_card(name)["metrics"]
        row = f"| `{name}` | {metrics['old_excess']:.2f} | {metrics['new_excess']:.2f} |"
        assert row in datasheet, f"data/README.md: update the row of {name}"
