"""Tests for course_lib.zoo.scaling: the scaling curve's card (no weights) is consistent with its
config, the corpus and the generator; the slow test retrains every model and compares with the card."""

from __future__ import annotations

import pytest

from course_lib.checkpoints import checkpoint_paths
from course_lib.datasets import DATA_DIR, load_corpus, load_generator, optimal_loss
from course_lib.evaluation import encode_document
from course_lib.models import TinyGPT
from course_lib.zoo import RECIPES, SCALING_ZOO, ScalingConfig, load_scaling_curve, train_scaling_curve
from course_lib.zoo.common import corpus_hashes, train_tokenizer

NAME = "scaling_curve"
CARD = load_scaling_curve(NAME)
METRICS = CARD["metrics"]


def test_the_card_is_the_only_file_and_holds_no_weights():
    paths = checkpoint_paths(NAME)
    assert paths["card"].is_file()
    assert not paths["weights"].exists() and not paths["tokenizer"].exists()
    assert set(CARD) == {"training", "metrics"}


def test_card_config_is_the_shipped_config():
    assert ScalingConfig(**CARD["training"]) == SCALING_ZOO[NAME]
    assert RECIPES[NAME].config == SCALING_ZOO[NAME] and RECIPES[NAME].train is train_scaling_curve


def test_card_records_every_size_and_every_data_size():
    config = SCALING_ZOO[NAME]
    assert [s["width"] for s in METRICS["sizes"]] == list(config.widths)
    assert [d["documents"] for d in METRICS["data"]] == list(config.data_documents)
    assert METRICS["parameters"] == [s["parameters"] for s in METRICS["sizes"]]
    assert METRICS["corpus_sha256"] == corpus_hashes(None)


def test_parameter_counts_match_the_models_the_config_builds():
    config = SCALING_ZOO[NAME]
    for entry in METRICS["sizes"]:
        model = TinyGPT(config.model_config(entry["width"], config.tokenizer_vocab_size))
        embeddings = model.token_embedding.weight.numel() + model.positions.table.weight.numel()
        assert entry["parameters"] == model.num_parameters(), entry["width"]
        assert entry["non_embedding_parameters"] == model.num_parameters() - embeddings, entry["width"]
        assert entry["n_heads"] == model.config.n_heads


def test_the_irreducible_loss_is_the_generators_exact_loss_over_the_same_tokens():
    val = load_corpus("val")
    exact = optimal_loss(val, load_generator()).nats_per_document * len(val)
    assert METRICS["generator_nats"] == pytest.approx(exact, rel=1e-12)
    tokenizer = train_tokenizer(load_corpus("train"), SCALING_ZOO[NAME].tokenizer_vocab_size)
    assert METRICS["val_tokens"] == sum(len(encode_document(tokenizer, d)) - 1 for d in val)
    assert METRICS["irreducible_nats_per_token"] == pytest.approx(exact / METRICS["val_tokens"], rel=1e-12)


def test_every_model_stays_above_the_optimum_and_its_numbers_agree():
    for entry in METRICS["sizes"] + METRICS["data"]:
        assert entry["ratio"] > 1
        assert entry["ratio"] == pytest.approx(entry["val_nats"] / METRICS["generator_nats"], rel=1e-12)
        assert entry["nats_per_token"] == pytest.approx(entry["val_nats"] / METRICS["val_tokens"], rel=1e-12)
    for entry in METRICS["data"]:
        assert 0 < entry["best_step"] <= SCALING_ZOO[NAME].data_steps


def test_datasheet_states_the_card():
    text = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert "scaling_curve" in text and "no weights" in text
    for entry in METRICS["sizes"]:
        assert f"{entry['ratio']:.4f}" in text, "data/README.md: update the scaling curve's ratios"


@pytest.mark.parametrize("changes, message", [
    ({"widths": ()}, "widths must be a non-empty increasing tuple"),
    ({"widths": (32, 16)}, "widths must be a non-empty increasing tuple"),
    ({"widths": (16, 0)}, "widths must be a positive integer, got 0"),
    ({"data_documents": (100, 100)}, "data_documents must be a non-empty increasing tuple"),
    ({"data_steps": 50}, "data_steps must exceed warmup_steps=100, got 50"),
    ({"head_width": 0}, "head_width must be a positive integer, got 0"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
])
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ScalingConfig(**changes)


def test_too_many_documents_for_the_dev_split_is_refused():
    config = ScalingConfig(data_documents=(100, 8500))
    with pytest.raises(ValueError, match=r"data_documents\[-1\] \+ dev_documents must be at most 8700, got 8500 \+ 500"):
        train_scaling_curve(config, progress=False)


@pytest.mark.slow
def test_retraining_reproduces_the_card():
    _, _, metrics = train_scaling_curve(SCALING_ZOO[NAME], progress=False)
    # The same CPU reproduces the card exactly; another may round differently, and the losses then
    # agree to a fraction of a percent (the early-stopping step may move by one evaluation).
    assert metrics["generator_nats"] == pytest.approx(METRICS["generator_nats"], rel=1e-12)
    assert metrics["val_tokens"] == METRICS["val_tokens"]
    for new, recorded in zip(metrics["sizes"], METRICS["sizes"], strict=True):
        assert new["parameters"] == recorded["parameters"]
        assert new["nats_per_token"] == pytest.approx(recorded["nats_per_token"], rel=5e-3), new["width"]
    for new, recorded in zip(metrics["data"], METRICS["data"], strict=True):
        assert new["train_tokens"] == recorded["train_tokens"]
        assert new["nats_per_token"] == pytest.approx(recorded["nats_per_token"], rel=1e-2), new["documents"]
