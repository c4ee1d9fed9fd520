"""The syllabus: fifty lessons in the questions' order; README and 00_start_here show its table."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from conftest import NOTEBOOKS, REPO, read_notebook

from course_lib.tooling import syllabus
from course_lib.tooling.syllabus import (
    BUILDS_ON,
    COMPANION_NOTEBOOKS,
    END,
    LESSONS,
    PARTS,
    START,
    link_lines,
    markdown_table,
    write_lesson_links,
    write_readme_table,
)


def test_fifty_lessons_in_order_with_unique_notebooks():
    assert [lesson.number for lesson in LESSONS] == list(range(1, 51))
    assert len({lesson.notebook for lesson in LESSONS}) == 50


def test_every_notebook_on_disk_is_a_lesson():
    names = {lesson.notebook for lesson in LESSONS} | set(COMPANION_NOTEBOOKS)
    stray = [p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in names]
    assert not stray, f"notebooks not in course_lib.tooling.syllabus: {stray}"


def test_readme_shows_the_current_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README table is stale: run `python -m course_lib.tooling.syllabus`"


def test_start_here_shows_the_current_table():
    outputs = json.dumps([c.get("outputs") for c in read_notebook(NOTEBOOKS / "00_start_here.ipynb").cells])
    assert json.dumps(markdown_table(link_prefix=""))[1:-1] in outputs, \
        "00_start_here's table is stale: re-execute it (make notebooks NB=00_start_here.ipynb)"


def _imported_modules(source: str) -> set[str]:
    """course_lib modules that notebook code imports (`from course_lib.x import ...`, `import course_lib.x`,
    `from course_lib import x, y` or `(x,\n y)`), without the presentation and tooling sub-packages."""
    names = set(re.findall(r"\bcourse_lib\.(\w+)", source))
    for grouped, single in re.findall(r"from course_lib import (?:\(([^)]*)\)|([^\n]+))", source):
        names |= {name.strip() for name in (grouped or single).split(",") if name.strip()}
    return names - {"notebook", "tooling"}


def test_imported_modules_reads_every_import_form():
    source = ("from course_lib import tokenization\nfrom course_lib.notebook.checks import check_true\n"
              "from course_lib import (attention,\n    costs)\nimport course_lib.zoo\nfrom course_lib.tooling import x\n")
    assert _imported_modules(source) == {"tokenization", "attention", "costs", "zoo"}


def test_every_existing_lesson_lists_exactly_the_modules_its_notebook_imports():
    for lesson in LESSONS:
        if not lesson.exists():
            continue
        missing = [m for m in lesson.modules if importlib.util.find_spec(f"course_lib.{m}") is None]
        assert not missing, f"lesson {lesson.number} lists modules that do not exist: {missing}"
        source = "\n".join(c.source for c in read_notebook(NOTEBOOKS / lesson.notebook).cells if c.cell_type == "code")
        imported = _imported_modules(source)
        unused, unlisted = set(lesson.modules) - imported, imported - set(lesson.modules)
        assert not unused, f"{lesson.notebook} does not import the modules it lists: {sorted(unused)}"
        assert not unlisted, f"lesson {lesson.number} does not list the modules its notebook imports: {sorted(unlisted)}"


def test_write_readme_table_replaces_only_the_text_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\noutro\n", encoding="utf-8")
    write_readme_table(readme)
    assert readme.read_text(encoding="utf-8") == f"intro\n{START}\n{markdown_table()}\n{END}\noutro\n"


@pytest.mark.parametrize("text, match", [
    (f"{END}\n{START}\n", "before"),  # markers swapped
    (f"{START}\n", "once each"),
    (f"{START}\n{START}\n{END}\n", "once each"),
])
def test_write_readme_table_rejects_bad_markers(tmp_path, text, match):
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=f"readme .*{match}"):
        write_readme_table(readme)
    assert readme.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("argv", [["--help"], ["--prnt"]])
def test_command_line_writes_nothing_on_help_or_unknown_arguments(tmp_path, monkeypatch, argv):
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\nold\n{END}\n", encoding="utf-8")
    monkeypatch.setattr(syllabus, "README", readme)
    with pytest.raises(SystemExit):
        syllabus.main(argv)
    assert readme.read_text(encoding="utf-8") == f"{START}\nold\n{END}\n"


def test_command_line_prints_or_writes_the_table(tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\nold\n{END}\n", encoding="utf-8")
    monkeypatch.setattr(syllabus, "README", readme)
    syllabus.main(["--print"])
    assert capsys.readouterr().out == markdown_table() + "\n"
    assert "old" in readme.read_text(encoding="utf-8")
    syllabus.main([])
    assert readme.read_text(encoding="utf-8") == f"{START}\n{markdown_table()}\n{END}\n"


def test_builds_on_names_every_lesson_and_has_no_cycle():
    assert sorted(BUILDS_ON) == list(range(1, 51))
    assert all(n not in earlier and all(1 <= m <= 50 for m in earlier) for n, earlier in BUILDS_ON.items())
    visiting, done = set(), set()

    def visit(n):  # depth-first search: meeting a lesson still being visited is a cycle
        assert n not in visiting, f"BUILDS_ON has a cycle through lesson {n}"
        if n not in done:
            visiting.add(n)
            for m in BUILDS_ON[n]:
                visit(m)
            visiting.discard(n)
            done.add(n)

    for n in BUILDS_ON:
        visit(n)


def test_parts_hold_every_lesson_once():
    held = [n for part in PARTS for n in part.lessons]
    assert sorted(held) == list(range(1, 51)), "every lesson in exactly one part"


def test_start_here_lists_the_parts_as_its_reading_tracks():
    text = re.sub(r"\s+", " ", "".join(cell.source for cell in read_notebook(NOTEBOOKS / "00_start_here.ipynb").cells))
    for number, part in enumerate(PARTS, start=1):
        match = re.search(rf"{number}\. \*{re.escape(part.title)}\*: (.+?)\.(?: \d\. \*| \*\*)", text)
        assert match, f"00_start_here lists no track {number}. *{part.title}*"
        listed = tuple(int(n) for n in re.findall(r"(?:^|→ )(\d\d) ", match.group(1)))
        assert listed == part.lessons, f"track {number} lists {listed}, PARTS says {part.lessons}"


@pytest.mark.parametrize("lesson", [lesson for lesson in LESSONS if lesson.exists()], ids=lambda lesson: lesson.notebook)
def test_every_lesson_names_what_it_builds_on_and_links_the_next(lesson):
    nb = read_notebook(NOTEBOOKS / lesson.notebook)
    builds_on, next_line = link_lines(lesson.number)
    assert builds_on in nb.cells[0].source.split("\n"), \
        f"{lesson.notebook}: first cell lacks '{builds_on[:40]}...': run python -m course_lib.tooling.syllabus --links"
    assert nb.cells[-1].source.rstrip().endswith(next_line), \
        f"{lesson.notebook}: last cell must end with '{next_line}': run python -m course_lib.tooling.syllabus --links"


def test_link_lines_skip_planned_lessons_and_wrap_to_start_here(tmp_path):
    for name in ("03_beam_search.ipynb", "04_temperature.ipynb", "50_llm_challenges.ipynb"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    builds_on, next_line = link_lines(4, tmp_path)
    assert "[03 · " in builds_on and "](03_beam_search.ipynb)" in builds_on and "21 · " in builds_on
    assert "(planned)" in builds_on and "21_softmax.ipynb" not in builds_on  # 21 does not exist there
    assert next_line.endswith("(50_llm_challenges.ipynb)")  # 5 to 49 missing: the next existing lesson
    assert link_lines(50, tmp_path)[1] == "**Next:** [00 · Start here](00_start_here.ipynb)"


def test_write_lesson_links_is_idempotent_and_keeps_outputs(tmp_path):
    import shutil
    for name in ("21_softmax.ipynb", "23_cross_entropy.ipynb"):
        shutil.copy(NOTEBOOKS / name, tmp_path / name)
    outputs_before = [c.get("outputs") for c in read_notebook(tmp_path / "23_cross_entropy.ipynb").cells]
    write_lesson_links(tmp_path)
    assert write_lesson_links(tmp_path) == []  # a second run changes nothing
    nb = read_notebook(tmp_path / "23_cross_entropy.ipynb")
    assert [c.get("outputs") for c in nb.cells] == outputs_before
    assert nb.cells[0].source.count("**Builds on:**") == 1 and nb.cells[-1].source.count("**Next:**") == 1
    assert "](21_softmax.ipynb)" in nb.cells[0].source
    assert read_notebook(tmp_path / "21_softmax.ipynb").cells[-1].source.endswith("(23_cross_entropy.ipynb)")
