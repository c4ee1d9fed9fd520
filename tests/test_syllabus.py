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
