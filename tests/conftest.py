"""Shared fixtures: where the repository, its notebooks and its data are."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest
import torch
from hypothesis import settings

from course_lib.tooling.student_edition import find_exercises

# Property tests draw the same examples on every run, so a green test suite stays green; set
# HYPOTHESIS_PROFILE=explore to let hypothesis search fresh examples (run it before changing a helper).
settings.register_profile("course", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"

torch.set_num_threads(1)  # tests run in two processes on two cores; tiny tensors gain nothing from more


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def numbered_notebook_paths() -> list[Path]:
    return [p for p in notebook_paths() if p.name[:2].isdigit() and p.name[:2] != "00"]


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


# The checks that print the expected value when they fail. A notebook whose check cells call none of
# them follows the exercise conventions (judge without telling), and the tests hold it to them.
OLD_CHECKS = re.compile(r"\bcheck_(close|equal|true|raises)\(")


def uses_new_checks(nb: nbformat.NotebookNode) -> bool:
    """True when no exercise check cell of `nb` calls an old check (the notebook is converted)."""
    return not any(OLD_CHECKS.search(nb.cells[e.check].source) for e in find_exercises(nb))


def load_script(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shipped_gpt():
    """The shipped tiny GPT (eval mode), its tokenizer and its card."""
    from course_lib.checkpoints import load_card
    from course_lib.zoo import load_tiny_gpt

    model, tokenizer = load_tiny_gpt("tiny_gpt")
    return model, tokenizer, load_card("tiny_gpt")


@pytest.fixture(scope="session")
def shipped_encoder():
    """The shipped tiny encoder (eval mode), its tokenizer and its card."""
    from course_lib.checkpoints import load_card
    from course_lib.zoo import load_tiny_encoder

    model, tokenizer = load_tiny_encoder("tiny_encoder")
    return model, tokenizer, load_card("tiny_encoder")
