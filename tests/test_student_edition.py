"""The student edition: the builder's rules, a learner's work kept, and proof that every check judges.

For each notebook, the proof builds the student edition, then runs the lesson in one kernel with
failing checks raising (COURSE_CHECKS=raise). At each exercise it runs the check on the student's
stub, on every answer set to None, on the instructor's solution (which must pass) and, in notebooks
that follow the exercise conventions (no old check helpers), on a changed answer: those must fail,
the stub and None with "not done yet", and nothing they print may show the reference answer (the
values the check compared with, and the solution's answers).
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from decimal import Decimal
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS, REPO, numbered_notebook_paths, read_notebook, uses_new_checks
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from course_lib.tooling import student_edition
from course_lib.tooling.student_edition import (
    EDITION_TAG,
    MANIFEST,
    SOLUTION_TAG,
    STUDENT_EDITION_NOTE,
    answer_names,
    build_student_edition,
    exercises_start,
    find_exercises,
    has_tag,
    none_answer,
    strip_solutions,
    student_notebook,
)

CELL_TIMEOUT = 300


def test_strip_solutions_stubs_a_function_body_with_a_message_naming_the_exercise():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ny = 1"
    assert strip_solutions(source, "Exercise 2") == (
        'def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError("Exercise 2: write the body of f")\n\ny = 1')


def test_strip_solutions_sets_a_top_level_answer_to_none_without_raising():
    source = ("text = 'ab'\n### BEGIN SOLUTION\ncounts = {}\nlow, high = 1, 2\nprint(low)\n### END SOLUTION\n"
              "### BEGIN SOLUTION\nbest: int = 3\n### END SOLUTION")
    stubbed = strip_solutions(source, "Exercise 1")
    assert stubbed == ("text = 'ab'\n# YOUR CODE HERE (Exercise 1: assign low, high)\nlow = high = None\n"
                       "# YOUR CODE HERE (Exercise 1: assign best)\nbest = None")
    namespace = {}
    exec(stubbed, namespace)  # runs: "Run all" goes on past an unfinished exercise
    assert namespace["low"] is None and namespace["best"] is None
    assert answer_names(source) == ["low", "high", "best"]


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nprint(1)\n### END SOLUTION", "must assign the answer to a name"),
    ("### BEGIN SOLUTION\nx[0] = 1\n### END SOLUTION", "must assign the answer to a name"),
    ("for i in range(2):\n    ### BEGIN SOLUTION\n    x = i\n    ### END SOLUTION", "must lie in a function body"),
])
def test_strip_solutions_refuses_regions_it_cannot_stub(source, problem):
    with pytest.raises(ValueError, match=problem):
        strip_solutions(source)


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
    report = build_student_edition(tmp_path / "student")
    written = report.written
    assert sorted(p.name for p in written) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert not report.kept and not report.unchanged
    for path in written:
        nb = nbformat.read(path, as_version=4)
        by_id = {cell.id: cell for cell in nb.cells}
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
        instructor = read_notebook(NOTEBOOKS / path.name)
        for exercise in find_exercises(instructor):
            solution = by_id[instructor.cells[exercise.solution].id]
            assert "# YOUR CODE HERE" in solution.source and "Exercise " in solution.source
            for index in (exercise.solution, exercise.check):
                cell = by_id[instructor.cells[index].id]
                assert cell.outputs == [] and cell.execution_count is None
        dropped = {c.id for c in instructor.cells if has_tag(c, SOLUTION_TAG)}
        assert dropped.isdisjoint(by_id), f"{path.name}: a cell tagged {SOLUTION_TAG!r} is in the student edition"
        assert len(nb.cells) == len(instructor.cells) - len(dropped)
        start = exercises_start(instructor)
        for cell in instructor.cells[:start]:  # the lesson keeps its outputs
            if cell.cell_type == "code":
                assert by_id[cell.id].outputs == cell.outputs
    start_here = nbformat.read(tmp_path / "student" / "00_start_here.ipynb", as_version=4)
    assert [c.source for c in start_here.cells if has_tag(c, EDITION_TAG)] == [STUDENT_EDITION_NOTE]


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
    assert "This exercise: assign answer" in student.cells[1].source
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


# A learner's work survives a rebuild.

def small_course(folder: Path, answer: str = "2 * x") -> Path:
    """A source folder with two tiny instructor notebooks."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("01_a.ipynb", "02_b.ipynb"):
        cells = [nbformat.v4.new_markdown_cell("### Exercise 1 · Double"),
                 nbformat.v4.new_code_cell(f"def f(x):\n    ### BEGIN SOLUTION\n    return {answer}\n"
                                           f"    ### END SOLUTION"),
                 nbformat.v4.new_code_cell("check_function('f', lambda x: 2 * x, [(1,)], exercise='Exercise 1')")]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / name)
    return folder


def learner_edits(path: Path) -> bytes:
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "def f(x):\n    return x + x  # my answer"
    nbformat.write(nb, path)
    return path.read_bytes()


def test_rebuilding_keeps_a_notebook_the_learner_changed(tmp_path):
    source, out = small_course(tmp_path / "notebooks"), tmp_path / "student"
    first = build_student_edition(out, source)
    assert [p.name for p in first.written] == ["01_a.ipynb", "02_b.ipynb"]
    mine = learner_edits(out / "01_a.ipynb")
    again = build_student_edition(out, source)
    assert [p.name for p in again.kept] == ["01_a.ipynb"] and [p.name for p in again.unchanged] == ["02_b.ipynb"]
    assert (out / "01_a.ipynb").read_bytes() == mine
    assert "kept 1 you changed, untouched: 01_a.ipynb" in again.summary()
    small_course(source, answer="x + x")  # the lesson changes: the untouched notebook is updated
    updated = build_student_edition(out, source)
    assert [p.name for p in updated.written] == ["02_b.ipynb"] and (out / "01_a.ipynb").read_bytes() == mine
    forced = build_student_edition(out, source, force=True)
    assert [p.name for p in forced.written] == ["01_a.ipynb"] and (out / "01_a.ipynb").read_bytes() != mine
    manifest = json.loads((out / MANIFEST).read_text())["notebooks"]
    assert set(manifest) == {"01_a.ipynb", "02_b.ipynb"}


def test_a_notebook_the_builder_did_not_write_is_kept(tmp_path):
    source, out = small_course(tmp_path / "notebooks"), tmp_path / "student"
    out.mkdir()
    (out / "01_a.ipynb").write_text("a learner's own notebook, from before manifests")
    report = build_student_edition(out, source)
    assert [p.name for p in report.kept] == ["01_a.ipynb"]
    assert (out / "01_a.ipynb").read_text() == "a learner's own notebook, from before manifests"


def test_a_broken_manifest_stops_the_build(tmp_path):
    source, out = small_course(tmp_path / "notebooks"), tmp_path / "student"
    out.mkdir()
    (out / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a student-edition manifest"):
        build_student_edition(out, source)


def test_the_command_line_reports_what_it_kept(tmp_path, capsys):
    source, out = small_course(tmp_path / "notebooks"), tmp_path / "student"
    student_edition.main([str(out), "--source", str(source)])
    learner_edits(out / "02_b.ipynb")
    student_edition.main([str(out), "--source", str(source)])
    printed = capsys.readouterr().out
    assert "wrote 2 notebooks, 0 already up to date" in printed
    assert "kept 1 you changed, untouched: 02_b.ipynb" in printed and "--force" in printed


def test_make_clean_never_deletes_the_student_edition():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^clean:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has a clean target"
    assert "student" not in recipe.group(1), f"make clean deletes the student edition: {recipe.group(1)!r}"
    assert re.search(r"^student-lab:", makefile, re.MULTILINE), "make student-lab opens the student edition"


# The proof, notebook by notebook.

KERNEL_HELPERS = textwrap.dedent('''
    import json as _course_json
    import math as _course_math
    import numpy as _course_np
    import torch as _course_torch
    import course_lib.notebook.checks as _course_checks

    _course_references = []
    _course_difference = _course_checks._difference


    def _course_spy(got, expected, *args, **kwargs):
        values = kwargs.get("values", args[3] if len(args) > 3 else True)
        if values and _course_spy.recording:
            _course_references.append(expected)
        return _course_difference(got, expected, *args, **kwargs)


    _course_spy.recording = False
    _course_checks._difference = _course_spy


    def _course_forms(value, out, depth=0):
        """What would show `value`: its numbers (a tensor's or a list's first entries) and strings."""
        if depth > 3 or isinstance(value, (bool, _course_np.bool_)):
            return out
        if isinstance(value, (_course_torch.Tensor, _course_np.ndarray)):
            for item in value.reshape(-1)[:6].tolist():
                _course_forms(item, out, depth + 1)
        elif isinstance(value, (int, float, _course_np.integer, _course_np.floating)):
            if _course_math.isfinite(value):
                out["numbers"].append(int(value) if isinstance(value, (int, _course_np.integer)) else float(value))
        elif isinstance(value, str):
            if len(value.strip()) >= 2:
                out["strings"].append(value)
        elif isinstance(value, (list, tuple)):
            for item in list(value)[:6]:
                _course_forms(item, out, depth + 1)
        elif isinstance(value, dict):
            for item in list(value.values())[:6]:
                _course_forms(item, out, depth + 1)
        return out


    def _course_print_forms(values):
        forms = {"numbers": [], "strings": []}
        for value in values:
            _course_forms(value, forms)
        print(_course_json.dumps(forms))


    _COURSE_UNCHANGED = object()


    def _course_mutate(value):
        """A wrong answer of the same form: the last item or entry changed, a function's result changed."""
        if callable(value) and not isinstance(value, type):
            def mutated(*args, **kwargs):
                return _course_mutate(value(*args, **kwargs))
            return mutated
        if isinstance(value, (bool, _course_np.bool_)):
            return not value
        if isinstance(value, (_course_torch.Tensor, _course_np.ndarray)):
            if value.dtype in (_course_torch.bool, _course_np.bool_):
                return ~value
            floating = value.dtype.kind == "f" if isinstance(value, _course_np.ndarray) else value.is_floating_point()
            return value + (0.5 if floating else 1)
        if isinstance(value, (int, _course_np.integer)):
            return value + 1
        if isinstance(value, (float, _course_np.floating)):
            return value + 0.5
        if isinstance(value, str):
            return value + "x"
        if isinstance(value, (list, tuple)):
            items = list(value) or [0]
            items[-1] = _course_mutate(items[-1])
            return type(value)(items) if isinstance(value, list) or type(value) is tuple else tuple(items)
        if isinstance(value, dict) and value:
            key = next(iter(value))
            return {**value, key: _course_mutate(value[key])}
        return _COURSE_UNCHANGED
''')


class Kernel:
    """A kernel in the notebooks' folder where failing checks raise; `run` returns (status, error, text)."""

    def __init__(self, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXECUTION"} | {"COURSE_CHECKS": "raise"}
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, source: str) -> tuple[str, str | None, str]:
        texts = []

        def collect(msg: dict) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                texts.append(content["text"])
            elif msg["msg_type"] in ("execute_result", "display_data"):
                texts.append(content["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                texts.append(f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]))
        reply = self.client.execute_interactive(source, timeout=CELL_TIMEOUT, output_hook=collect)
        content = reply["content"]
        return content["status"], content.get("ename"), "".join(texts)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w)")


def significant(text: str) -> tuple[int, Decimal]:
    """How many significant digits a number written as `text` has (trailing zeros do not count), and
    the value of one unit in its last one."""
    number = Decimal(text).normalize()
    return len(number.as_tuple().digits), Decimal(10) ** number.as_tuple().exponent


def shown(forms: dict, text: str) -> list[str]:
    """What of the reference `text` shows: a number with 3 or more significant digits within one unit
    of its last digit of a reference number (integers: equal, from 100 on), or a reference string."""
    found = [s for s in forms["strings"] if s in text]
    for written in NUMBER.findall(text):
        count, unit = significant(written)
        if count < 3:
            continue
        value = Decimal(written)
        for reference in forms["numbers"]:
            if isinstance(reference, int):
                hit = abs(reference) >= 100 and value == reference
            else:
                hit = abs(value - Decimal(reference)) <= unit
            if hit:
                found.append(written)
                break
    return found


@pytest.mark.parametrize("path", numbered_notebook_paths(), ids=lambda p: p.name)
def test_every_check_judges_without_telling(path: Path):
    instructor = read_notebook(path)
    student = student_notebook(instructor)
    student_source = {cell.id: cell.source for cell in student.cells}
    exercises = {e.solution: e for e in find_exercises(instructor)}
    checks = {e.check for e in exercises.values()}
    strict = uses_new_checks(instructor)  # follows the exercise conventions: hold it to all of them
    assert exercises, f"{path.name} has no exercises"
    kernel = Kernel(path.parent)
    try:
        assert kernel.run(KERNEL_HELPERS)[0] == "ok"
        for index, cell in enumerate(instructor.cells):
            if cell.cell_type != "code" or index in checks:
                continue
            if index not in exercises:
                status, error, text = kernel.run(cell.source)
                assert status == "ok", f"lesson cell {index} failed ({error}): {cell.source[:80]!r}\n{text[-2000:]}"
                continue
            check = instructor.cells[exercises[index].check].source
            wrong_outputs = []
            kernel.run(student_source[cell.id])  # an old-style stub may raise NotImplementedError itself
            status, error, text = kernel.run(check)
            assert status == "error", f"cell {index}: the check passes on the student stub:\n{check}"
            if strict:
                assert "is not done yet" in text, f"cell {index}: on the stub the check says\n{text}"
            wrong_outputs.append(("the stub", text))
            status, error, _ = kernel.run(none_answer(cell.source))  # code after the answer may fail on None
            assert error != "SyntaxError", f"cell {index}: none_answer cannot rewrite this solution"
            status, error, text = kernel.run(check)
            assert status == "error", f"cell {index}: the check accepts None as the answer:\n{check}"
            wrong_outputs.append(("None", text))
            status, error, text = kernel.run(cell.source)
            assert status == "ok", f"cell {index}: the solution raises {error}\n{text[-2000:]}"
            kernel.run("_course_references.clear(); _course_spy.recording = True")
            status, error, text = kernel.run(check)
            kernel.run("_course_spy.recording = False")
            assert status == "ok", f"cell {index}: the check fails on the solution ({error}):\n{check}\n{text[-2000:]}"
            if not strict:
                continue
            names = answer_names(cell.source)
            answers = json.loads(kernel.run(f"_course_print_forms([{', '.join(names)}])")[2])
            assert not shown(answers, check), f"cell {index}: the check cell holds the answer {shown(answers, check)}"
            forms = json.loads(kernel.run(f"_course_print_forms(_course_references + [{', '.join(names)}])")[2])
            for name in names:
                kernel.run(f"_course_saved = {name}\n{name} = _course_mutate({name})")
                if kernel.run(f"print({name} is _COURSE_UNCHANGED)")[2].strip() == "False":
                    status, error, text = kernel.run(check)
                    assert status == "error", f"cell {index}: the check accepts a changed {name}:\n{check}"
                    wrong_outputs.append((f"a changed {name}", text))
                kernel.run(f"{name} = _course_saved")
            for answer, text in wrong_outputs:
                leaked = shown(forms, text)
                assert not leaked, f"cell {index}: on {answer}, the check shows the reference {leaked}:\n{text}"
    finally:
        kernel.close()


@pytest.mark.parametrize("path", [p for p in numbered_notebook_paths() if uses_new_checks(read_notebook(p))],
                         ids=lambda p: p.name)
def test_run_all_goes_past_unfinished_exercises(path: Path):
    """The student edition, run top to bottom as handed out: no cell fails (an error would stop "Run
    all"), and every check reports its exercise as not done yet, on stderr."""
    student = student_notebook(read_notebook(path))
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "COURSE_CHECKS")}
    client = NotebookClient(student, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # raises CellExecutionError at the first cell that fails
    labels = [f"Exercise {n} is not done yet" for n in range(1, len(find_exercises(read_notebook(path))) + 1)]
    stderr = "".join(o.text for c in student.cells if c.cell_type == "code" for o in c.outputs
                     if o.output_type == "stream" and o.name == "stderr")
    assert labels and all(label in stderr for label in labels), stderr
