"""nbgrader cell metadata for the course notebooks, written by one command.

    python -m course_lib.tooling.grading notebooks/                    # every notebook, in place
    python -m course_lib.tooling.grading --check notebooks/21_softmax.ipynb   # exit 1 if out of date

Each cell gets the role nbgrader needs to generate and autograde the notebooks:

- an exercise's solution cell (it holds the solution markers) is a solution cell:
  ``solution: true``, grade_id ``exercise-N-solution``;
- the check cell after it is an autograded test: ``grade: true``, ``points`` (1 unless the cell
  already has points), locked, grade_id ``exercise-N-check``;
- every other cell is read-only: ``locked: true``, grade_id ``cell-<the cell's id>``; nbgrader
  restores locked cells from the instructor's version when it autogrades;
- cells tagged `solution` (the instructor's answers to discussion questions, dropped from the
  student edition) carry no nbgrader metadata.

The function is idempotent: the notebooks in `notebooks/` must equal what it writes (a test says
so), and `scripts/run_notebooks.py` keeps the metadata when it re-records a notebook. Left out:
manually graded answers and nbgrader tasks (no exercise is graded by hand).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from course_lib.tooling.student_edition import SOLUTION_TAG, find_exercises, has_tag

__all__ = ["SCHEMA_VERSION", "DEFAULT_POINTS", "nbgrader_metadata", "add_nbgrader_metadata", "main"]

SCHEMA_VERSION = 3
DEFAULT_POINTS = 1


def _metadata(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = True,
              points: float | None = None) -> dict:
    metadata = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
                "solution": solution, "task": False}
    if grade:
        metadata["points"] = points
    return metadata


def nbgrader_metadata(nb: nbformat.NotebookNode) -> list[dict | None]:
    """The nbgrader metadata every cell of `nb` should carry, in order (None: no nbgrader metadata)."""
    roles: dict[int, dict] = {}
    for number, exercise in enumerate(find_exercises(nb), start=1):
        roles[exercise.solution] = _metadata(f"exercise-{number}-solution", solution=True, locked=False)
        old = nb.cells[exercise.check].metadata.get("nbgrader", {}).get("points")
        points = old if isinstance(old, (int, float)) and not isinstance(old, bool) and old > 0 else DEFAULT_POINTS
        roles[exercise.check] = _metadata(f"exercise-{number}-check", grade=True, points=points)
    wanted = []
    for index, cell in enumerate(nb.cells):
        if has_tag(cell, SOLUTION_TAG):
            wanted.append(None)
        elif index in roles:
            wanted.append(roles[index])
        else:
            if not cell.get("id"):
                raise ValueError(f"cell {index} has no id: save the notebook with nbformat >= 4.5")
            wanted.append(_metadata(f"cell-{cell.id}"))
    return wanted


def add_nbgrader_metadata(nb: nbformat.NotebookNode) -> bool:
    """Give every cell of `nb` its nbgrader metadata, in place; True if anything changed."""
    changed = False
    for cell, metadata in zip(nb.cells, nbgrader_metadata(nb), strict=True):
        if metadata is None and "nbgrader" in cell.metadata:
            del cell.metadata["nbgrader"]
            changed = True
        elif metadata is not None and cell.metadata.get("nbgrader") != metadata:
            cell.metadata["nbgrader"] = nbformat.from_dict(metadata)
            changed = True
    return changed


def _notebooks(paths: list[str]) -> list[Path]:
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(path.glob("*.ipynb")))
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise ValueError(f"paths must be notebooks or folders of notebooks, got {name!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the nbgrader cell metadata of the course notebooks.")
    parser.add_argument("paths", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    try:
        paths = _notebooks(args.paths)
    except ValueError as error:
        parser.error(str(error))
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if add_nbgrader_metadata(nb):
            stale.append(path)
            if not args.check:
                nbformat.write(nb, path)
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} of {len(paths)} notebooks {verb}" + "".join(f"\n  {p}" for p in stale))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
