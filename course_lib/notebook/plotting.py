"""One figure style for the whole course, and the few plotting helpers every lesson shares.

Figures are drawn by code in the notebooks; this module only fixes how they look (size, fonts,
colours, grid) so fifty notebooks read as one course. Left out: interactive backends (the widget
helpers in `course_lib.notebook.widgets` redraw static figures) and any lesson-specific plot.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from cycler import cycler

from course_lib.validation import positive_int

__all__ = ["PALETTE", "COURSE_STYLE", "use_course_style", "subplots"]

#: The course palette, colour-blind safe (Okabe & Ito 2008), in the order series are drawn.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

COURSE_STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "figure.autolayout": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
}


def use_course_style() -> None:
    """Apply the course style to matplotlib (called by `course_lib.notebook.runtime.setup`)."""
    plt.rcParams.update(COURSE_STYLE)
    plt.rcParams["axes.prop_cycle"] = cycler(color=list(PALETTE))


def subplots(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None):
    """`plt.subplots` with the course's default size scaled to the grid; returns (fig, axes)."""
    ncols = positive_int(ncols, "ncols")
    nrows = positive_int(nrows, "nrows")
    base_w, base_h = COURSE_STYLE["figure.figsize"]  # type: ignore[misc]
    width = width if width is not None else min(base_w * ncols * 0.75 + base_w * 0.25, 13.0)
    height = height if height is not None else base_h * nrows
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=True)

