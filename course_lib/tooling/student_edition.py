"""Build the student edition of the notebooks: solutions replaced by stubs, exercise outputs cleared.

The notebooks in `notebooks/` are the instructor edition. In a code cell, everything between a line
`### BEGIN SOLUTION` and a line `### END SOLUTION` is the solution; the student edition replaces it
with `# YOUR CODE HERE` and `raise NotImplementedError()` at the same indentation. This is nbgrader's
convention, so `nbgrader generate_assignment --no-db --no-metadata` treats the same cells the same
way. Every code cell after the `## Exercises` heading, and every solution and check cell wherever
it stands, loses its outputs. The builder never writes into the source folder. `none_answer` gives
the tests a wrong answer to feed each check (every answer None). Left out: markdown solutions,
grading, and nbgrader's cell metadata.

Command line: ``python -m course_lib.tooling.student_edition OUT_DIR [--source notebooks]``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = [
    "BEGIN", "END", "STUB", "EXERCISES_HEADING", "REPO_NOTEBOOKS", "strip_solutions", "none_answer",
    "is_solution_cell", "exercises_start", "Exercise", "find_exercises", "student_notebook",
    "build_student_edition", "main",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
EXERCISES_HEADING = re.compile(r"^##\s+Exercises\s*$", re.MULTILINE)
REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _replace_solutions(source: str, replace: Callable[[list[str], str], list[str]]) -> str:
    """Replace each BEGIN/END SOLUTION region by ``replace(region_lines, indent)``."""
    lines, out, region, indent = source.split("\n"), [], None, ""
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if region is not None:
                raise ValueError(f"line {number}: {BEGIN!r} inside another solution region")
            region, indent = [], line[: len(line) - len(line.lstrip())]
        elif marker == END:
            if region is None:
                raise ValueError(f"line {number}: {END!r} without a matching {BEGIN!r}")
            out.extend(replace(region, indent))
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"{BEGIN!r} without a matching {END!r}")
    return "\n".join(out)


def strip_solutions(source: str) -> str:
    """Replace each BEGIN/END SOLUTION region of a code cell's source by the stub."""
    return _replace_solutions(source, lambda region, indent: [indent + line for line in STUB])


def _first_stored_names(tree: ast.Module) -> tuple[list[str], list[str]]:
    """Names a region defines (functions, and variables first written, not read, in it), in order."""
    functions, variables, seen = [], [], set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            functions.append(node.name)
            seen.add(node.name)
            continue
        for name in _names_in_evaluation_order(node):
            if name.id not in seen:
                seen.add(name.id)
                if isinstance(name.ctx, ast.Store) and not isinstance(node, ast.AugAssign):
                    variables.append(name.id)
    return functions, variables


def _names_in_evaluation_order(node: ast.stmt) -> list[ast.Name]:
    """The names of one statement, an assignment's value before its targets, else in source order."""
    def names(part: ast.AST | None) -> list[ast.Name]:
        found = [n for n in ast.walk(part) if isinstance(n, ast.Name)] if part is not None else []
        return sorted(found, key=lambda n: (n.lineno, n.col_offset))
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return names(node.value) + [n for t in targets for n in names(t)]
    return names(node)


def _none_region(region: list[str], indent: str) -> list[str]:
    """A wrong answer for one region: inside a function ``return None``; at top level every name the
    solution defines is bound to None (a function to one that returns None)."""
    if indent:
        return [indent + "return None"]
    functions, variables = _first_stored_names(ast.parse(textwrap.dedent("\n".join(region))))
    return ([f"def {name}(*args, **kwargs):\n    return None" for name in functions]
            + [f"{name} = None" for name in variables])


def none_answer(source: str) -> str:
    """The solution cell with every answer replaced by None: what a check must also reject.

    The student stub proves a check fails when nothing is answered; this proves it fails on a wrong
    answer too (a check such as ``check_true(x == x)`` passes it). Used by the tests; left out:
    solutions inside class bodies or nested blocks of a top-level statement other than a function.
    """
    return _replace_solutions(source, _none_region)


def is_solution_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and BEGIN in cell["source"]


def exercises_start(nb: nbformat.NotebookNode) -> int | None:
    """Index of the markdown cell holding the `## Exercises` heading, or None."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and EXERCISES_HEADING.search(cell.source):
            return index
    return None


@dataclass(frozen=True)
class Exercise:
    """Positions of one exercise's solution cell and of the check cell that follows it."""

    solution: int
    check: int


def find_exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """Pair every solution cell with the next code cell, its check."""
    exercises = []
    for index, cell in enumerate(nb.cells):
        if not is_solution_cell(cell):
            continue
        following = [j for j in range(index + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"]
        if not following or is_solution_cell(nb.cells[following[0]]):
            raise ValueError(f"cell {index} holds a solution but no check cell follows it")
        exercises.append(Exercise(solution=index, check=following[0]))
    return exercises


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with solutions stubbed and the outputs of the exercise section cleared.

    Every solution cell and its check lose their outputs wherever they stand, so no answer is
    left in an output even without an `## Exercises` heading.
    """
    student = copy.deepcopy(nb)
    start = exercises_start(student)
    exercise_cells = {i for e in find_exercises(student) for i in (e.solution, e.check)}
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        if is_solution_cell(cell):
            cell.source = strip_solutions(cell.source)
        if index in exercise_cells or (start is not None and index > start):
            cell.outputs, cell.execution_count = [], None
    return student


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def build_student_edition(out_dir: str | Path, source: str | Path = REPO_NOTEBOOKS) -> list[Path]:
    """Write the student edition of every notebook in `source` into `out_dir`; returns the paths.

    Refuses an `out_dir` that is, or lies inside, the source folder or the course's `notebooks/`.
    """
    out_dir, source = Path(out_dir), Path(source)
    if not source.is_dir():
        raise ValueError(f"source must be a folder of notebooks, got {str(source)!r}")
    for protected in {source, REPO_NOTEBOOKS}:
        if _inside(out_dir, protected):
            raise ValueError(f"out_dir must lie outside {str(protected)!r} (the instructor edition), "
                             f"got {str(out_dir)!r}")
    paths = sorted(source.glob("*.ipynb"))
    if not paths:
        raise ValueError(f"no notebooks found in {str(source)!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the student edition of the course notebooks.")
    parser.add_argument("out_dir", help="folder to write into (never notebooks/)")
    parser.add_argument("--source", default=str(REPO_NOTEBOOKS), help="instructor notebooks folder")
    args = parser.parse_args(argv)
    try:
        written = build_student_edition(args.out_dir, args.source)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {len(written)} notebooks to {args.out_dir}")


if __name__ == "__main__":
    main()
