"""Build the student edition of the notebooks, and never overwrite a learner's work while doing it.

The notebooks in `notebooks/` are the instructor edition. In a code cell, everything between a line
`### BEGIN SOLUTION` and a line `### END SOLUTION` is the solution (nbgrader's markers). The student
edition replaces it with a stub that names the exercise (from the `### Exercise N` heading above):

- inside a function, ``raise NotImplementedError("Exercise 2: write the body of replay_encode")``;
- at top level, ``first_pair = None`` for the name(s) the region's last assignment binds (the
  answer), under a comment naming the exercise. Top-level stubs do not raise, so "Run all" runs
  past an unfinished exercise; the check cell then reports it as not done yet.

Cells tagged `solution` (markdown answers to discussion questions: the instructor's key) are dropped,
the cell of 00 tagged `edition` is replaced by `STUDENT_EDITION_NOTE`, and every code cell after the
`## Exercises` heading, and every solution and check cell wherever it stands, loses its outputs.
nbgrader's `generate_assignment` applies the same `student_notebook` (see `nbgrader_plugin`).

Writing the edition (`build_student_edition`) keeps the learner's work: a manifest in the output
folder records the SHA-256 of every notebook the builder wrote, and a notebook whose bytes differ
from its record (edited, run and saved, or not written by the builder at all) is left untouched and
reported, unless `force`. The builder never writes into the source folder. `none_answer` gives the
tests a wrong answer to feed each check (every answer None). Left out: solutions in markdown cells
(discussion answers are whole cells tagged `solution`), and merging a learner's notebook with a
newer version of the lesson (delete it, rebuild, and copy your answers over).

Command line: ``python -m course_lib.tooling.student_edition OUT_DIR [--source notebooks] [--force]``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = [
    "BEGIN", "END", "STUB_COMMENT", "SOLUTION_TAG", "EDITION_TAG", "MANIFEST", "EXERCISES_HEADING",
    "EXERCISE_HEADING", "REPO_NOTEBOOKS", "STUDENT_EDITION_NOTE", "strip_solutions", "answer_names",
    "none_answer", "is_solution_cell", "has_tag", "exercises_start", "exercise_label", "Exercise",
    "find_exercises", "student_notebook", "notebook_bytes", "read_manifest", "BuildReport",
    "build_student_edition", "main",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB_COMMENT = "# YOUR CODE HERE"
SOLUTION_TAG = "solution"  # a markdown answer to a discussion question: dropped from the student edition
EDITION_TAG = "edition"  # the cell of 00 that says which edition the reader holds
MANIFEST = ".student_edition.json"
EXERCISES_HEADING = re.compile(r"^##\s+Exercises\s*$", re.MULTILINE)
EXERCISE_HEADING = re.compile(r"^###\s+(Exercise\s+\d+)\b", re.MULTILINE)
REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

STUDENT_EDITION_NOTE = """## This is the student edition

Each exercise's solution is replaced here by a stub: a function that raises `NotImplementedError`, or
a name set to `None`, under a comment `# YOUR CODE HERE` that names the exercise. Replace the stub by
your answer and run the check cell below it. A check says ✔ when the answer is right. Otherwise it
says what is wrong (the type, the shape, which case, which entries, too large or too small) and gives
a hint, never the answer; an exercise you have not done yet is reported as *not done yet*, and the
rest of the notebook still runs. Hints sit in the collapsed **Hint** blocks under the prompts: try
without them first.

Your work is safe. Rebuilding the student edition (`make student`) never overwrites a notebook you
changed; it says which ones it kept. `make clean` leaves this folder alone. To start a notebook
afresh, delete it and run `make student` again.

After you have tried an exercise, compare with the solution: it is in the notebook of the same name
in the repository's `notebooks/` folder, the instructor edition (in a workshop bundle, ask your
instructor). The instructor edition also holds the answers to the discussion questions."""


def _replace_solutions(source: str, replace: Callable[[list[str], str, int], list[str]]) -> str:
    """Replace each BEGIN/END SOLUTION region by ``replace(region_lines, indent, begin_line_number)``."""
    lines, out, region, indent, begin = source.split("\n"), [], None, "", 0
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if region is not None:
                raise ValueError(f"line {number}: {BEGIN!r} inside another solution region")
            region, indent, begin = [], line[: len(line) - len(line.lstrip())], number
        elif marker == END:
            if region is None:
                raise ValueError(f"line {number}: {END!r} without a matching {BEGIN!r}")
            out.extend(replace(region, indent, begin))
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"{BEGIN!r} without a matching {END!r}")
    return "\n".join(out)


def _enclosing_function(source: str, line_number: int) -> str:
    """The name of the innermost function whose body holds line `line_number` of `source`."""
    functions = [node for node in ast.walk(ast.parse(source))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.lineno < line_number <= (node.end_lineno or node.lineno)]
    if not functions:
        raise ValueError(f"line {line_number}: an indented solution region must lie in a function body")
    return max(functions, key=lambda node: node.lineno).name


def _target_names(target: ast.expr) -> list[str] | None:
    """The names an assignment target binds (``a``, ``a, b``), or None for ``x[0]``, ``x.y`` and the like."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        parts = [_target_names(element) for element in target.elts]
        return None if None in parts else [name for part in parts for name in part]
    return None


def _assigned_names(region: list[str], line_number: int) -> list[str]:
    """The names a top-level region's last assignment binds: the answer(s) its check reads."""
    assignments = [node for node in ast.parse(textwrap.dedent("\n".join(region))).body
                   if isinstance(node, (ast.Assign, ast.AnnAssign))]
    last = assignments[-1] if assignments else None
    names = [_target_names(t) for t in (last.targets if isinstance(last, ast.Assign) else [last.target])] \
        if last is not None else []
    if not names or None in names:
        raise ValueError(f"line {line_number}: a top-level solution region must assign the answer to a name "
                         f"(e.g. `first_pair = ...`) in its last assignment")
    return list(dict.fromkeys(name for group in names for name in group))


def strip_solutions(source: str, exercise: str = "This exercise") -> str:
    """Replace each BEGIN/END SOLUTION region of a code cell's source by the stub naming `exercise`."""
    def stub(region: list[str], indent: str, line_number: int) -> list[str]:
        if indent:
            message = f"{exercise}: write the body of {_enclosing_function(source, line_number)}"
            return [indent + STUB_COMMENT, f'{indent}raise NotImplementedError("{message}")']
        names = _assigned_names(region, line_number)
        return [f"{STUB_COMMENT} ({exercise}: assign {', '.join(names)})", " = ".join(names) + " = None"]
    return _replace_solutions(source, stub)


def answer_names(source: str) -> list[str]:
    """What a solution cell's regions define, in order: the function a region in a function body
    fills in, and the names a top-level region assigns last (the answers its check reads)."""
    found: list[str] = []

    def collect(region: list[str], indent: str, line_number: int) -> list[str]:
        found.extend([_enclosing_function(source, line_number)] if indent
                     else _assigned_names(region, line_number))
        return []
    _replace_solutions(source, collect)
    return found


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


def _none_region(region: list[str], indent: str, line_number: int) -> list[str]:
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
    """Whether `cell` is an exercise's solution cell: a code cell holding a solution region."""
    return cell["cell_type"] == "code" and BEGIN in cell["source"]


def has_tag(cell: dict, tag: str) -> bool:
    """Whether `cell` carries the cell tag `tag`."""
    return tag in cell.get("metadata", {}).get("tags", [])


def exercises_start(nb: nbformat.NotebookNode) -> int | None:
    """Index of the markdown cell holding the `## Exercises` heading, or None."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and EXERCISES_HEADING.search(cell.source):
            return index
    return None


def exercise_label(nb: nbformat.NotebookNode, index: int) -> str:
    """'Exercise N' from the nearest `### Exercise N` heading above cell `index` ('This exercise' if none)."""
    for cell in reversed(nb.cells[:index]):
        headings = EXERCISE_HEADING.findall(cell.source) if cell.cell_type == "markdown" else []
        if headings:
            return " ".join(headings[-1].split())
    return "This exercise"


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
    """A copy of `nb` as the student edition: solutions stubbed, `solution` cells dropped, the
    `edition` cell replaced, and the outputs of the exercise section cleared.

    Every solution cell and its check lose their outputs wherever they stand, so no answer is
    left in an output even without an `## Exercises` heading.
    """
    student = copy.deepcopy(nb)
    start = exercises_start(student)
    exercise_cells = {i for e in find_exercises(student) for i in (e.solution, e.check)}
    kept = []
    for index, cell in enumerate(student.cells):
        if has_tag(cell, SOLUTION_TAG):
            continue
        if has_tag(cell, EDITION_TAG):
            cell.source = STUDENT_EDITION_NOTE
        if cell.cell_type == "code":
            if is_solution_cell(cell):
                cell.source = strip_solutions(cell.source, exercise_label(nb, index))
            if index in exercise_cells or (start is not None and index > start):
                cell.outputs, cell.execution_count = [], None
        kept.append(cell)
    student.cells = kept
    return student


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_bytes(nb: nbformat.NotebookNode) -> bytes:
    """The bytes `nbformat.write` would save, so a hash of them equals the hash of the file."""
    text = nbformat.writes(nb)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def read_manifest(out_dir: Path) -> dict[str, str]:
    """{notebook file name: SHA-256 of the bytes the builder wrote}; empty if there is no manifest."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        notebooks = json.loads(path.read_text(encoding="utf-8"))["notebooks"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a student-edition manifest ({error}); move it away and rebuild") from None
    if not (isinstance(notebooks, dict) and all(isinstance(v, str) for v in notebooks.values())):
        raise ValueError(f"{path} is not a student-edition manifest; move it away and rebuild")
    return notebooks


@dataclass
class BuildReport:
    """What a build did, by notebook: written (new or updated), already up to date, or kept (changed by
    the learner, or not written by the builder, so left untouched)."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"wrote {len(self.written)} notebooks, {len(self.unchanged)} already up to date"]
        if self.kept:
            names = ", ".join(p.name for p in self.kept)
            lines.append(f"kept {len(self.kept)} you changed, untouched: {names}\n"
                         f"(delete one and rebuild to get the current version, or rebuild with --force "
                         f"to overwrite them all)")
        return "\n".join(lines)


def build_student_edition(out_dir: str | Path, source: str | Path = REPO_NOTEBOOKS, *,
                          force: bool = False) -> BuildReport:
    """Write the student edition of every notebook in `source` into `out_dir`, keeping the learner's work.

    A notebook already in `out_dir` is replaced only if its bytes still equal what the builder
    last wrote there (recorded in `out_dir`'s manifest); otherwise it is kept and listed in the
    report's `kept`. force: overwrite those too. Refuses an `out_dir` that is, or lies inside, the
    source folder or the course's `notebooks/`.
    """
    out_dir, source = Path(out_dir), Path(source)
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, got {type(force).__name__}")
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
    manifest, report = read_manifest(out_dir), BuildReport()
    for path in paths:
        data = notebook_bytes(student_notebook(nbformat.read(path, as_version=4)))
        target = out_dir / path.name
        if target.exists():
            current = _sha256(target.read_bytes())
            if current == _sha256(data):
                manifest[path.name] = current
                report.unchanged.append(target)
                continue
            if current != manifest.get(path.name) and not force:
                report.kept.append(target)
                continue
        target.write_bytes(data)
        manifest[path.name] = _sha256(data)
        report.written.append(target)
    (out_dir / MANIFEST).write_text(json.dumps({"notebooks": dict(sorted(manifest.items()))}, indent=1) + "\n",
                                    encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the student edition of the course notebooks. "
                                                 "Notebooks you changed there are kept.")
    parser.add_argument("out_dir", help="folder to write into (never notebooks/)")
    parser.add_argument("--source", default=str(REPO_NOTEBOOKS), help="instructor notebooks folder")
    parser.add_argument("--force", action="store_true", help="also overwrite notebooks you changed")
    args = parser.parse_args(argv)
    try:
        report = build_student_edition(args.out_dir, args.source, force=args.force)
    except ValueError as error:
        parser.error(str(error))
    print(f"{args.out_dir}: {report.summary()}")


if __name__ == "__main__":
    main()
