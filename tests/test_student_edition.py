"""The student edition: the builder's rules, and proof that every exercise check can fail.

For each notebook, the test builds the student edition, then runs the lesson in one kernel; at each
exercise it runs the student's stub and the check (which must fail), then the instructor's solution
and the check (which must pass). A check that passes on the stub is a check that cannot fail.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from conftest import NOTEBOOKS, numbered_notebook_paths, read_notebook
from course_lib.student_edition import (
    build_student_edition, find_exercises, strip_solutions, student_notebook)

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
        for exercise in find_exercises(read_notebook(NOTEBOOKS / path.name)):
            assert "raise NotImplementedError()" in nb.cells[exercise.solution].source
            assert nb.cells[exercise.check].outputs == []


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
def test_every_check_fails_on_the_stub_and_passes_on_the_solution(path: Path):
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
            status, error = kernel.run(cell.source)
            assert status == "ok", f"cell {index}: the solution raises {error}"
            status, error = kernel.run(check)
            assert status == "ok", f"cell {index}: the check fails on the solution ({error}):\n{check}"
    finally:
        kernel.close()
