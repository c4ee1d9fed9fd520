"""nbgrader set up for the course: the release it generates is the course's student edition.

The repository's `nbgrader_config.py` calls `configure`. In nbgrader's `generate_assignment`, its own
ClearSolutions and ClearOutput steps are replaced by `StudentEdition`, which applies the course's
builder (`student_notebook`: stubs that name the exercise, `solution` cells dropped, the exercise
outputs cleared, the lesson's outputs kept), so `nbgrader generate_assignment` and `make student`
write the same notebooks apart from the metadata nbgrader adds (checksums, locked cells). The
source folder is `notebooks/` itself, as the assignment "notebooks":

    nbgrader generate_assignment notebooks --force     # release/notebooks/: the student edition
    nbgrader autograde notebooks                       # grades submitted/<student>/notebooks/

While nbgrader validates or autogrades, a failed check raises (checks read NBGRADER_EXECUTION), so
its test cell scores 0. Needs nbgrader (``pip install -e ".[instructor]"``); nothing else in the
course imports this module. Left out: the formgrader's feedback templates and the exchange (see
nbgrader's documentation to release to a JupyterHub course).
"""

from __future__ import annotations

from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearOutput, ClearSolutions, NbGraderPreprocessor

from course_lib.tooling.student_edition import student_notebook

__all__ = ["ASSIGNMENT", "CELL_TIMEOUT", "StudentEdition", "release_preprocessors", "configure"]

ASSIGNMENT = "notebooks"
CELL_TIMEOUT = 600  # seconds; nbgrader's default (30) is short for a cell that trains a tokenizer


class StudentEdition(NbGraderPreprocessor):
    """nbgrader's step that turns the instructor edition into the course's student edition."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        return student_notebook(nb), resources


def release_preprocessors() -> list[type]:
    """nbgrader's generate_assignment steps, with ClearSolutions and ClearOutput replaced by StudentEdition."""
    default = GenerateAssignment.class_traits()["preprocessors"].default()
    return [StudentEdition if step is ClearSolutions else step for step in default if step is not ClearOutput]


def configure(c: Any) -> None:
    """Set nbgrader's configuration `c` (the `c` of an nbgrader_config.py) up for the course."""
    c.CourseDirectory.source_directory = "."  # the assignment "notebooks" is the folder notebooks/
    c.GenerateAssignment.preprocessors = release_preprocessors()
    c.Execute.timeout = CELL_TIMEOUT
