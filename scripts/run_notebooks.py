"""Execute the course notebooks top to bottom and print how long each took.

    python scripts/run_notebooks.py                 # time every notebook (benchmark, writes nothing)
    python scripts/run_notebooks.py --write 21_softmax.ipynb   # execute and save outputs in place
    python scripts/run_notebooks.py student/21_softmax.ipynb   # time a notebook elsewhere (no --write)
    python scripts/run_notebooks.py --repeat 3      # medians of three runs, as a markdown table

A bare name is looked up in notebooks/; a path with a folder is taken as given. `--write` only
writes into notebooks/. Executed notebooks are saved with clean metadata (kernelspec and
language_info only; cells keep their tags and nbgrader metadata) and no widget state, which is what
the convention tests ask for. Exercise checks raise when they fail (COURSE_CHECKS=raise), so a
failing check stops the run instead of being saved. Set COURSE_TORCH_THREADS to change torch threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_lib.tooling.syllabus import NOTEBOOKS

KEEP_METADATA = ("kernelspec", "language_info")
KEEP_CELL_METADATA = ("nbgrader", "tags")  # nbgrader's cell roles (course_lib.tooling.grading)


def clean_metadata(nb: nbformat.NotebookNode) -> None:
    """Drop notebook metadata other than the kernel's, and cell metadata other than tags and nbgrader's."""
    nb.metadata = nbformat.from_dict({k: nb.metadata[k] for k in KEEP_METADATA if k in nb.metadata})
    nb.metadata.kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: cell.metadata[k] for k in KEEP_CELL_METADATA
                                            if cell.metadata.get(k)})


def notebook_path(name: str) -> Path:
    """`name` in notebooks/ when it is a bare file name, else the path as given (made absolute)."""
    path = Path(name)
    return NOTEBOOKS / path if path.parent == Path(".") else path.resolve()


def execute(path: Path, timeout: int = 600) -> tuple[nbformat.NotebookNode, float]:
    """Run one notebook in a fresh kernel with its folder as working directory; (notebook, seconds)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute(env=os.environ | {"COURSE_CHECKS": "raise"})  # a failing exercise check is an error
    return nb, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all)")
    parser.add_argument("--write", action="store_true", help="save executed outputs in place")
    parser.add_argument("--repeat", type=int, default=1, help="runs per notebook (median reported)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    paths = [notebook_path(name) for name in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    outside = [str(p) for p in paths if p.resolve().parent != NOTEBOOKS]
    if args.write and outside:
        parser.error(f"--write only saves notebooks in {NOTEBOOKS}, got {', '.join(outside)}")
    print("| notebook | seconds (median) |\n|---|---:|")
    total = 0.0
    for path in paths:
        times = []
        for _ in range(args.repeat):
            nb, seconds = execute(path)
            times.append(seconds)
        if args.write:
            clean_metadata(nb)
            nbformat.write(nb, path)
        median = statistics.median(times)
        total += median
        print(f"| {path.name} | {median:.1f} |", flush=True)
    print(f"| total | {total:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
