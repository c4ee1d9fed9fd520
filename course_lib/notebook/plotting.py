"""One figure style for the whole course, and the few plotting helpers every lesson shares.

Figures are drawn by code in the notebooks; this module fixes how they look (size, fonts, colours,
grid) so fifty notebooks read as one course, and holds the few figure recipes too long to sit in a
lesson cell: `prefix_tree_layout` and `draw_prefix_tree` (the tree of every prefix a search can
visit), `plot_row_norms` (the rows of a gradient, zero rows marked) and `scatter_groups` (points
coloured by group, a few named). Left out: interactive backends (the widget helpers in
`course_lib.notebook.widgets` redraw static figures).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from cycler import cycler
from matplotlib.ticker import NullFormatter

from course_lib.validation import callable_arg, float_tensor, integer_tensor, positive_int, string

__all__ = ["PALETTE", "COURSE_STYLE", "use_course_style", "subplots", "prefix_tree_layout", "draw_prefix_tree",
           "plot_row_norms", "scatter_groups"]

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



def prefix_tree_layout(alphabet: str, depth: int) -> dict[str, float]:
    """Height of every prefix of length 0 to ``depth`` in the complete tree over ``alphabet``.

    The leaves (strings of length ``depth``, in lexicographic order of ``alphabet``) sit at 0, -1,
    -2, ...; every shorter prefix sits at the mean height of its children, so a parent is centred on
    its subtree. Left out: trees that are not complete (every prefix has ``len(alphabet)`` children).
    """
    alphabet = string(alphabet, "alphabet", nonempty=True)
    depth = positive_int(depth, "depth")
    leaves = ["".join(t) for t in itertools.product(alphabet, repeat=depth)]
    y = {leaf: -float(i) for i, leaf in enumerate(leaves)}
    for d in range(depth - 1, -1, -1):
        for prefix in dict.fromkeys(leaf[:d] for leaf in leaves):
            y[prefix] = sum(y[prefix + t] for t in alphabet) / len(alphabet)
    return y


def draw_prefix_tree(ax, alphabet: str, depth: int, *, path: str, kept: Mapping[int, Iterable[str]],
                     pruned: Iterable[str] = (), annotate: Callable[[str], str | None] = lambda prefix: None,
                     path_label: str = "path", kept_label: str = "kept", pruned_label: str = "pruned") -> None:
    """Draw the tree of every prefix on ``ax``: the edges in light grey, one highlighted ``path``.

    ``path`` (a string of ``depth`` symbols) is drawn as a thick blue line from the root; the prefixes
    in ``kept[d]`` (e.g. the beams alive after ``d`` steps) as orange dots with the edge into them;
    the prefixes in ``pruned`` as black crosses. ``annotate(prefix)`` gives the text written next to a
    prefix, or None for none. The x axis is the depth; the y axis has no meaning (see
    `prefix_tree_layout`). Left out: trees that are not complete, and the title (the caller's).
    """
    callable_arg(annotate, "annotate")
    y = prefix_tree_layout(alphabet, depth)
    path = string(path, "path")
    if path not in y or len(path) != depth:
        raise ValueError(f"path must be {depth} symbols of {alphabet!r}, got {path!r}")
    if not isinstance(kept, Mapping):
        raise TypeError(f"kept must map a depth to the prefixes kept there, got {type(kept).__name__}")
    kept = {d: list(prefixes) for d, prefixes in kept.items()}
    pruned = list(pruned)
    unknown = [p for p in [*pruned, *(p for ps in kept.values() for p in ps)] if p not in y]
    if unknown:
        raise ValueError(f"kept and pruned must be prefixes over {alphabet!r} of length <= {depth}, got {unknown}")
    for prefix in y:
        for t in alphabet if len(prefix) < depth else []:
            ax.plot([len(prefix), len(prefix) + 1], [y[prefix], y[prefix + t]], color="0.85", lw=1, zorder=1)
    ax.plot(range(depth + 1), [y[path[:d]] for d in range(depth + 1)], color=PALETTE[0], lw=3, zorder=3,
            label=path_label)
    for d, prefixes in kept.items():
        for prefix in prefixes:
            ax.plot([d - 1, d], [y[prefix[:-1]], y[prefix]], color=PALETTE[1], lw=1.5, zorder=2)
    if pruned:
        ax.scatter([len(p) for p in pruned], [y[p] for p in pruned], marker="x", s=120, color="black", zorder=4,
                   label=pruned_label)
    for i, (d, prefixes) in enumerate(kept.items()):
        ax.scatter([d] * len(prefixes), [y[p] for p in prefixes], s=80, color=PALETTE[1], zorder=3,
                   label=kept_label if i == 0 else None)
    for prefix in y:
        text = annotate(prefix) if prefix else None
        if text is not None:
            ax.annotate(text, (len(prefix), y[prefix]), xytext=(8, 4), textcoords="offset points", fontsize=8)
    ax.scatter([len(p) for p in y], list(y.values()), s=10, color="0.6", zorder=2)
    ax.set(xticks=range(depth + 1), xlabel="depth (tokens generated)", yticks=[])


def plot_row_norms(ax, norms: torch.Tensor, present: torch.Tensor, *, title: str = "", xlabel: str = "token id",
                   ylabel: str = "norm of the row") -> None:
    """Draw one point per row of a gradient table on a log scale, and mark the rows that are exactly 0.

    ``norms`` (V,) are the rows' norms, in token-id order; ``present`` holds the ids of the tokens
    the batch contains. Nonzero rows are blue for present tokens and vermillion for absent ones;
    zero rows, which a log scale cannot show, are black crosses drawn at a third of the smallest
    nonzero norm ("not to scale"). Left out: the figure and its title above the panels (the caller's).
    """
    norms = float_tensor(norms, "norms", ndim=1).detach().cpu()
    present = integer_tensor(present, "present", ndim=1).cpu()
    if present.numel() and (int(present.min()) < 0 or int(present.max()) >= len(norms)):
        raise ValueError(f"present must be ids in [0, {len(norms)}), got values in [{int(present.min())}, "
                         f"{int(present.max())}]")
    zero = norms == 0
    if bool(zero.all()):
        raise ValueError("norms must have at least one nonzero row")
    token_ids, in_batch = torch.arange(len(norms)), torch.zeros(len(norms), dtype=torch.bool)
    in_batch[present] = True
    floor = norms[~zero].min().item() / 3
    groups = [(in_batch & ~zero, "token in the batch", PALETTE[0]),
              (~in_batch & ~zero, "token absent, nonzero row", PALETTE[1])]
    for rows, label, colour in groups:
        if rows.any():
            ax.semilogy(token_ids[rows], norms[rows], "o", ms=3, color=colour, label=label)
    if zero.any():
        ax.semilogy(token_ids[zero], torch.full((int(zero.sum()),), floor), "x", color="black",
                    label="row exactly 0 (not to scale)")
    ticks = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylim(floor / 1.5, 1.5 * norms.max().item())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=7)


def scatter_groups(ax, points: torch.Tensor, groups: torch.Tensor, group_names: Sequence[str], words: Sequence[str],
                   also_label: Iterable[str] = ()) -> None:
    """Scatter 2-D ``points`` (N, 2), one colour per group, and name a few of them.

    ``groups`` (N,) holds each point's group index into ``group_names`` (the legend labels, in
    `PALETTE` order); ``words`` (N,) names the points. The first point of each group and every point
    whose word is in ``also_label`` get their word written next to them. Left out: more groups than
    colours in `PALETTE`, and the axis labels (the caller's).
    """
    points = float_tensor(points, "points", ndim=2)
    groups = integer_tensor(groups, "groups", ndim=1)
    if points.shape[1] != 2 or len(groups) != len(points) or len(words) != len(points):
        raise ValueError(f"points must be (N, 2) with one group and one word each, got points "
                         f"{tuple(points.shape)}, {len(groups)} groups, {len(words)} words")
    if not 1 <= len(group_names) <= len(PALETTE) or (len(groups) and not 0 <= int(groups.min()) <= int(groups.max())
                                                      < len(group_names)):
        raise ValueError(f"groups must index group_names (1 to {len(PALETTE)} names), got {len(group_names)} names "
                         f"and group ids {sorted(set(groups.tolist()))}")
    also_label = set(also_label)
    for k, name in enumerate(group_names):
        mask = groups == k
        ax.scatter(points[mask, 0], points[mask, 1], s=28, color=PALETTE[k], label=name)
        for j, i in enumerate(mask.nonzero().flatten().tolist()):
            if j == 0 or words[i] in also_label:
                ax.annotate(words[i], points[i].tolist(), fontsize=8, xytext=(6, -10), textcoords="offset points",
                            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
