"""Tests for course_lib.zoo: the shipped checkpoints load safely and reproduce their recorded metrics.

The fast tests score the shipped models on the validation documents (well under a second each); the
slow tests (``pytest -m slow tests/test_zoo.py``) retrain them from scratch, about five minutes on 2 cores.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest
import torch

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import (
    DATA_DIR,
    WORLD_FILE,
    load_corpus,
    load_generator,
    load_world,
    sha256,
)
from course_lib.decoding import greedy_decode
from course_lib.evaluation import document_nats, evaluate_encoder
from course_lib.models import TinyEncoder, TinyGPT
from course_lib.seq2seq import ReversalTask, Seq2Seq, accuracy_by_length
from course_lib.tokenization import EncoderTokenizer
from course_lib.zoo import (
    ENCODER_ZOO,
    SEQ2SEQ_ZOO,
    ZOO,
    EncoderTrainConfig,
    Seq2SeqTrainConfig,
    TrainConfig,
    load_seq2seq,
    load_tiny_encoder,
    load_tiny_gpt,
    main,
    save_seq2seq,
    save_tiny_encoder,
    save_tiny_gpt,
    train_seq2seq,
    train_tiny_encoder,
    train_tiny_gpt,
    train_tokenizer,
)

NAME = "tiny_gpt"


@pytest.mark.parametrize("name, tied, most_bytes", [
    ("tiny_gpt", {"token_embedding.weight", "lm_head.weight"}, 3_000_000),
    ("tiny_encoder", {"token_embedding.weight", "mlm_head.weight"}, 1_500_000),
])
def test_checkpoint_files_are_small_and_the_weights_are_plain_safetensors(name, tied, most_bytes):
    paths = checkpoint_paths(name)
    assert sum(p.stat().st_size for p in paths.values()) < most_bytes
    raw = paths["weights"].read_bytes()
    header_length = struct.unpack("<Q", raw[:8])[0]  # safetensors: u64 header size, JSON header, raw data
    header = json.loads(raw[8:8 + header_length])
    tensors = {key: spec for key, spec in header.items() if key != "__metadata__"}
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for spec in tensors.values())
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not a zip (torch.save) or a pickle
    assert len(tied & set(header)) == 1  # the tied table is stored once


@pytest.mark.parametrize("name, config", [*ZOO.items(), *SEQ2SEQ_ZOO.items(), *ENCODER_ZOO.items()])
def test_cards_list_the_shipped_config_in_the_order_it_is_written(name, config):
    card = load_card(name)
    assert card["training"] == config.to_dict()
    assert list(card["training"]) == list(config.to_dict())  # rewriting the card keeps its bytes


def test_loaded_model_is_tied_in_eval_mode_and_matches_its_card(shipped_gpt):
    model, tokenizer, card = shipped_gpt
    assert isinstance(model, TinyGPT) and not model.training
    assert model.lm_head.weight.data_ptr() == model.token_embedding.weight.data_ptr()
    assert model.config.to_dict() == card["model"]
    assert tokenizer.vocab_size == model.vocab_size == card["training"]["tokenizer_vocab_size"]
    assert card["metrics"]["parameters"] == model.num_parameters()


def test_card_was_made_from_the_shipped_corpus(shipped_gpt):
    _, _, card = shipped_gpt
    for file, digest in card["metrics"]["corpus_sha256"].items():
        retrain = "run python -m course_lib.zoo --retrain"
        assert sha256(DATA_DIR / file) == digest, f"{file} changed since the model was trained: {retrain}"


def test_loaded_model_reproduces_the_recorded_validation_loss_and_ratio(shipped_gpt):
    model, tokenizer, card = shipped_gpt
    metrics, val = card["metrics"], load_corpus("val")
    assert len(val) == metrics["val_documents"]
    model_nats = document_nats(model, tokenizer, val)  # (500,) measured now
    generator = load_generator()
    exact_nats = torch.tensor([-generator.log_prob(d) for d in val], dtype=torch.float64)  # (500,)
    assert float(model_nats.sum()) == pytest.approx(metrics["val_nats"], rel=1e-5)
    assert float(exact_nats.sum()) == pytest.approx(metrics["generator_nats"], rel=1e-12)
    ratio = float(model_nats.sum() / exact_nats.sum())
    assert ratio == pytest.approx(metrics["ratio"], rel=1e-5)
    assert 1.0 < ratio < 1.1  # no model beats the generator on 500 documents


def test_the_model_writes_documents_and_ends_them(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    newline = tokenizer.encode("\n")[0]
    prompt = torch.tensor(tokenizer.encode("\n") + tokenizer.encode(load_corpus("val")[0].split()[0]))
    text = tokenizer.decode(greedy_decode(model.as_next_logits(), prompt, 40, eos_id=newline).tolist())
    assert text.endswith(".\n") and text.count("\n") == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"warmup_steps": 10, "steps": 10}, r"warmup_steps must be in \[0, steps=10\), got 10"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0, got 0.0"),
    ({"name": "my model"}, "name must be an identifier-like string"),
    ({"final_lr_ratio": 2.0}, r"final_lr_ratio must be in \[0, 1\], got 2.0"),
    ({"warmup_steps": 2.5}, r"warmup_steps must be in \[0, steps=2000\), got 2.5"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0, got -1.0"),
    ({"d_model": 30}, "d_model must be divisible by n_heads, got d_model=30, n_heads=4"),
    ({"context_length": 0}, "context_length must be a positive integer, got 0"),
])
def test_bad_train_config_raises_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_model_name_raises_a_clear_value_error():
    with pytest.raises(ValueError, match="name must be a model in"):
        load_tiny_gpt("no_such_model")


# --- save -> load round trips into a temporary directory, with tiny untrained models ---------------

DOCUMENTS = ["Rozi lives in Pominport.", "Vuna has a pet cat.", "Rozi is a teacher."]


def assert_same_weights(loaded: torch.nn.Module, model: torch.nn.Module) -> None:
    assert not loaded.training and loaded.config == model.config
    saved = model.state_dict()
    assert loaded.state_dict().keys() == saved.keys()
    assert all(torch.equal(value, saved[key]) for key, value in loaded.state_dict().items())


def test_tiny_gpt_save_load_round_trip(tmp_path):
    config = TrainConfig(name="my_gpt", tokenizer_vocab_size=260, context_length=8, d_model=8, n_heads=2,
                         n_layers=1, warmup_steps=0, steps=1)
    tokenizer = train_tokenizer(DOCUMENTS, config.tokenizer_vocab_size)
    assert tokenizer.vocab_size == 260 and tokenizer.decode(tokenizer.encode(DOCUMENTS[0])) == DOCUMENTS[0]
    torch.manual_seed(0)
    model = TinyGPT(config.model_config(tokenizer.vocab_size))
    paths = save_tiny_gpt(model, tokenizer, config, {"ratio": 1.5}, zoo_dir=tmp_path)
    assert sorted(paths) == ["card", "tokenizer", "weights"] and all(p.parent == tmp_path for p in paths.values())
    loaded, loaded_tokenizer = load_tiny_gpt("my_gpt", zoo_dir=tmp_path)
    assert_same_weights(loaded, model)
    assert loaded.lm_head.weight is loaded.token_embedding.weight  # still tied
    assert loaded_tokenizer.encode(DOCUMENTS[1]) == tokenizer.encode(DOCUMENTS[1])
    card = load_card("my_gpt", tmp_path)
    assert card["metrics"] == {"ratio": 1.5} and card["training"]["name"] == "my_gpt"


@pytest.mark.parametrize("attention", [False, True])
def test_seq2seq_save_load_round_trip(tmp_path, attention):
    config = Seq2SeqTrainConfig(name="my_seq2seq", attention=attention, d_embed=4, d_hidden=8)
    task = ReversalTask(("Rozi", "cat", "red"))
    torch.manual_seed(0)
    model = Seq2Seq(config.model_config(task.vocab_size))
    save_seq2seq(model, task, config, {"accuracy_by_length": {}}, zoo_dir=tmp_path)
    loaded, loaded_task = load_seq2seq("my_seq2seq", zoo_dir=tmp_path)
    assert_same_weights(loaded, model)
    assert loaded_task == task
    with pytest.raises(ValueError, match="name must be a tiny encoder in .*, got 'my_seq2seq'"):
        load_tiny_encoder("my_seq2seq", zoo_dir=tmp_path)


def test_tiny_encoder_save_load_round_trip(tmp_path):
    config = EncoderTrainConfig(name="my_encoder", tokenizer_vocab_size=260, context_length=16, d_model=8,
                                n_heads=2, n_layers=1)
    tokenizer = EncoderTokenizer(train_tokenizer(DOCUMENTS, config.tokenizer_vocab_size))
    torch.manual_seed(0)
    model = TinyEncoder(config.model_config(tokenizer.vocab_size))
    save_tiny_encoder(model, tokenizer, config, {"nsp_accuracy": 0.5}, zoo_dir=tmp_path)
    loaded, loaded_tokenizer = load_tiny_encoder("my_encoder", zoo_dir=tmp_path)
    assert_same_weights(loaded, model)
    assert loaded.mlm_head.weight is loaded.token_embedding.weight  # still tied
    assert loaded_tokenizer.special_ids == tokenizer.special_ids
    assert loaded_tokenizer.encode(DOCUMENTS[2]) == tokenizer.encode(DOCUMENTS[2])
    with pytest.raises(ValueError, match="name must be a seq2seq model in .*, got 'my_encoder'"):
        load_seq2seq("my_encoder", zoo_dir=tmp_path)


@pytest.mark.parametrize("argv, message", [
    ([], "nothing to do: pass --retrain"),
    (["--name", "tiny_gpt"], "nothing to do: pass --retrain"),
    (["--retrain", "--name", "no_such_model"], "invalid choice: 'no_such_model'"),
])
def test_main_refuses_to_do_nothing_or_an_unknown_model(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_main_writes_into_the_zoo_dir_it_is_given(tmp_path, monkeypatch, capsys):
    from course_lib import zoo

    def untrained(config, progress=True, data_dir=None):  # the recipe, without its four minutes
        task = ReversalTask.from_world(load_world(data_dir))
        torch.manual_seed(0)
        return Seq2Seq(config.model_config(task.vocab_size)), task, {"accuracy_by_length": {}}

    monkeypatch.setitem(zoo.RECIPES, "seq2seq_gru", replace(zoo.RECIPES["seq2seq_gru"], train=untrained))
    main(["--retrain", "--name", "seq2seq_gru", "--zoo-dir", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq2seq_gru.json", "seq2seq_gru.safetensors"]
    assert load_card("seq2seq_gru", tmp_path)["training"] == SEQ2SEQ_ZOO["seq2seq_gru"].to_dict()
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'seq2seq_gru.safetensors'}  " in printed and "sha256" in printed


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
    assert f"{ratio:.4f}" in (DATA_DIR / "README.md").read_text(encoding="utf-8"), \
        "data/README.md: update the zoo metrics"


# --- the recurrent encoder-decoders ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SEQ2SEQ_ZOO))
def test_seq2seq_checkpoint_loads_safely_and_reproduces_its_recorded_accuracy(name):
    raw = checkpoint_paths(name)["weights"].read_bytes()
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # safetensors, not torch.save or pickle
    model, task = load_seq2seq(name)
    card, config = load_card(name), SEQ2SEQ_ZOO[name]
    assert not model.training and model.config.to_dict() == card["model"]
    assert Seq2SeqTrainConfig(**card["training"]) == config and model.config.attention == config.attention
    assert task == ReversalTask.from_world(load_world()) and model.config.vocab_size == task.vocab_size
    assert card["metrics"]["world_sha256"] == sha256(DATA_DIR / WORLD_FILE), "run python -m course_lib.zoo --retrain"
    assert card["metrics"]["parameters"] == model.num_parameters()
    lengths = [2, 8, 12, 13, 14]
    accuracy = accuracy_by_length(model, task, lengths, config.eval_sequences, config.eval_seed)
    recorded = card["metrics"]["accuracy_by_length"]
    assert sorted(map(int, recorded)) == list(range(config.min_length, config.eval_max_length + 1))
    assert all(accuracy[k] == pytest.approx(recorded[str(k)], abs=0.01) for k in lengths)


def test_attention_removes_the_bottleneck_within_the_training_lengths():
    plain = load_card("seq2seq_gru")["metrics"]["accuracy_by_length"]
    attentive = load_card("seq2seq_gru_attention")["metrics"]["accuracy_by_length"]
    assert all(attentive[str(k)] == 1.0 for k in range(2, 13))
    assert plain["2"] == 1.0 and plain["12"] < 0.5 < plain["8"]
    assert all(plain[str(k)] >= plain[str(k + 1)] for k in range(2, 20))  # falls with length
    datasheet = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert f"{100 * plain['12']:.1f}%" in datasheet, "data/README.md: update the seq2seq metrics"


def test_bad_seq2seq_zoo_inputs_raise_a_clear_value_error():
    with pytest.raises(ValueError, match="lengths must satisfy min_length <= max_length <= eval_max_length"):
        Seq2SeqTrainConfig(min_length=5, max_length=3)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        Seq2SeqTrainConfig(steps=0)
    with pytest.raises(ValueError, match="config must be a Seq2SeqTrainConfig"):
        train_seq2seq(ZOO["tiny_gpt"])
    with pytest.raises(ValueError, match="name must be a seq2seq model in .*, got 'tiny_gpt'"):
        load_seq2seq("tiny_gpt")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEQ2SEQ_ZOO))
def test_retraining_a_seq2seq_model_reproduces_its_recorded_accuracy(name):
    config = SEQ2SEQ_ZOO[name]
    _, _, metrics = train_seq2seq(config, progress=False)
    recorded = load_card(name)["metrics"]
    # The same CPU reproduces the weights bit for bit; another may round differently over 4,000 steps.
    assert metrics["accuracy_by_length"].keys() == recorded["accuracy_by_length"].keys()
    for length, value in recorded["accuracy_by_length"].items():
        assert metrics["accuracy_by_length"][length] == pytest.approx(value, abs=0.05), f"length {length}"
    assert metrics["parameters"] == recorded["parameters"] and metrics["steps"] == recorded["steps"]


# --- the tiny encoder ------------------------------------------------------------------------------

ENCODER = "tiny_encoder"


def test_loaded_encoder_is_tied_in_eval_mode_and_matches_its_card(shipped_encoder):
    model, tokenizer, card = shipped_encoder
    assert isinstance(model, TinyEncoder) and not model.training
    assert model.mlm_head.weight.data_ptr() == model.token_embedding.weight.data_ptr()
    assert model.config.to_dict() == card["model"] and EncoderTrainConfig(**card["training"]) == ENCODER_ZOO[ENCODER]
    assert tokenizer.vocab_size == model.vocab_size == card["training"]["tokenizer_vocab_size"] + 4
    assert card["special_tokens"] == {"[CLS]": 560, "[SEP]": 561, "[MASK]": 562, "[PAD]": 563}
    assert model.config.pad_id == tokenizer.pad_id and card["metrics"]["parameters"] == model.num_parameters()
    for file, digest in card["metrics"]["corpus_sha256"].items():
        assert sha256(DATA_DIR / file) == digest, \
            f"{file} changed since the encoder was trained: run python -m course_lib.zoo --retrain"


@pytest.mark.parametrize("call, message", [
    (lambda: EncoderTrainConfig(pair_objective="mlm"), r"pair_objective must be one of \('nsp', 'sop'\), got 'mlm'"),
    (lambda: EncoderTrainConfig(mask_prob=1.5), r"mask_prob must be a float in \(0, 1\), got 1.5"),
    (lambda: EncoderTrainConfig(max_sentences=1), "max_sentences must be an int >= 2, got 1"),
    (lambda: EncoderTrainConfig(steps=0), "steps must be a positive integer, got 0"),
    (lambda: train_tiny_encoder(ZOO["tiny_gpt"]), "config must be an EncoderTrainConfig"),
    (lambda: load_tiny_encoder("tiny_gpt"), "name must be a tiny encoder in .*, got 'tiny_gpt'"),
    (lambda: EncoderTrainConfig(d_model=30), "d_model must be divisible by n_heads"),
    (lambda: EncoderTrainConfig(weight_decay=-1.0), "weight_decay must be >= 0, got -1.0"),
])
def test_bad_encoder_zoo_inputs_raise_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_sop_encoder_loads_and_reproduces_its_recorded_pair_accuracies():
    model, tokenizer = load_tiny_encoder("tiny_encoder_sop")
    card = load_card("tiny_encoder_sop")
    assert not model.training and EncoderTrainConfig(**card["training"]) == ENCODER_ZOO["tiny_encoder_sop"]
    assert card["training"]["pair_objective"] == "sop" and card["special_tokens"] == load_card(ENCODER)["special_tokens"]
    config = ENCODER_ZOO["tiny_encoder_sop"]
    metrics = evaluate_encoder(model, tokenizer, load_corpus("val"), config.eval_seed, config.mask_prob, config.max_sentences)
    for key in ("nsp_accuracy", "sop_accuracy", "mlm_accuracy"):  # argmaxes: other CPUs may flip a rare near-tie
        assert metrics[key] == pytest.approx(card["metrics"][key], abs=0.01), key


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENCODER_ZOO))
def test_retraining_an_encoder_reproduces_its_recorded_metrics(name):
    recorded = load_card(name)["metrics"]
    _, _, metrics = train_tiny_encoder(ENCODER_ZOO[name], progress=False)
    # The same CPU reproduces the weights bit for bit; another may round differently over 2,000 steps.
    assert metrics["mlm_loss"] == pytest.approx(recorded["mlm_loss"], rel=0.03)
    for key in ("nsp_accuracy", "mlm_accuracy"):
        assert metrics[key] == pytest.approx(recorded[key], abs=0.02), key
    assert metrics["sop_accuracy"] == pytest.approx(recorded["sop_accuracy"], abs=0.05)
    assert metrics["fact_accuracy"] == pytest.approx(recorded["fact_accuracy"], abs=0.08)
    assert metrics["parameters"] == recorded["parameters"] and metrics["mlm_positions"] == recorded["mlm_positions"]


@pytest.mark.parametrize("name", sorted(ENCODER_ZOO))
def test_datasheet_states_the_shipped_encoder_metrics(name):
    metrics = load_card(name)["metrics"]
    datasheet = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for key in ("nsp_accuracy", "sop_accuracy", "fact_accuracy"):
        assert f"{100 * metrics[key]:.1f}%" in datasheet, f"data/README.md: update the encoder's {key}"
