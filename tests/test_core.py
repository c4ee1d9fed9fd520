"""The notebook core: setup and seeding, device choice, source display, checks, widgets, style."""

from __future__ import annotations

import random
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib.notebook import display, plotting, runtime, widgets


@pytest.fixture(autouse=True)
def restore_setup_side_effects(monkeypatch):
    """setup() changes the warning format and the torch thread count for the whole process."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _streams() -> tuple:
    return random.random(), np.random.rand(), torch.rand(3)


def _same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_setup_makes_random_streams_repeat():
    runtime.setup(seed=3, style=False)
    first = _streams()
    runtime.setup(seed=3, style=False)
    assert _same(first, _streams())
    runtime.setup(seed=4, style=False)
    fourth = _streams()
    assert all(a != b for a, b in zip(first[:2], fourth[:2])) and not torch.equal(first[2], fourth[2])


def test_setup_fixes_threads_and_reports_a_version_line(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "2")  # not conftest's 1, so setting it must take effect
    info = runtime.setup(seed=0, style=False)
    assert torch.get_num_threads() == 2 and info.threads == 2
    assert runtime.setup(seed=0, threads=1, style=False).threads == 1 and torch.get_num_threads() == 1
    assert str(info).startswith("course_lib ") and "| seed 0" in str(info)


@pytest.mark.parametrize("threads, error, message", [
    (0, ValueError, "threads must be a positive integer, got 0"),
    (True, TypeError, "threads must be an integer, got True"),
    (1.5, TypeError, "threads must be an integer, got float 1.5"),
])
def test_bad_threads_are_named_before_anything_changes(threads, error, message):
    runtime.seed_everything(5)
    with pytest.raises(error, match=message):
        runtime.setup(seed=0, threads=threads, style=False)
    runtime_after = _streams()
    runtime.seed_everything(5)
    assert _same(runtime_after, _streams()), "setup reseeded before it rejected threads"


@pytest.mark.parametrize("raw", ["0", "-2", "two"])
def test_bad_thread_environment_is_named(monkeypatch, raw):
    monkeypatch.setenv(runtime.THREADS_ENV, raw)
    with pytest.raises(ValueError, match=runtime.THREADS_ENV):
        runtime.setup(style=False)


@pytest.mark.parametrize("seed, error, message", [
    (-1, ValueError, r"seed must be an integer in \[0, 4294967295\], got -1"),
    (2**32, ValueError, r"seed must be an integer in \[0, 4294967295\], got 4294967296"),
    (1.5, TypeError, "seed must be an integer, got float 1.5"),
    ("0", TypeError, "seed must be an integer, got str '0'"),
    (True, TypeError, "seed must be an integer, got True"),
])
def test_bad_seed(seed, error, message):
    with pytest.raises(error, match=message):
        runtime.seed_everything(seed)
    with pytest.raises(error, match=message):
        runtime.setup(seed=seed, style=False)


def test_largest_seed_and_numpy_integers_are_accepted():
    runtime.seed_everything(2**32 - 1)
    runtime.seed_everything(np.int64(7))
    first = torch.rand(3)
    runtime.seed_everything(7)
    assert torch.equal(first, torch.rand(3))
    info = runtime.setup(seed=np.uint32(3), threads=np.int64(1), style=False)
    assert (type(info.seed), type(info.threads)) == (int, int) and str(info).endswith("| seed 3")


def test_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.get_device().type == expected
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer must be one of None, 'cpu', 'cuda'; got 'tpu'"):
        runtime.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="prefer='cuda'"):
            runtime.get_device("cuda")


def test_warnings_print_without_file_paths():
    runtime.setup(style=False)
    text = warnings.formatwarning("careful", UserWarning, "/some/machine/path.py", 12)
    assert text == "UserWarning: careful\n"


def test_show_source_returns_the_real_source_highlighted():
    view = display.show_source(runtime.seed_everything)
    assert repr(view).startswith("def seed_everything(seed: int) -> None:")
    assert "course_lib.notebook.runtime.seed_everything" in view._repr_html_()
    assert "<code>course_lib.notebook.display.Table</code>" in display.show_source(display.Table)._repr_html_()
    assert "<code>course_lib.notebook.runtime</code>" in display.show_source(runtime)._repr_html_()
    with pytest.raises(ValueError, match="obj must be"):
        display.show_source(3)


def test_table_aligns_text_and_checks_row_lengths():
    text = repr(display.table([["a", "1.00"], ["bb", "10.00"]], header=["name", "value"]))
    assert text.splitlines() == ["name  value", "----  -----", "   a   1.00", "  bb  10.00"]
    with pytest.raises(ValueError, match=r"rows\[0\]"):
        display.table([["a"]], header=["x", "y"])
    with pytest.raises(TypeError, match="header must be"):
        display.table([["x", "y"]], header="ab")
    assert repr(display.table([[1, 2]], header=["a", 1])).splitlines()[0] == "a  1"


def test_table_html_escapes_cells_and_header():
    html = display.table([["<b>", "a & b"]], header=["x<y", "z"])._repr_html_()
    assert "<th>x&lt;y</th>" in html and "<td>&lt;b&gt;</td>" in html and "<td>a &amp; b</td>" in html


def _draw(scale: float):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, scale])
    ax.set_title(f"scale {scale}")
    return fig


@pytest.mark.parametrize("control", [widgets.slider(0.5, 2.0, 0.5, 1.0, "scale"), (0.5, 2.0, 0.5, 1.0)])
def test_explorer_redraws_when_a_control_moves(control):
    explorer = widgets.Explorer(_draw, {"scale": control})
    assert explorer.figure.axes[0].get_title() == "scale 1.0"
    explorer.set(scale=2.0)
    assert explorer.figure.axes[0].get_title() == "scale 2.0"
    with pytest.raises(ValueError, match="no control named"):
        explorer.set(width=3)
    with pytest.raises(ValueError, match=r"scale must lie in \[0.5, 2.0\], got 100.0"):
        explorer.set(scale=100.0)  # a slider would silently clamp it to 2.0
    assert explorer.values == {"scale": 2.0}


def test_explore_shows_the_controls_and_the_first_figure(monkeypatch):
    shown = []
    handle = type("Handle", (), {"update": lambda self, figure: shown.append(("update", figure))})()

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return handle if display_id else None

    monkeypatch.setattr(widgets, "display", fake_display)
    assert widgets.explore(_draw, scale=(0.5, 2.0, 0.5, 1.0)) is None
    (kind_box, box), (kind_fig, figure) = shown
    assert kind_box == kind_fig == "display" and isinstance(box, widgets.widgets.HBox)
    assert box.children[0].description == "scale" and figure.axes[0].get_title() == "scale 1.0"
    box.children[0].value = 1.5  # as a learner moving the slider
    assert shown[-1][0] == "update" and shown[-1][1].axes[0].get_title() == "scale 1.5"


def test_slider_kinds_and_bad_controls():
    assert type(widgets.slider(1, 5, 1, 2)).__name__ == "IntSlider"
    assert type(widgets.slider(0.1, 1.0, 0.1, 0.5)).__name__ == "FloatSlider"
    with pytest.raises(ValueError, match="value must lie in"):
        widgets.slider(0, 1, 0.1, 3)
    with pytest.raises(TypeError, match="control 'scale'"):
        widgets.explore(_draw, scale=[1, 2])
    with pytest.raises(TypeError, match="step must be a real number, got bool True"):
        widgets.slider(0, 2, True, 1)
    with pytest.raises(TypeError, match="low must be a real number, got str '0'"):
        widgets.slider("0", 2, 1, 1)
    assert type(widgets.slider(np.int64(0), 4, 1, 2)).__name__ == "FloatSlider"  # an IntSlider takes Python ints
    with pytest.raises(TypeError, match="draw must return a matplotlib Figure"):
        widgets.Explorer(lambda scale: None, {"scale": widgets.slider(0, 1, 1, 0)})


@pytest.mark.parametrize("args, argument", [
    ((5, 1, 1, 3), "low must be < high"),
    ((0.0, 1.0, float("nan"), 0.5), "step must be a finite number, got nan"),
    ((0.0, float("inf"), 0.1, 0.5), "high must be a finite number, got inf"),
    ((0, 1, 0, 0), "step must be > 0"),
    ((0, 1, -0.1, 0), "step must be > 0"),
])
def test_slider_rejects_bad_ranges_and_steps(args, argument):
    with pytest.raises(ValueError, match=argument):
        widgets.slider(*args)


def test_explorer_checks_its_draw_function_and_controls():
    with pytest.raises(TypeError, match="draw must be callable"):
        widgets.Explorer(3, {"scale": (0.5, 2.0, 0.5, 1.0)})
    with pytest.raises(ValueError, match="controls must name at least one control"):
        widgets.Explorer(lambda: plt.figure(), {})
    with pytest.raises(ValueError, match="controls must name at least one control"):
        widgets.explore(lambda: plt.figure())


def test_course_style_sets_palette():
    plotting.use_course_style()
    assert plt.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.PALETTE[0]
    fig, axes = plotting.subplots(ncols=2)
    assert len(axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="ncols must be a positive integer, got 0"):
        plotting.subplots(ncols=0)
    with pytest.raises(TypeError, match="nrows must be an integer, got float 1.0"):
        plotting.subplots(nrows=1.0)
    fig, axes = plotting.subplots(ncols=np.int64(3))
    assert len(axes) == 3
    plt.close(fig)
