"""Drawing an autograd expression graph: one box per `Value`, arrows from inputs to outputs.

Used by the chain-rule and Jacobian lessons to show what `Value.backward_steps` visits. Left out:
automatic layout of large graphs (nodes are placed in columns by depth, which suits expressions of
a dozen nodes), and tensor graphs (torch's own graph is not drawn).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from course_lib.autograd import Value, topological_order
from course_lib.notebook.plotting import PALETTE

__all__ = ["draw_graph"]

__all__ = ["draw_graph"]


def _graph_depths(root: Value) -> dict[Value, int]:
    """Each node's depth: 0 for leaves, otherwise 1 + the largest depth among its inputs."""
    depths: dict[Value, int] = {}
    for node in topological_order(root):
        depths[node] = 1 + max((depths[c] for c in node.inputs), default=-1)
    return depths


def draw_graph(root: Value, ax=None, highlight: Value | None = None):
    """Draw the graph of a small expression with matplotlib; returns the Axes.

    Nodes are laid out left to right by depth (leaves in the first column, `root` in the last),
    one box per `Value` with its label or operation, its data and its grad; arrows go from inputs
    to outputs. `highlight` outlines one node (for example the one `backward_steps` just yielded).
    """
    if not isinstance(root, Value):
        raise TypeError(f"root must be a Value, got {type(root).__name__}")
    depths = _graph_depths(root)
    columns: dict[int, list[Value]] = {}
    for node in depths:
        columns.setdefault(depths[node], []).append(node)
    position = {
        node: (depth, (len(nodes) - 1) / 2 - row)
        for depth, nodes in columns.items()
        for row, node in enumerate(nodes)
    }
    if ax is None:
        width = 2.2 * len(columns) + 1
        height = 1.1 * max(len(nodes) for nodes in columns.values()) + 1
        _, ax = plt.subplots(figsize=(width, height))
    for node, (x, y) in position.items():
        for child in node.inputs:
            ax.annotate(
                "", xy=(x - 0.32, y), xytext=(position[child][0] + 0.32, position[child][1]),
                arrowprops={"arrowstyle": "->", "color": "0.5"},
            )
    for node, (x, y) in position.items():
        title = node.label or node.op or "input"
        ax.text(
            x, y, f"{title}\ndata {node.data:.4g}\ngrad {node.grad:.4g}", ha="center", va="center",
            fontsize=8, bbox={
                "boxstyle": "round", "facecolor": "white",
                "edgecolor": PALETTE[1] if node is highlight else PALETTE[0],
                "linewidth": 2.5 if node is highlight else 1.0,
            },
        )
    ax.set_xlim(-0.6, len(columns) - 0.4)
    rows = max(len(nodes) for nodes in columns.values())
    ax.set_ylim(-rows / 2 - 0.1, rows / 2 + 0.1)
    ax.set_axis_off()
    return ax
