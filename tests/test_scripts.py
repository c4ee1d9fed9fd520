"""The scripts behind `make notebooks` and `make benchmark`: which notebooks they run and write."""

from __future__ import annotations

import sys

import nbformat
import pytest
from conftest import NOTEBOOKS, load_script
from nbclient.exceptions import CellExecutionError

run_notebooks = load_script("run_notebooks")


def test_clean_metadata_keeps_only_the_kernel_and_cell_tags_and_nbgrader_roles():
    nb = nbformat.v4.new_notebook()
    nb.metadata = nbformat.from_dict({"kernelspec": {"name": "odd", "display_name": "Odd"},
                                      "language_info": {"name": "python"}, "widgets": {"state": {}},
                                      "toc": {"x": 1}})
    tagged = nbformat.v4.new_code_cell("1", metadata={"tags": ["answer"], "scrolled": True})
    plain = nbformat.v4.new_markdown_cell("x", metadata={"collapsed": True, "tags": []})
    role = {"grade": True, "grade_id": "exercise-1-check", "locked": True, "points": 1}
    graded = nbformat.v4.new_code_cell("check()", metadata={"nbgrader": role, "editable": False})
    nb.cells = [tagged, plain, graded]
    run_notebooks.clean_metadata(nb)
    assert set(nb.metadata) == set(run_notebooks.KEEP_METADATA)
    assert nb.metadata.kernelspec == {"display_name": "Python 3", "language": "python", "name": "python3"}
    assert nb.metadata.language_info == {"name": "python"}
    assert tagged.metadata == {"tags": ["answer"]} and plain.metadata == {} and graded.metadata == {"nbgrader": role}


def test_a_failing_exercise_check_stops_the_runner(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    path = tmp_path / "x.ipynb"
    cells = [nbformat.v4.new_code_cell("from course_lib.notebook.checks import check_value\nanswer = 2"),
             nbformat.v4.new_code_cell("check_value('answer', 3, exercise='Exercise 1')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    with pytest.raises(CellExecutionError, match="Exercise 1: answer is too small"):
        run_notebooks.execute(path)


def test_a_bare_name_is_in_notebooks_and_a_path_is_taken_as_given(tmp_path):
    assert run_notebooks.notebook_path("21_softmax.ipynb") == NOTEBOOKS / "21_softmax.ipynb"
    elsewhere = tmp_path / "student" / "21_softmax.ipynb"
    assert run_notebooks.notebook_path(str(elsewhere)) == elsewhere


def test_write_refuses_notebooks_outside_the_notebooks_folder(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "21_softmax.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), elsewhere)
    monkeypatch.setattr(run_notebooks, "execute", lambda path: pytest.fail(f"executed {path}"))
    with pytest.raises(SystemExit):
        run_notebooks.main(["--write", str(elsewhere)])
    assert "--write only saves notebooks in" in capsys.readouterr().err


def test_bench_tokenizer_rejects_zero_naive_merges(monkeypatch, capsys):
    bench_tokenizer = load_script("bench_tokenizer")
    monkeypatch.setattr(sys, "argv", ["bench_tokenizer.py", "--naive-merges", "0"])
    monkeypatch.setattr(bench_tokenizer, "course_corpus", lambda chars: pytest.fail("benchmark ran"))
    with pytest.raises(SystemExit):
        bench_tokenizer.main()
    assert "--naive-merges must be >= 1, got 0" in capsys.readouterr().err


def test_bench_adaptive_softmax_runs_on_a_tiny_vocabulary(capsys):
    bench = load_script("bench_adaptive_softmax")
    bench.main(["--repeats", "1", "--threads", "1", "--tokens", "32", "--in-features", "16",
                "--n-classes", "60", "--cutoffs", "5", "20"])
    out = capsys.readouterr().out
    for line in ("loss (forward, no grad)", "training step (fwd + bwd)", "log_prob (all classes)",
                 "full softmax", "adaptive, expected", "adaptive, measured on batch"):
        assert line in out
    with pytest.raises(SystemExit):
        bench.main(["--tokens", "0"])
    assert "--repeats and --tokens must be >= 1" in capsys.readouterr().err


def test_bench_retrieval_runs_on_a_few_chunks(capsys):
    bench = load_script("bench_retrieval")
    bench.main(["--chunks", "50", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "index: 50 chunks of 12 words (overlap 4)" in out
    for line in ("scores, sparse:", "top 10, sparse:", "scores, dense (N, V) matrix:", "queries/s"):
        assert line in out
    with pytest.raises(SystemExit):
        bench.main(["--overlap", "12"])
    assert "--overlap in [0, size)" in capsys.readouterr().err


def test_bench_ngram_runs_on_a_few_documents(capsys):
    bench = load_script("bench_ngram")
    bench.main(["--documents", "40", "--orders", "1", "2", "--repeats", "1", "--compare", "--sizes", "20"])
    out = capsys.readouterr().out
    assert "train split: 40 documents" in out
    for line in ("words           2", "characters      1", "tiny GPT (card): ratio 1.013",
                 "words: model nats / exact nats", "characters: model nats / exact nats"):
        assert line in out
    with pytest.raises(SystemExit):
        bench.main(["--orders", "0"])
    assert "--orders, --sizes, --repeats and --documents must be >= 1" in capsys.readouterr().err
