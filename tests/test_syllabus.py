"""The syllabus: fifty lessons in the questions' order; README and 00_start_here show its table."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from conftest import NOTEBOOKS, REPO, read_notebook

from course_lib.tooling import syllabus
from course_lib.tooling.syllabus import (
    END,
    LESSONS,
    START,
    markdown_table,
    write_readme_table,
)


def test_fifty_lessons_in_order_with_unique_notebooks():
    assert [lesson.number for lesson in LESSONS] == list(range(1, 51))
    assert len({lesson.notebook for lesson in LESSONS}) == 50


def test_every_notebook_on_disk_is_a_lesson():
    names = {lesson.notebook for lesson in LESSONS} | {"00_start_here.ipynb"}
    stray = [p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in names]
    assert not stray, f"notebooks not in course_lib.tooling.syllabus: {stray}"


def test_readme_shows_the_current_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README table is stale: run `python -m course_lib.tooling.syllabus`"


def test_start_here_shows_the_current_table():
    outputs = json.dumps([c.get("outputs") for c in read_notebook(NOTEBOOKS / "00_start_here.ipynb").cells])
    assert json.dumps(markdown_table(link_prefix=""))[1:-1] in outputs, \
        "00_start_here's table is stale: re-execute it (make notebooks NB=00_start_here.ipynb)"


def _imported_modules(path) -> set[str]:
    """course_lib modules a notebook imports (`from course_lib.x import ...`, `import course_lib.x`,
    `from course_lib import x, y`)."""
    source = "\n".join(c.source for c in read_notebook(path).cells if c.cell_type == "code")
    names = set(re.findall(r"\bcourse_lib\.(\w+)", source))
    for group in re.findall(r"from course_lib import \(?([\w, \n]+)\)?", source):
        names |= {name.strip() for name in group.split(",") if name.strip()}
    return names


def test_every_existing_lesson_imports_the_modules_it_lists():
    for lesson in LESSONS:
        if not lesson.exists():
            continue
        missing = [m for m in lesson.modules if importlib.util.find_spec(f"course_lib.{m}") is None]
        assert not missing, f"lesson {lesson.number} lists modules that do not exist: {missing}"
        unused = set(lesson.modules) - _imported_modules(NOTEBOOKS / lesson.notebook)
        assert not unused, f"{lesson.notebook} does not import the modules it lists: {sorted(unused)}"


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
