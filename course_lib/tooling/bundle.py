"""A self-contained zip of the student edition, for a workshop: notebooks, the library and the data.

    python -m course_lib.tooling.bundle dist        # writes dist/llm-course-student.zip (make bundle)

The zip holds one folder, `llm-course-student/`, with:

- `README.md`: the two commands that install the library and open the course, and how to serve
  the course on JupyterHub;
- `notebooks/`: the student edition (no solutions; see `student_edition`);
- `interview/`: the Anki deck, the cheat sheet and the key numbers, built from those notebooks;
- `data/`: everything the notebooks load (the world, the corpora, the model zoo, the datasheet);
- `course_lib-<version>-py3-none-any.whl`: the library, built here from the repository's sources;
- `constraints.txt`: the exact versions the committed outputs were made with.

The notebooks find the data through the environment variable `COURSE_DATA_DIR`, which the README's
second command sets. The wheel is built by pip from a copy of the sources, so the repository is left
as it was: offline with the environment's setuptools where it is recent enough for pyproject.toml
(>= 77), else in pip's isolated build environment (which fetches setuptools).
Left out: Python and PyTorch themselves (pip installs PyTorch, or the hub's image has it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from course_lib import __version__
from course_lib.datasets import DATA_DIR_VARIABLE
from course_lib.tooling.interview.build import build as build_interview
from course_lib.tooling.student_edition import REPO_NOTEBOOKS, build_student_edition

__all__ = ["REPO", "BUNDLE", "PACKAGE_FILES", "CPU_INDEX", "SETUPTOOLS", "README", "build_wheel", "write_bundle",
           "main"]

REPO = Path(__file__).resolve().parents[2]
BUNDLE = "llm-course-student"
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")  # what building the wheel reads
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SETUPTOOLS = 77  # the oldest major version that reads pyproject.toml's `license = "MIT"`

README = """# How large language models work: the student edition

This folder is the course, ready for a workshop: fifty questions about large language models, one
notebook per question, each with a lesson you run and exercises that check your answers. It holds
the notebooks without their solutions (`notebooks/`), the companion library `course_lib` as a
wheel, and the data the notebooks load (`data/`). Nothing is downloaded when a notebook runs.

## Two commands

With Python >= 3.11, in this folder (in a virtual environment if you like: `python -m venv .venv`,
then activate it):

```bash
python -m pip install -c constraints.txt {wheel}
{variable}="$PWD/data" jupyter lab notebooks/00_start_here.ipynb
```

On Linux without an NVIDIA GPU, add `--extra-index-url {cpu_index}` to the first command: it
installs the CPU build of PyTorch instead of the multi-GB CUDA build. On Windows (PowerShell), the
second command is `$env:{variable} = "$PWD\\data"; jupyter lab notebooks/00_start_here.ipynb`.

Start with `00_start_here.ipynb`. For interview practice, `interview/` holds an Anki deck
(`llm_course.apkg`: *File → Import* in Anki), a cheat sheet to read in under an hour
(`cheat_sheet.html`) and every cited number with its source (`key_numbers.html`); the notebook
`interview_quiz.ipynb` asks the questions one at a time. Each exercise has a stub to replace and a check cell that says
what is wrong with an answer without giving the answer away; an exercise not done yet is reported
as such, and the rest of the notebook still runs.

## On JupyterHub

An administrator installs the wheel once into the environment the hub starts for its users (the
first command above, in the image or the shared environment), copies `data/` to a folder every
user can read, for example `/srv/llm-course/data`, and sets the variable for every server, in
`jupyterhub_config.py`:

```python
c.Spawner.environment = {{"{variable}": "/srv/llm-course/data"}}
```

Each learner then needs their own copy of `notebooks/` in their home folder: copy it there, or
distribute it with nbgitpuller, or, for a graded course, release it with nbgrader from the
instructor edition (the course repository's README explains how). A learner's changes are their own
work: hand out a fresh copy only to a learner who has none.
"""


def _local_setuptools() -> bool:
    """Whether this environment's setuptools can build the wheel (no isolated build environment needed)."""
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= SETUPTOOLS
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


def build_wheel(out_dir: Path, repo: Path = REPO) -> Path:
    """Build the course_lib wheel into `out_dir` from a copy of the repository's sources; its path."""
    with tempfile.TemporaryDirectory() as scratch:
        sources = Path(scratch) / "src"
        shutil.copytree(repo / "course_lib", sources / "course_lib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in PACKAGE_FILES:
            shutil.copy2(repo / name, sources / name)
        offline = ["--no-build-isolation"] if _local_setuptools() else []
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "--quiet",
                        "--wheel-dir", str(out_dir), str(sources)], check=True)
    wheels = sorted(out_dir.glob(f"course_lib-{__version__}-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one course_lib {__version__} wheel in {out_dir}, found {wheels}")
    return wheels[0]


def write_bundle(out_dir: str | Path, *, source: str | Path = REPO_NOTEBOOKS, repo: Path = REPO) -> Path:
    """Write `out_dir`/llm-course-student.zip (see the module docstring); returns its path."""
    out_dir, source = Path(out_dir), Path(source)
    if not (repo / "data").is_dir():
        raise ValueError(f"repo must hold the course's data/ folder, got {str(repo)!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{BUNDLE}.zip"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / BUNDLE
        build_student_edition(root / "notebooks", source)
        (root / "notebooks" / ".student_edition.json").unlink()  # a fresh copy: nothing of a learner's yet
        build_interview(root / "interview", root / "notebooks")
        shutil.copytree(repo / "data", root / "data", ignore=shutil.ignore_patterns("__pycache__"))
        wheel = build_wheel(root, repo)
        shutil.copy2(repo / "constraints.txt", root / "constraints.txt")
        (root / "README.md").write_text(README.format(wheel=wheel.name, variable=DATA_DIR_VARIABLE,
                                                      cpu_index=CPU_INDEX), encoding="utf-8")
        partial = target.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root.parent).as_posix())
        partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a self-contained zip of the student edition for a workshop.")
    parser.add_argument("out_dir", help="folder to write llm-course-student.zip into")
    parser.add_argument("--source", default=str(REPO_NOTEBOOKS), help="instructor notebooks folder")
    args = parser.parse_args(argv)
    try:
        target = write_bundle(args.out_dir, source=args.source)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
