"""Every notebook follows the course's anatomy and was saved executed, clean and reproducible."""

from __future__ import annotations

import ast
import json
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    NOTEBOOKS,
    REPO,
    load_script,
    notebook_paths,
    numbered_notebook_paths,
    read_notebook,
    uses_new_checks,
)

from course_lib.tooling.grading import add_nbgrader_metadata
from course_lib.tooling.interview.cards import (
    MAX_CORRECTION_SENTENCES,
    MAX_CORRECTION_WORDS,
    lesson_cards,
    sentence_count,
)
from course_lib.tooling.student_edition import (
    BEGIN,
    EDITION_TAG,
    END,
    EXERCISE_HEADING,
    SOLUTION_TAG,
    exercises_start,
    find_exercises,
    has_tag,
)
from course_lib.tooling.syllabus import LESSONS

SECTIONS = ["The answer in 30 seconds", "Setup", "Try it", "What the common answer gets wrong",
            "Follow-up questions", "Exercises", "References"]
IGNORE_MARK = "NBVAL_IGNORE_OUTPUT"
MAX_IGNORE_MARKS_PER_NOTEBOOK = 1
# Linux and macOS home and temporary folders, installed packages, Windows drives (C:\Users\...).
MACHINE_PATHS = re.compile(r"(/home/|/root/|/work/|/tmp/|/Users/|/private/var/|site-packages|[A-Z]:\\)")
# Rounding noise differs between CPUs: a number below 1e-9 (other than 0) or with 12+ significant digits.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
TINY = 1e-9
MANY_DIGITS = 12
# A tiny bound printed as a claim is no noise: "< 1e-12", "agree to 1e-12", "below 1e-12".
BOUND_BEFORE = re.compile(r"(?:<|<=|≤|\bto|\bbelow)\s*$")
# The few tiny numbers that lessons measure on purpose, exact as printed, each with its reason. Keep it short:
# print a claim ("agree to 1e-12: True") instead of adding a number here.
TINY_VALUES = {
    ("15_transformer_vs_seq2seq.ipynb", "1e-22"): "an RNN's gradient 63 tokens back, relative: it vanishes",
    ("21_softmax.ipynb", "6.814e-46"): "exp(-104) in float64, the weight that float32 rounds to 0",
    ("23_cross_entropy.ipynb", "1e-16"): "an input of the table: the probability of the observed token",
    ("28_relu_derivative.ipynb", "1.7e-13"): "a 20-layer sigmoid MLP's gradient at layer 1, relative: vanished",
    ("29_chain_rule.ipynb", "1.77e-10"): "the loss after 40 steps of gradient descent, in float64",
    **{("41_vanishing_gradients.ipynb", value): "a vanished gradient, the lesson's measurement"
       for value in ["8.1e-19", "8.4e-29", "7.1e-15", "1.3e-12", "2.7e-20"]},
}
MAX_TINY_VALUES = 12

RUN_NOTEBOOKS = load_script("run_notebooks")
KEEP_METADATA, KEEP_CELL_METADATA = RUN_NOTEBOOKS.KEEP_METADATA, RUN_NOTEBOOKS.KEEP_CELL_METADATA
NUMBERED = numbered_notebook_paths()
ALL = notebook_paths()


def h2_headings(nb) -> list[str]:
    return [m.group(1).strip() for cell in nb.cells if cell.cell_type == "markdown"
            for m in re.finditer(r"^##\s+(.+)$", cell.source, re.MULTILINE)]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.extend(v for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def rounding_noise(text: str) -> list[str]:
    """The numbers in text that look like rounding noise: nonzero below 1e-9 (unless printed as a bound,
    after "<", "to" or "below"), or a decimal with 12 or more significant digits."""
    noise = []
    for match in NUMBER.finditer(text):
        number = match.group()
        mantissa = re.split(r"[eE]", number)[0].lstrip("+-")
        digits = len(mantissa.replace(".", "").lstrip("0"))
        tiny = 0 < abs(float(number)) < TINY and not BOUND_BEFORE.search(text[:match.start()])
        if tiny or ("." in mantissa and digits >= MANY_DIGITS):
            noise.append(number)
    return noise


def test_there_are_notebooks():
    assert (NOTEBOOKS / "00_start_here.ipynb").exists()
    assert NUMBERED, "no numbered notebooks found"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_title_matches_file_number(path: Path):
    first = read_notebook(path).cells[0]
    assert first.cell_type == "markdown"
    assert re.match(rf"^# {path.name[:2]} · \S", first.source), \
        f"first cell must be the title '# {path.name[:2]} · Topic', got {first.source[:60]!r}"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_sections_in_order(path: Path):
    headings = h2_headings(read_notebook(path))
    positions = []
    for section in SECTIONS:
        assert section in headings, f"missing section '## {section}' (found {headings})"
        positions.append(headings.index(section))
    assert positions == sorted(positions), f"sections out of order: {headings}"
    assert headings[-1] == "References", "References must be the last section"
    lesson = headings[headings.index("Setup") + 1: headings.index("Try it")]
    assert lesson, "the lesson needs at least one section between Setup and Try it"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_tagged_answer_and_follow_ups(path: Path):
    nb = read_notebook(path)
    tagged = lambda tag: [c for c in nb.cells if tag in c.metadata.get("tags", [])]  # noqa: E731
    answers = tagged("answer")
    assert len(answers) == 1 and answers[0].cell_type == "markdown", "one markdown cell tagged 'answer'"
    assert "The answer in 30 seconds" in answers[0].source
    follow_ups = tagged("follow-up")
    assert 2 <= len(follow_ups) <= 4, f"2-4 follow-up cells tagged 'follow-up', got {len(follow_ups)}"
    assert all(c.cell_type == "markdown" for c in follow_ups)


# "The answer in 30 seconds": about 35 seconds spoken.
MAX_ANSWER_WORDS = 90
# Answers and follow-ups are read out of context, as flashcards: nothing may point into the notebook.
CONTEXT_BOUND = re.compile(r"\b(above|below|here|this notebook|this lesson|the plot|the figure|as we saw|"
                           r"exercises?|course_lib|the library|the course|our)\b", re.IGNORECASE)


def answer_words(source: str) -> int:
    """The number of words of an answer cell, its heading line left out."""
    lines = source.strip().split("\n")
    if lines[0].startswith("#"):
        lines = lines[1:]
    return len("\n".join(lines).split())


@pytest.mark.parametrize("source, words", [
    ("## The answer in 30 seconds\n\nOne two\nthree.", 3),
    ("No heading: four words.", 4),
    ("## Heading only", 0),
])
def test_answer_words_leave_out_the_heading(source: str, words: int):
    assert answer_words(source) == words


@pytest.mark.parametrize("text, found", [
    ("as measured above", ["above"]),
    ("In This Notebook and in the plot", ["This Notebook", "the plot"]),
    ("Exercise 3 derives it; our trainer", ["Exercise", "our"]),
    ("where, hourly, thereby, the libraryless", []),
    ("values below 1", ["below"]),
])
def test_context_bound_pattern(text: str, found: list[str]):
    assert CONTEXT_BOUND.findall(text) == found


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_answer_is_said_in_30_seconds(path: Path):
    answers = [c for c in read_notebook(path).cells if "answer" in c.metadata.get("tags", [])]
    assert len(answers) == 1, f"one cell tagged 'answer', got {len(answers)}"
    words = answer_words(answers[0].source)
    assert words <= MAX_ANSWER_WORDS, f"the answer has {words} words, at most {MAX_ANSWER_WORDS}"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_answer_and_follow_ups_stand_alone(path: Path):
    for index, cell in enumerate(read_notebook(path).cells):
        if {"answer", "follow-up", "mistake"} & set(cell.metadata.get("tags", [])):
            found = CONTEXT_BOUND.findall(cell.source)
            assert not found, f"cell {index} is read alone, as a flashcard, yet says {found}"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_each_common_mistake_is_a_short_tagged_card(path: Path):
    nb = read_notebook(path)
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("## ")]
    heading = next(i for i in starts if nb.cells[i].source.lstrip().startswith("## What the common answer gets wrong"))
    end = next(i for i in starts if i > heading)
    tagged = [i for i, c in enumerate(nb.cells) if "mistake" in c.metadata.get("tags", [])]
    assert 1 <= len(tagged) <= 4, f"1-4 cells tagged 'mistake', got {len(tagged)}"
    assert all(heading <= i < end for i in tagged), f"mistake cells {tagged} outside their section ({heading}-{end})"
    lesson = next(lesson for lesson in LESSONS if lesson.notebook == path.name)
    for card in (card for card in lesson_cards(lesson) if card.kind == "mistake"):  # raises on a malformed cell
        words, sentences = len(card.back.split()), sentence_count(card.back)
        assert words <= MAX_CORRECTION_WORDS, f"the correction of {card.front[:40]!r} has {words} words"
        assert sentences <= MAX_CORRECTION_SENTENCES, f"the correction of {card.front[:40]!r} has {sentences} sentences"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_exercises_have_solutions_and_checks(path: Path):
    nb = read_notebook(path)
    start = exercises_start(nb)
    exercises = find_exercises(nb)
    assert 2 <= len(exercises) <= 4, f"2-4 exercises expected, found {len(exercises)}"
    for number, exercise in enumerate(exercises, start=1):
        assert exercise.solution > start, f"exercise {number}: solution cell before '## Exercises'"
        check = nb.cells[exercise.check].source
        assert re.search(r"\bcheck_\w+\(", check), f"exercise {number}: check cell calls no check_* helper"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_imports_course_lib_and_calls_setup(path: Path):
    sources = [c.source for c in code_cells(read_notebook(path))]
    setup_cells = [i for i, s in enumerate(sources) if re.search(r"\bsetup\(", s) and "course_lib" in s]
    assert setup_cells, "one setup cell imports course_lib and calls setup(...)"
    assert setup_cells[0] == 0, "the setup cell is the first code cell"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_executed_in_order_without_errors(path: Path):
    cells = code_cells(read_notebook(path))
    counts = [c.execution_count for c in cells]
    assert None not in counts, "every code cell must be executed (restart and run all, then save)"
    assert counts == list(range(1, len(cells) + 1)), f"cells not executed top to bottom: {counts}"
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"stored error output in cell: {cell.source[:60]!r}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_clean_metadata(path: Path):
    nb = read_notebook(path)
    assert set(nb.metadata) <= set(KEEP_METADATA), f"stray metadata: {set(nb.metadata)}"
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        assert set(cell.metadata) <= set(KEEP_CELL_METADATA), f"stray cell metadata {set(cell.metadata)}"


@pytest.mark.parametrize("text, machine", [
    ("C:\\Users\\ann\\course\\x.py", True),  # one backslash each, as nbformat hands it over
    ("/Users/ann/course/x.py", True),
    ("/private/var/folders/x.py", True),
    ("/home/ann/x.py", True),
    ("see notebooks/21_softmax.ipynb", False),
    ("p(A:B) = 0.5", False),
])
def test_machine_path_pattern(text: str, machine: bool):
    assert bool(MACHINE_PATHS.search(text)) is machine


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_outputs_hold_no_machine_specific_paths(path: Path):
    for cell in code_cells(read_notebook(path)):
        match = MACHINE_PATHS.search(output_text(cell))
        assert match is None, f"output mentions a machine path ({match.group(0)!r}): {cell.source[:60]!r}"


@pytest.mark.parametrize("text, noise", [
    ("largest difference from the engine's parameters: 9e-16", ["9e-16"]),
    ("tensor([1.0000e+00, 1.2e-17])", ["1.2e-17"]),
    ("largest |tiled - naive|: 1E-15 in float64", ["1E-15"]),
    ("0.1 + 0.2 = 0.30000000000000004", ["0.30000000000000004"]),
    ("error 0.0000000000004", ["0.0000000000004"]),
    ("3.14159265358 (12 digits), 3.1415926535 (11 digits)", ["3.14159265358"]),
    ("agree to 1e-12: True", []),
    ("|J 1| < 1e-12: True, |x| <= 1e-10, float64 below 1e-15", []),
    ("lr 3e-4, loss 1.25e-02, 1e-09, 0.0e+00, 5.000, 175,000,000,000 tokens, version 3.11.7", []),
])
def test_rounding_noise_pattern(text: str, noise: list[str]):
    assert rounding_noise(text) == noise


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_outputs_hold_no_rounding_noise(path: Path):
    for cell in code_cells(read_notebook(path)):
        noise = [n for n in rounding_noise(output_text(cell)) if (path.name, n) not in TINY_VALUES]
        assert not noise, (f"output looks like rounding noise, which changes from CPU to CPU: {noise} in cell "
                           f"{cell.source[:60]!r}; print the claim instead (e.g. 'agree to 1e-12: True')")


def test_tiny_value_exceptions_are_rare_and_in_use():
    assert len(TINY_VALUES) <= MAX_TINY_VALUES, "print a claim or a bound instead of adding exceptions"
    for (name, value), reason in TINY_VALUES.items():
        outputs = [rounding_noise(output_text(c)) for c in code_cells(read_notebook(NOTEBOOKS / name))]
        assert any(value in found for found in outputs), f"{name} no longer prints {value} ({reason}): remove it"


def make_dry_run(target: str) -> str:
    """The commands `make <target>` would run (the environment's set-up taken as done)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    command = ["make", "-n", "-s", "-C", str(REPO), "-o", ".venv/.installed", target]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_portable_run_reruns_strict_nbval_as_if_on_other_cpus_with_two_threads():
    recipe = make_dry_run("test-portable")
    nbval = re.search(r"--nbval .*?\.cfg", make_dry_run("test")).group()
    assert nbval in recipe and "COURSE_TORCH_THREADS=2" in recipe
    x86 = platform.machine().lower() in {"x86_64", "amd64"}
    cpus = (["MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2",
             "MKL_ENABLE_INSTRUCTIONS=SSE4_2 ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE"]
            if x86 else ["ATEN_CPU_CAPABILITY=default"])
    assert re.findall(r'"([^"]+)"', recipe.partition("; do")[0]) == cpus
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    steps = re.findall(r"^[^#\n]*\bmake (\S+)$", ci, re.MULTILINE)
    assert steps == ["setup-instructor", "test", "test-portable", "test-slow"], f".ci/run runs {steps}"


def test_ignore_marks_are_rare():
    counts = {p.name: sum(IGNORE_MARK in c.source for c in code_cells(read_notebook(p))) for p in ALL}
    too_many = {name: n for name, n in counts.items() if n > MAX_IGNORE_MARKS_PER_NOTEBOOK}
    assert not too_many, f"more than {MAX_IGNORE_MARKS_PER_NOTEBOOK} {IGNORE_MARK} per notebook: {too_many}"
    assert sum(counts.values()) <= max(1, len(ALL) // 5), f"{IGNORE_MARK} used too often: {counts}"


def test_notebooks_are_valid_json_with_one_trailing_newline():
    for path in ALL:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
        assert text.endswith("}\n"), f"{path.name}: save with nbformat (one trailing newline)"


def test_readme_and_start_here_link_every_notebook():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = json.dumps(read_notebook(NOTEBOOKS / "00_start_here.ipynb"))
    for path in NUMBERED:
        assert f"notebooks/{path.name}" in readme, f"README table does not link {path.name}"
        assert f"({path.name})" in start, f"00_start_here does not link {path.name}"
    linked = set(re.findall(r"notebooks/(\d\d_\w+\.ipynb)", readme))
    missing = [name for name in linked if not (NOTEBOOKS / name).exists()]
    assert not missing, f"README links notebooks that do not exist: {missing}"


# Exercises, the student edition and nbgrader.

@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_nbgrader_metadata_is_up_to_date(path: Path):
    nb = read_notebook(path)
    assert not add_nbgrader_metadata(nb), \
        f"run: python -m course_lib.tooling.grading notebooks/{path.name}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_solution_markers_only_as_whole_lines_of_code_cells(path: Path):
    """nbgrader takes any line holding a marker for one (a sentence quoting them aborts it)."""
    for index, cell in enumerate(read_notebook(path).cells):
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
                assert cell.cell_type == "code" and line.strip() in (BEGIN, END), \
                    f"cell {index} quotes a solution marker: {line!r}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_solution_and_edition_tags(path: Path):
    nb = read_notebook(path)
    start = exercises_start(nb)
    for index, cell in enumerate(nb.cells):
        if has_tag(cell, SOLUTION_TAG):
            assert cell.cell_type == "markdown" and start is not None and index > start, \
                f"cell {index}: only markdown answers in the exercises are tagged {SOLUTION_TAG!r}"
    edition = [c for c in nb.cells if has_tag(c, EDITION_TAG)]
    assert len(edition) == (1 if path.name.startswith("00") else 0), \
        f"00_start_here has one cell tagged {EDITION_TAG!r} (the student edition rewrites it), no other notebook"


def hint_strings(source: str) -> list[str]:
    """The hint= arguments of the calls in a check cell."""
    return [k.value.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
            for k in node.keywords if k.arg == "hint" and isinstance(k.value, ast.Constant)]


CONVERTED = [p for p in NUMBERED if uses_new_checks(read_notebook(p))]
DETAILS = re.compile(r"<details>\s*<summary>Hint</summary>.*?</details>", re.DOTALL)


@pytest.mark.parametrize("path", CONVERTED, ids=lambda p: p.name)
def test_converted_exercises_follow_the_conventions(path: Path):
    """Hints collapsed and free of formulas; nothing after a solution region (it would run on the stub)."""
    nb = read_notebook(path)
    prompts = [c for c in nb.cells if c.cell_type == "markdown" and EXERCISE_HEADING.search(c.source)]
    assert len(prompts) == len(find_exercises(nb)), "one markdown prompt with '### Exercise N' per exercise"
    for prompt in prompts:
        label = EXERCISE_HEADING.search(prompt.source).group(1)
        assert DETAILS.search(prompt.source), f"{label}: give a hint in <details><summary>Hint</summary>...</details>"
        visible = DETAILS.sub("", prompt.source)
        assert not re.search(r"\bhint", visible, re.IGNORECASE), f"{label}: a hint outside its <details> block"
    for exercise in find_exercises(nb):
        solution = nb.cells[exercise.solution].source
        assert solution.rstrip().splitlines()[-1].strip() == END, \
            f"cell {exercise.solution}: nothing may follow the last {END!r} (it would run on the stub)"
        for hint in hint_strings(nb.cells[exercise.check].source):
            assert "=" not in hint, f"cell {exercise.check}: a check's hint shows a formula: {hint!r}"
