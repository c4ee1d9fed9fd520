"""The syllabus: fifty lessons in the questions' order; README and 00_start_here show its table."""

from __future__ import annotations

import json

from conftest import NOTEBOOKS, REPO, read_notebook
from course_lib.syllabus import LESSONS, markdown_table


def test_fifty_lessons_in_order_with_unique_notebooks():
    assert [lesson.number for lesson in LESSONS] == list(range(1, 51))
    assert len({lesson.notebook for lesson in LESSONS}) == 50


def test_every_notebook_on_disk_is_a_lesson():
    names = {lesson.notebook for lesson in LESSONS} | {"00_start_here.ipynb"}
    stray = [p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in names]
    assert not stray, f"notebooks not in course_lib.syllabus: {stray}"


def test_readme_shows_the_current_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README table is stale: run `python -m course_lib.syllabus`"


def test_start_here_shows_the_current_table():
    outputs = json.dumps([c.get("outputs") for c in read_notebook(NOTEBOOKS / "00_start_here.ipynb").cells])
    assert json.dumps(markdown_table(link_prefix=""))[1:-1] in outputs, \
        "00_start_here's table is stale: re-execute it (make notebooks NB=00_start_here.ipynb)"
