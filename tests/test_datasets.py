"""Tests for course_lib.datasets and data/: checksums, regeneration byte for byte, the datasheet's numbers,
and the data folder that COURSE_DATA_DIR chooses."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from course_lib import datasets
from course_lib.datasets import (
    DATA_DIR,
    DATASHEET,
    SPLITS,
    DatasheetRow,
    corpus_text,
    data_dir,
    data_file,
    load_corpus,
    load_generator,
    load_world,
    main,
    make_world,
    optimal_loss,
    read_datasheet,
    record_files,
    sample_corpus,
    sha256,
    write_corpus,
)

README = (DATA_DIR / DATASHEET).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """A fresh data folder written by `write_corpus`, starting from an empty file table."""
    folder = tmp_path_factory.mktemp("data")
    (folder / DATASHEET).write_text("# Sheet\n\n| path | bytes | sha256 | how it was made |\n"
                                    "| --- | --- | --- | --- |\n")
    write_corpus(folder)
    return folder


# --- the shipped files -----------------------------------------------------------------------------


def test_every_listed_file_has_its_recorded_size_and_checksum():
    rows = read_datasheet()
    assert {"data/world.json", "data/corpus_train.txt", "data/corpus_val.txt"} <= {r.path for r in rows}
    for row in rows:
        path = row.location()
        assert path.is_file(), f"{row.path} is listed in data/README.md but missing"
        assert path.stat().st_size == row.bytes, f"{row.path}: size differs from data/README.md"
        assert sha256(path) == row.sha256, f"{row.path}: sha256 differs from data/README.md"


def test_every_file_under_data_is_listed():
    listed = {r.path for r in read_datasheet()}
    present = {f"data/{p.relative_to(DATA_DIR).as_posix()}" for p in DATA_DIR.rglob("*")
               if p.is_file() and p.name != DATASHEET and not p.name.startswith(".")}
    assert present - listed == set(), "files in data/ without a row in data/README.md"


def test_regenerating_gives_the_shipped_bytes(regenerated):
    for row in read_datasheet(regenerated / DATASHEET):
        assert sha256(row.location(regenerated)) == sha256(row.location()), row.path
    assert read_datasheet(regenerated / DATASHEET) == [r for r in read_datasheet() if r.location(regenerated).exists()]


def test_loaders_read_what_was_written():
    assert load_world() == make_world()
    for split, spec in SPLITS.items():
        documents = load_corpus(split)
        assert len(documents) == spec["documents"] and all(documents)
        assert corpus_text(documents).encode() == (DATA_DIR / spec["file"]).read_bytes()


# --- the datasheet's numbers ------------------------------------------------------------------------


def test_datasheet_states_the_measured_optimal_loss_and_entropy():
    generator = load_generator()
    loss = optimal_loss(load_corpus("val"), generator)
    assert f"Exact entropy of the process: {generator.entropy():.4f} nats per document" in README
    assert f"{loss.nats_per_document:.4f} nats per document, {loss.nats_per_character:.5f} nats per character" in README
    assert f"({loss.documents} documents, {loss.characters:,} characters" in README
    assert loss.nats_per_document == pytest.approx(generator.entropy(), rel=0.05)


def test_datasheet_states_the_measured_split_statistics():
    train, val = load_corpus("train"), load_corpus("val")
    for split, documents in (("train", train), ("val", val)):
        lengths = [len(d) for d in documents]
        row = (f"| {split} | {len(documents):,} | `random.Random({SPLITS[split]['seed']})` | "
               f"{statistics.fmean(lengths):.1f} characters | {min(lengths)} / {max(lengths)} |")
        assert row in README
    seen = set(train)
    assert f"{sum(d in seen for d in val)} of the 500 val documents also occur in the train split" in README
    assert f"{len(train) - len(seen)} train documents" in README
    example = README.split("```\n")[1].strip()
    assert example in val


def test_train_split_is_about_one_megabyte():
    assert 900_000 < (DATA_DIR / SPLITS["train"]["file"]).stat().st_size < 1_100_000


def test_command_line_prints_the_optimal_loss(capsys):
    main([])
    assert f"{optimal_loss(load_corpus('val'), load_generator()).nats_per_document:.4f}" in capsys.readouterr().out


# --- the datasheet parser ---------------------------------------------------------------------------

SHA = "ab" * 32


def test_read_datasheet_tolerates_other_layouts(tmp_path):
    sheet = tmp_path / "README.md"
    sheet.write_text(
        "# Sheet\n\n| path | notes | sha256 | bytes | licence |\n|---|---|---|--:|---|\n"
        f"| `zoo/tiny.safetensors` | `scripts/train.py` | `{SHA}` | 1,234 | MIT |\n"
        f"| data/parallel_sentences.json | written by hand | {SHA} | 56 | CC0 |\n\nAfter the table.\n")
    assert read_datasheet(sheet) == [
        DatasheetRow("data/zoo/tiny.safetensors", 1234, SHA, "`scripts/train.py`"),
        DatasheetRow("data/parallel_sentences.json", 56, SHA, "written by hand"),
    ]


def record_a_and_b(folder: Path, datasheet: str) -> tuple[list[str], list[DatasheetRow]]:
    """Record a.txt ("new") and b.txt ("added") in a datasheet that starts as ``datasheet``.

    Returns the datasheet's lines afterwards and the rows `record_files` returned.
    """
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("bb")
    (folder / "README.md").write_text(datasheet)
    rows = record_files({folder / "a.txt": "new", folder / "b.txt": "added"}, folder)
    return (folder / "README.md").read_text().splitlines(), rows


def test_record_files_replaces_rows_in_place_and_appends_new_ones(tmp_path):
    before = ("intro\n\n| path | bytes | sha256 | how it was made |\n| --- | ---: | --- | --- |\n"
              f"| data/a.txt | 9 | {SHA} | old |\n| data/other.bin | 5 | {SHA} | someone else's |\n\noutro\n")
    lines, _ = record_a_and_b(tmp_path, before)
    assert lines[:4] == before.splitlines()[:4] and lines[-2:] == ["", "outro"]
    assert lines[4] == f"| data/a.txt | 1 | {sha256(tmp_path / 'a.txt')} | new |"
    assert lines[5] == f"| data/other.bin | 5 | {SHA} | someone else's |"
    assert lines[6] == f"| data/b.txt | 2 | {sha256(tmp_path / 'b.txt')} | added |"


def test_record_files_follows_the_header_of_another_layout(tmp_path):
    before = ("| sha256 | path | bytes | how | licence |\n|---|---|--:|---|---|\n"
              f"| `{SHA}` | a.txt | 1,000 | old | MIT |\n\nAfter.\n")
    lines, rows = record_a_and_b(tmp_path, before)
    a, b = sha256(tmp_path / "a.txt"), sha256(tmp_path / "b.txt")
    assert lines == [
        *before.splitlines()[:2], f"| {a} | data/a.txt | 1 | new | MIT |", f"| {b} | data/b.txt | 2 | added |  |",
        "", "After."]
    assert rows == [DatasheetRow("data/a.txt", 1, a, "new"), DatasheetRow("data/b.txt", 2, b, "added")]
    assert DatasheetRow("data/a.txt", 1, a, "new").markdown() == f"| data/a.txt | 1 | {a} | new |"


def test_record_files_writes_nothing_when_the_new_table_would_not_parse(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    before = f"| path | bytes | sha256 | how |\n|---|---|---|---|\n| data/a.txt | 9 | {SHA} | old |\n"
    (tmp_path / "README.md").write_text(before)
    with pytest.raises(ValueError, match="datasheet line 3"):
        record_files({tmp_path / "a.txt": "a | b"}, tmp_path)  # a "|" in the text adds a cell
    assert (tmp_path / "README.md").read_text() == before


def test_write_corpus_needs_a_datasheet_before_writing_anything(tmp_path):
    with pytest.raises(ValueError, match="data_dir must hold a datasheet README.md"):
        write_corpus(tmp_path)
    (tmp_path / DATASHEET).write_text("no table\n")
    with pytest.raises(ValueError, match="no table whose header names path, bytes and sha256"):
        write_corpus(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [DATASHEET]


def test_sample_corpus_draws_the_shipped_split():
    assert sample_corpus("val") == load_corpus("val")


# --- where the data is ----------------------------------------------------------------------------


def test_the_data_folder_follows_course_data_dir_at_every_call(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert data_dir() == DATA_DIR and read_datasheet() == read_datasheet(DATA_DIR / DATASHEET)
    shipped = load_corpus("val")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))  # set after import: read at the call
    (tmp_path / SPLITS["val"]["file"]).write_text("Rozi lives in Pominport.\nVuna has a pet cat.\n", encoding="utf-8")
    assert data_dir() == tmp_path and data_file(SPLITS["val"]["file"]) == tmp_path / SPLITS["val"]["file"]
    assert load_corpus("val") == ["Rozi lives in Pominport.", "Vuna has a pet cat."]
    assert load_corpus("val", DATA_DIR) == shipped  # a folder given explicitly wins
    monkeypatch.setenv("COURSE_DATA_DIR", "")  # empty counts as not set
    assert data_dir() == DATA_DIR


def test_missing_data_is_a_file_not_found_error_that_names_the_path_the_variable_and_the_fix(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    fix = "Fix: set the environment variable COURSE_DATA_DIR to the data/ folder of a clone"
    monkeypatch.setenv("COURSE_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} does not exist (set by COURSE_DATA_DIR)")) as error:
        load_world()
    assert fix in str(error.value)
    monkeypatch.delenv("COURSE_DATA_DIR")
    monkeypatch.setattr(datasets, "DATA_DIR", missing)  # an install without the repository's data/ beside it
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} does not exist (the default; "
                                                          f"COURSE_DATA_DIR is not set)")) as error:
        load_corpus("train")
    assert fix in str(error.value)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))  # a folder without the file
    with pytest.raises(FileNotFoundError, match=re.escape(f"data file {tmp_path / SPLITS['train']['file']} "
                                                          "does not exist. Fix: set the environment variable "
                                                          "COURSE_DATA_DIR")):
        load_corpus("train")


# --- bad input --------------------------------------------------------------------------------------


def test_bad_input_raises(tmp_path):
    with pytest.raises(ValueError, match="split must be one of 'train', .*; got 'test'"):
        load_corpus("test")
    with pytest.raises(ValueError, match="without newlines"):
        corpus_text(["one\ntwo"])
    with pytest.raises(TypeError, match="documents must be strings, got bytes b'one'"):
        corpus_text(["zero", b"one"])
    with pytest.raises(ValueError, match="must not be empty"):
        optimal_loss([], load_generator())
    sheet = tmp_path / "README.md"
    sheet.write_text("no table here\n")
    with pytest.raises(ValueError, match="no table"):
        read_datasheet(sheet)
    sheet.write_text("| path | bytes | sha256 | how |\n| --- | --- | --- | --- |\n| data/x | many | abc | ? |\n")
    with pytest.raises(ValueError, match="line 3 needs an integer byte count"):
        read_datasheet(sheet)
    sheet.write_text("| path | bytes | sha256 | how |\n| --- | --- | --- | --- |\n| data/x | 1 |\n")
    with pytest.raises(ValueError, match="line 3 has 2 cells"):
        read_datasheet(sheet)
