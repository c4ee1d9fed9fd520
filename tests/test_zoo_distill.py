"""Tests for course_lib.zoo.distill: the shipped students load safely and reproduce their recorded metrics.

The fast tests score the shipped students on the validation documents (a second or two); the slow
test (``pytest -m slow tests/test_zoo_distill.py``) retrains both from scratch, about two minutes
of one core.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest
import torch

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import DATA_DIR, load_corpus, load_generator, sha256
from course_lib.distillation import distillation_loss
from course_lib.evaluation import document_nats
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.zoo import (
    DISTILL_ZOO,
    RECIPES,
    DistillConfig,
    load_student,
    load_tiny_gpt,
    save_student,
    train_student,
)
from course_lib.zoo.distill import kl_to_teacher


@pytest.fixture(scope="module")
def shipped():
    teacher, tokenizer = load_tiny_gpt()
    students = {name: load_student(name)[0] for name in DISTILL_ZOO}
    return teacher, tokenizer, students


@pytest.mark.parametrize("name", sorted(DISTILL_ZOO))
def test_student_files_are_small_plain_safetensors(name):
    paths = checkpoint_paths(name)
    raw = paths["weights"].read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(set(spec) == {"dtype", "shape", "data_offsets"} for key, spec in header.items() if key != "__metadata__")
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not torch.save's zip, not a pickle
    assert paths["weights"].stat().st_size + paths["card"].stat().st_size < 300_000
    assert not paths["tokenizer"].exists()  # a student reads its teacher's tokenizer


@pytest.mark.parametrize("name", sorted(DISTILL_ZOO))
def test_card_matches_the_shipped_config_and_the_files_it_was_made_from(name):
    card = load_card(name)
    assert card["training"] == DISTILL_ZOO[name].to_dict()
    assert list(card["training"]) == list(DISTILL_ZOO[name].to_dict())
    for file, digest in {**card["metrics"]["corpus_sha256"], **card["metrics"]["teacher_sha256"]}.items():
        path = DATA_DIR / file if (DATA_DIR / file).exists() else DATA_DIR / "zoo" / file
        assert sha256(path) == digest, f"{file} changed since {name} was trained: retrain it"


def test_students_differ_only_in_what_they_learn_from():
    hard, soft = (DISTILL_ZOO[name].to_dict() for name in ("student_hard", "student_soft"))
    differing = {key for key in hard if hard[key] != soft[key]}
    assert differing == {"name", "alpha"}
    assert (hard["alpha"], soft["alpha"]) == (0.0, 1.0)


def test_loaded_students_reproduce_their_recorded_metrics(shipped):
    teacher, tokenizer, students = shipped
    val = load_corpus("val")
    exact = -sum(load_generator().log_prob(d) for d in val)
    teacher_nats = float(document_nats(teacher, tokenizer, val).sum())
    for name, student in students.items():
        metrics = load_card(name)["metrics"]
        assert isinstance(student, TinyGPT) and not student.training
        assert student.num_parameters() == metrics["parameters"] < teacher.num_parameters() / 4
        nats = float(document_nats(student, tokenizer, val).sum())
        assert nats == pytest.approx(metrics["val_nats"], rel=1e-5)
        assert nats / exact == pytest.approx(metrics["ratio"], rel=1e-5)
        assert teacher_nats == pytest.approx(metrics["teacher_val_nats"], rel=1e-5)
        assert kl_to_teacher(student, teacher, tokenizer, val[:50]) > 0


def test_the_distilled_student_ends_closer_to_the_optimum_than_the_hard_label_one():
    hard, soft = (load_card(name)["metrics"] for name in ("student_hard", "student_soft"))
    assert 1 < soft["teacher_ratio"] < soft["ratio"] < hard["ratio"]
    assert soft["kl_to_teacher"] < hard["kl_to_teacher"]


def test_kl_to_teacher_is_zero_for_the_teacher_itself_and_matches_distillation_loss(shipped):
    teacher, tokenizer, students = shipped
    docs = load_corpus("val")[:3]
    assert kl_to_teacher(teacher, teacher, tokenizer, docs) == pytest.approx(0.0, abs=1e-12)
    student = students["student_soft"]
    for doc in docs:  # one document: the mean per-token KL is distillation_loss at T = 1
        ids = torch.tensor([tokenizer.encode("\n") + tokenizer.encode(doc)])  # (1, L)
        with torch.no_grad():
            expected = distillation_loss(student(ids).double(), teacher(ids).double(), temperature=1.0, alpha=1.0)
        assert kl_to_teacher(student, teacher, tokenizer, [doc]) == pytest.approx(float(expected), rel=1e-9)


def test_save_load_round_trip(tmp_path, shipped):
    _, tokenizer, students = shipped
    for name in ("tiny_gpt.json", "tiny_gpt_tokenizer.json"):  # the student's loader reads its teacher's tokenizer
        (tmp_path / name).write_bytes((DATA_DIR / "zoo" / name).read_bytes())
    model = TinyGPT(TinyGPTConfig(vocab_size=tokenizer.vocab_size, context_length=64, d_model=32, n_heads=2, n_layers=1))
    save_student(model, None, DISTILL_ZOO["student_soft"], {"ratio": 1.5}, tmp_path)
    loaded, loaded_tokenizer = load_student("student_soft", tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert loaded_tokenizer.vocab_size == tokenizer.vocab_size
    assert load_card("student_soft", tmp_path)["metrics"] == {"ratio": 1.5}


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(alpha=1.5), ValueError, "alpha"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(teacher=3), TypeError, "teacher"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay"),
])
def test_bad_config_raises_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        DistillConfig(**kwargs)


def test_train_student_refuses_another_config():
    with pytest.raises(TypeError, match="config must be a DistillConfig"):
        train_student(RECIPES["tiny_gpt"].config, progress=False)


def test_students_are_registered_for_the_command_line():
    assert {name: RECIPES[name].config for name in DISTILL_ZOO} == DISTILL_ZOO


def test_datasheet_states_the_shipped_ratios():
    text = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for name in DISTILL_ZOO:
        assert f"{load_card(name)['metrics']['ratio']:.4f}" in text, "data/README.md: update the students' metrics"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DISTILL_ZOO))
def test_retraining_reproduces_the_recorded_metrics(name):
    recorded = load_card(name)["metrics"]
    _, _, metrics = train_student(DISTILL_ZOO[name], progress=False)
    # Bit for bit on the same CPU; another CPU may round differently, within a fraction of a percent.
    assert metrics["val_nats"] == pytest.approx(recorded["val_nats"], rel=5e-3)
    assert metrics["ratio"] == pytest.approx(recorded["ratio"], rel=5e-3)
    assert metrics["kl_to_teacher"] == pytest.approx(recorded["kl_to_teacher"], rel=5e-2)
    assert metrics["steps"] == recorded["steps"] and metrics["parameters"] == recorded["parameters"]


def test_a_short_run_learns(tmp_path):
    config = replace(DISTILL_ZOO["student_soft"], steps=3, warmup_steps=1)
    model, extra, metrics = train_student(config, progress=False)
    assert extra is None and metrics["steps"] == 3 and metrics["ratio"] > 1
