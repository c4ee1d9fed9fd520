"""The workshop bundle: one zip with the student edition, the library as a wheel, the data, a README."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS, REPO

from course_lib import __version__
from course_lib.tooling import bundle
from course_lib.tooling.student_edition import MANIFEST, notebook_bytes, student_notebook

ROOT = bundle.BUNDLE


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    before = sorted(p.name for p in REPO.iterdir())
    target = bundle.write_bundle(tmp_path_factory.mktemp("dist"))
    assert sorted(p.name for p in REPO.iterdir()) == before, "building the bundle wrote into the repository"
    return target


def names(archive: Path) -> set[str]:
    with zipfile.ZipFile(archive) as z:
        return set(z.namelist())


def test_the_bundle_holds_the_student_edition_the_data_and_a_wheel(archive):
    inside = names(archive)
    wheel = f"{ROOT}/course_lib-{__version__}-py3-none-any.whl"
    assert {f"{ROOT}/README.md", f"{ROOT}/constraints.txt", wheel} <= inside
    interview = {f"{ROOT}/interview/{name}" for name in ("llm_course.apkg", "cheat_sheet.html", "cheat_sheet.md",
                                                         "key_numbers.html", "key_numbers.md", "cards.json")}
    assert interview <= inside
    notebooks = {n for n in inside if n.startswith(f"{ROOT}/notebooks/")}
    assert notebooks == {f"{ROOT}/notebooks/{p.name}" for p in NOTEBOOKS.glob("*.ipynb")}, "no manifest, no extra"
    assert f"{ROOT}/notebooks/{MANIFEST}" not in inside
    data = {f"{ROOT}/{p.relative_to(REPO).as_posix()}" for p in (REPO / "data").rglob("*") if p.is_file()}
    assert data <= inside
    with zipfile.ZipFile(archive) as z:
        for path in NOTEBOOKS.glob("*.ipynb"):
            shipped = z.read(f"{ROOT}/notebooks/{path.name}")
            assert shipped == notebook_bytes(student_notebook(nbformat.read(path, as_version=4)))
            sources = [cell.source for cell in nbformat.reads(shipped.decode(), as_version=4).cells]
            assert not [s for s in sources if "BEGIN SOLUTION" in s], f"{path.name} ships a solution"


def test_the_readme_gives_the_two_commands_and_jupyterhub(archive):
    with zipfile.ZipFile(archive) as z:
        readme = z.read(f"{ROOT}/README.md").decode()
    assert f"python -m pip install -c constraints.txt course_lib-{__version__}-py3-none-any.whl" in readme
    assert 'COURSE_DATA_DIR="$PWD/data" jupyter lab notebooks/00_start_here.ipynb' in readme
    assert 'c.Spawner.environment = {"COURSE_DATA_DIR": "/srv/llm-course/data"}' in readme


def test_the_wheel_installs_the_library(archive, tmp_path):
    with zipfile.ZipFile(archive) as z:
        wheel = z.extract(f"{ROOT}/course_lib-{__version__}-py3-none-any.whl", tmp_path)
        listed = zipfile.ZipFile(wheel).namelist()
    assert "course_lib/tooling/student_edition.py" in listed
    assert not [n for n in listed if n.startswith(("data/", "tests/", "notebooks/"))]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(target), wheel], check=True)
    where = subprocess.run([sys.executable, "-c", "import course_lib; print(course_lib.__file__)"],
                           env={"PYTHONPATH": str(target)}, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)


def test_a_repository_without_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="repo must hold the course's data/ folder"):
        bundle.write_bundle(tmp_path / "dist", repo=tmp_path)
