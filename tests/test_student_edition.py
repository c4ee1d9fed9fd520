"""The student edition: the builder's rules, and proof that every exercise check can fail.

For each notebook, the test builds the student edition, then runs the lesson in one kernel; at each
exercise it runs the student's stub and the check (which must fail), then the instructor's solution
and the check (which must pass). A check that passes on the stub is a check that cannot fail.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS, numbered_notebook_paths, read_notebook
from jupyter_client.manager import start_new_kernel

from course_lib.tooling.student_edition import (
    build_student_edition,
    exercises_start,
    find_exercises,
    none_answer,
    strip_solutions,
    student_notebook,
)

CELL_TIMEOUT = 300


def test_strip_solutions_keeps_indentation_and_surroundings():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ny = 1"
    assert strip_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\ny = 1")


def test_strip_solutions_handles_several_regions():
    source = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n### BEGIN SOLUTION\nc = 3\n### END SOLUTION"
    stub = "# YOUR CODE HERE\nraise NotImplementedError()"
    assert strip_solutions(source) == f"{stub}\nb = 2\n{stub}"


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_strip_solutions_rejects_unbalanced_markers(source):
    with pytest.raises(ValueError, match="SOLUTION"):
        strip_solutions(source)


@pytest.mark.parametrize("target", [NOTEBOOKS, NOTEBOOKS / "student", NOTEBOOKS / "a" / "b"])
def test_builder_refuses_to_write_into_notebooks(target, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in NOTEBOOKS.rglob("*")}
    with pytest.raises(ValueError, match="out_dir must lie outside"):
        build_student_edition(target)
    assert {p: p.stat().st_mtime_ns for p in NOTEBOOKS.rglob("*")} == before
    assert not (NOTEBOOKS / "student").exists()


def test_builder_writes_every_notebook_with_stubs_and_cleared_exercise_outputs(tmp_path):
    written = build_student_edition(tmp_path / "student")
    assert sorted(p.name for p in written) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for path in written:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
        instructor = read_notebook(NOTEBOOKS / path.name)
        for exercise in find_exercises(instructor):
            assert "raise NotImplementedError()" in nb.cells[exercise.solution].source
            for index in (exercise.solution, exercise.check):
                assert nb.cells[index].outputs == [] and nb.cells[index].execution_count is None
        start = exercises_start(instructor)
        for index, cell in enumerate(instructor.cells[:start]):  # the lesson keeps its outputs
            if cell.cell_type == "code":
                assert nb.cells[index].outputs == cell.outputs


def test_solution_outputs_are_cleared_even_without_an_exercises_heading():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="lesson")]),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\nanswer",
                                  outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "42"})]),
        nbformat.v4.new_code_cell("check_equal(answer, 42)", outputs=[nbformat.v4.new_output("stream", text="ok")]),
    ])
    student = student_notebook(nb)
    assert student.cells[0].outputs == nb.cells[0].outputs
    assert student.cells[1].outputs == [] and student.cells[2].outputs == []
    assert nb.cells[1].outputs  # the instructor notebook is not modified


def test_none_answer_returns_none_inside_functions_and_binds_top_level_names_to_none():
    inside = "def f(x):\n    ### BEGIN SOLUTION\n    y = 2 * x\n    return y\n    ### END SOLUTION\n"
    assert none_answer(inside) == "def f(x):\n    return None\n"
    top = ("### BEGIN SOLUTION\ndef g(a):\n    return a\nanswer = 41\ncounts = {}\nfor w in words:\n"
           "    counts[w] = counts.get(w, 0) + 1\nmodel = model.double()\n### END SOLUTION\nprint(answer)")
    namespace = {"words": ["a", "b"], "model": "kept"}
    exec(none_answer(top).replace("print(answer)", ""), namespace)
    assert namespace["g"](1) is None and namespace["answer"] is None and namespace["counts"] is None
    assert namespace["model"] == "kept"  # read before it is written: left for the solution to use


class Kernel:
    """A kernel running in the notebooks' folder; `run` returns (status, error name)."""

    def __init__(self, cwd: Path) -> None:
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, source: str) -> tuple[str, str | None]:
        reply = self.client.execute_interactive(source, timeout=CELL_TIMEOUT, output_hook=lambda msg: None)
        content = reply["content"]
        return content["status"], content.get("ename")

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", numbered_notebook_paths(), ids=lambda p: p.name)
def test_every_check_fails_on_the_stub_and_on_none_and_passes_on_the_solution(path: Path):
    instructor = read_notebook(path)
    student = student_notebook(instructor)
    exercises = {e.solution: e for e in find_exercises(instructor)}
    checks = {e.check for e in exercises.values()}
    assert exercises, f"{path.name} has no exercises"
    kernel = Kernel(path.parent)
    try:
        for index, cell in enumerate(instructor.cells):
            if cell.cell_type != "code" or index in checks:
                continue
            if index not in exercises:
                status, error = kernel.run(cell.source)
                assert status == "ok", f"lesson cell {index} failed ({error}): {cell.source[:80]!r}"
                continue
            check = instructor.cells[exercises[index].check].source
            kernel.run(student.cells[index].source)  # the stub may raise NotImplementedError itself
            status, error = kernel.run(check)
            assert status == "error", f"cell {index}: the check passes on the student stub:\n{check}"
            status, error = kernel.run(none_answer(cell.source))  # code after the answer may fail on None
            assert error != "SyntaxError", f"cell {index}: none_answer cannot rewrite this solution"
            status, error = kernel.run(check)
            assert status == "error", f"cell {index}: the check accepts None as the answer:\n{check}"
            status, error = kernel.run(cell.source)
            assert status == "ok", f"cell {index}: the solution raises {error}"
            status, error = kernel.run(check)
            assert status == "ok", f"cell {index}: the check fails on the solution ({error}):\n{check}"
    finally:
        kernel.close()
