"""Tests for the figure recipes of course_lib.notebook.plotting: what they draw, checked on the artists."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.notebook.plotting import (  # noqa: E402
    PALETTE,
    draw_prefix_tree,
    plot_row_norms,
    prefix_tree_layout,
    scatter_groups,
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_prefix_tree_layout_centres_each_parent_on_its_children():
    y = prefix_tree_layout("ab", 2)
    assert y == {"aa": 0.0, "ab": -1.0, "ba": -2.0, "bb": -3.0, "a": -0.5, "b": -2.5, "": -1.5}
    y = prefix_tree_layout("abc", 3)
    assert len(y) == 1 + 3 + 9 + 27
    for prefix in y:  # the root sits at the mean of all leaves
        leaves = ["".join((prefix, *t)) for t in itertools.product("abc", repeat=3 - len(prefix))]
        assert y[prefix] == pytest.approx(np.mean([y[leaf] for leaf in leaves]))


def test_draw_prefix_tree_draws_every_edge_the_path_kept_and_pruned(ax):
    kept = {1: ["a", "b"], 2: ["ba", "bb"]}
    draw_prefix_tree(ax, "abc", 2, path="aa", kept=kept, pruned=["aa"], annotate=lambda p: p if len(p) == 1 else None,
                     path_label="greedy", kept_label="beam", pruned_label="cut")
    y = prefix_tree_layout("abc", 2)
    grey = [line for line in ax.lines if line.get_color() == "0.85"]
    assert len(grey) == 3 + 9  # every edge of the tree
    (path,) = [line for line in ax.lines if line.get_label() == "greedy"]
    assert list(path.get_ydata()) == [y[""], y["a"], y["aa"]]
    kept_edges = [line for line in ax.lines if line.get_color() == PALETTE[1]]
    assert sorted(line.get_ydata()[1] for line in kept_edges) == sorted(y[p] for p in ["a", "b", "ba", "bb"])
    labels = [c.get_label() for c in ax.collections]
    assert "cut" in labels and labels.count("beam") == 1  # one legend entry however many depths
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b", "c"]
    assert ax.get_xlabel() == "depth (tokens generated)"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(path="ab", kept={}), ValueError, "path must be 3 symbols of 'abc', got 'ab'"),
    (dict(path="abd", kept={}), ValueError, "path must be 3 symbols of 'abc', got 'abd'"),
    (dict(path="abc", kept={1: ["d"]}), ValueError, r"kept and pruned must be prefixes .* got \['d'\]"),
    (dict(path="abc", kept={}, pruned=["abcd"]), ValueError, r"got \['abcd'\]"),
    (dict(path="abc", kept={}, annotate=3), TypeError, "annotate must be callable"),
    (dict(path="abc", kept=[["a"]]), TypeError, "kept must map a depth to the prefixes kept there, got list"),
])
def test_draw_prefix_tree_rejects_bad_input(ax, kwargs, error, message):
    with pytest.raises(error, match=message):
        draw_prefix_tree(ax, "abc", 3, **kwargs)
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        prefix_tree_layout("abc", 0)
    with pytest.raises(ValueError, match="alphabet must be a non-empty str, got .."):
        prefix_tree_layout("", 2)


def test_plot_row_norms_colours_present_absent_and_zero_rows(ax):
    norms = torch.tensor([0.5, 0.0, 0.02, 0.3, 0.0, 0.01])  # (6,)
    plot_row_norms(ax, norms, torch.tensor([0, 3, 3]), title="t", xlabel="x", ylabel="y")
    by_label = {line.get_label(): line for line in ax.lines}
    assert list(by_label["token in the batch"].get_xdata()) == [0, 3]
    assert list(by_label["token absent, nonzero row"].get_xdata()) == [2, 5]
    zero = by_label["row exactly 0 (not to scale)"]
    assert list(zero.get_xdata()) == [1, 4] and list(zero.get_ydata()) == pytest.approx([0.01 / 3] * 2)
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] < 0.01 / 3 < 0.5 < ax.get_ylim()[1]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("t", "x", "y")


def test_plot_row_norms_without_zero_rows_draws_no_crosses(ax):
    plot_row_norms(ax, torch.tensor([0.1, 0.2]), torch.tensor([1]))
    assert sorted(line.get_label() for line in ax.lines) == ["token absent, nonzero row", "token in the batch"]


@pytest.mark.parametrize("norms, present, error, message", [
    (torch.zeros(3), torch.tensor([0]), ValueError, "norms must have at least one nonzero row"),
    (torch.ones(3), torch.tensor([3]), ValueError, r"present must be ids in \[0, 3\), got values in \[3, 3\]"),
    (torch.ones(3, 2), torch.tensor([0]), ValueError, "norms must have 1 dim"),
    (torch.ones(3), torch.tensor([0.0]), TypeError, "present must be an integer tensor"),
])
def test_plot_row_norms_rejects_bad_input(ax, norms, present, error, message):
    with pytest.raises(error, match=message):
        plot_row_norms(ax, norms, present)


def test_scatter_groups_colours_each_group_and_names_the_first_and_chosen_points(ax):
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [3.0, 1.0], [4.0, 0.0]])  # (5, 2)
    groups = torch.tensor([0, 1, 0, 1, 1])
    scatter_groups(ax, points, groups, ["a", "b"], ["w0", "w1", "w2", "w3", "w4"], also_label=["w4"])
    first, second = ax.collections
    assert (first.get_label(), second.get_label()) == ("a", "b")
    assert first.get_offsets().tolist() == [[0.0, 0.0], [2.0, 0.0]]
    assert second.get_offsets().tolist() == [[1.0, 1.0], [3.0, 1.0], [4.0, 0.0]]
    assert [t.get_text() for t in ax.texts] == ["w0", "w1", "w4"]


@pytest.mark.parametrize("groups, names, message", [
    (torch.tensor([0, 2]), ["a", "b"], "groups must index group_names"),
    (torch.tensor([0, 1, 1]), ["a", "b"], "points must be"),
    (torch.tensor([0, 0]), [], "groups must index group_names"),
])
def test_scatter_groups_rejects_bad_input(ax, groups, names, message):
    with pytest.raises(ValueError, match=message):
        scatter_groups(ax, torch.zeros(2, 2), groups, names, ["x", "y"])
