"""Real nbgrader on the whole notebooks folder, configured by the repository's nbgrader_config.py.

`nbgrader generate_assignment` must write exactly the student edition (apart from the metadata
nbgrader adds), and `nbgrader autograde` must give the instructor edition full marks and the
student edition's stubs 0 on every exercise. Needs the `instructor` extra; skipped without it,
except where COURSE_REQUIRE_NBGRADER=1 (CI), where a missing nbgrader fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS, REPO, notebook_paths, read_notebook

from course_lib.tooling.student_edition import build_student_edition, find_exercises

pytestmark = pytest.mark.nbgrader
ASSIGNMENT = "notebooks"
STUDENTS = ("instructor", "stub")  # submitted: the instructor edition, and the release as handed out


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course folder where nbgrader generated the release and autograded both submissions."""
    if importlib.util.find_spec("nbgrader") is None:
        if os.environ.get("COURSE_REQUIRE_NBGRADER") == "1":
            pytest.fail("nbgrader is not installed: pip install -e '.[instructor]' (make setup-instructor)")
        pytest.skip("nbgrader is not installed (the instructor extra)")
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(NOTEBOOKS, root / ASSIGNMENT)
    shutil.copy(REPO / "nbgrader_config.py", root)
    env = os.environ | {  # nbgrader runs alembic from the environment's bin folder; the course from REPO
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }

    def nbgrader(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"

    nbgrader("generate_assignment", ASSIGNMENT, "--force")
    shutil.copytree(root / ASSIGNMENT, root / "submitted" / "instructor" / ASSIGNMENT)
    shutil.copytree(root / "release" / ASSIGNMENT, root / "submitted" / "stub" / ASSIGNMENT)
    nbgrader("autograde", ASSIGNMENT, "--create", "--force")
    return root


def cells(nb: nbformat.NotebookNode) -> list[tuple]:
    """What a reader sees of a notebook: every cell's id, type, source and outputs (not its metadata)."""
    return [(c.get("id"), c.cell_type, c.source, c.get("outputs"), c.get("execution_count")) for c in nb.cells]


def test_the_release_is_the_student_edition(course: Path, tmp_path):
    student = build_student_edition(tmp_path / "student").written
    released = sorted((course / "release" / ASSIGNMENT).glob("*.ipynb"))
    assert [p.name for p in released] == sorted(p.name for p in student)
    for path in student:
        assert cells(read_notebook(course / "release" / ASSIGNMENT / path.name)) == cells(read_notebook(path)), \
            f"nbgrader's release of {path.name} differs from the student edition"


def test_autograde_gives_the_instructor_full_marks_and_each_stub_zero(course: Path):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for path in notebook_paths():
            exercises = find_exercises(read_notebook(path))
            notebook = gradebook.find_notebook(path.stem, ASSIGNMENT)
            assert len(notebook.grade_cells) == len(exercises), f"{path.name}: one graded check per exercise"
            for cell in notebook.grade_cells:
                for student, wanted in zip(STUDENTS, (cell.max_score, 0), strict=True):
                    grade = gradebook.find_grade(cell.name, path.stem, ASSIGNMENT, student)
                    assert grade.score == wanted, (f"{path.name} {cell.name}: the {student} submission scored "
                                                   f"{grade.score} of {cell.max_score}, expected {wanted}")
