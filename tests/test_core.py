"""The notebook core: setup and seeding, device choice, source display, checks, widgets, style."""

from __future__ import annotations

import random
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import checks, display, plotting, runtime, widgets


def test_setup_makes_random_streams_repeat():
    runtime.setup(seed=3, style=False)
    first = (random.random(), np.random.rand(), torch.rand(3))
    runtime.setup(seed=3, style=False)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_setup_fixes_threads_and_reports_a_version_line(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    info = runtime.setup(seed=0, style=False)
    assert torch.get_num_threads() == 1 and info.threads == 1
    assert str(info).startswith("course_lib ") and "| seed 0" in str(info)


@pytest.mark.parametrize("raw", ["0", "-2", "two"])
def test_bad_thread_environment_is_named(monkeypatch, raw):
    monkeypatch.setenv(runtime.THREADS_ENV, raw)
    with pytest.raises(ValueError, match=runtime.THREADS_ENV):
        runtime.setup(style=False)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be"):
        runtime.seed_everything(seed)


def test_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.get_device().type == expected
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer"):
        runtime.get_device("tpu")


def test_warnings_print_without_file_paths():
    runtime.setup(style=False)
    text = warnings.formatwarning("careful", UserWarning, "/some/machine/path.py", 12)
    assert text == "UserWarning: careful\n"


def test_show_source_returns_the_real_source_highlighted():
    view = display.show_source(runtime.seed_everything)
    assert repr(view).startswith("def seed_everything(seed: int) -> None:")
    assert "course_lib.runtime.seed_everything" in view._repr_html_()
    with pytest.raises(ValueError, match="obj must be"):
        display.show_source(3)


def test_table_aligns_text_and_checks_row_lengths():
    text = repr(display.table([["a", "1.00"], ["bb", "10.00"]], header=["name", "value"]))
    assert text.splitlines() == ["name  value", "----  -----", "   a   1.00", "  bb  10.00"]
    with pytest.raises(ValueError, match=r"rows\[0\]"):
        display.table([["a"]], header=["x", "y"])


def test_check_close_passes_and_explains_failures(capsys):
    checks.check_close(torch.tensor([1.0, 2.0]), [1.0, 2.0], name="Exercise 1")
    assert "Exercise 1: check passed" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match=r"expected shape \(2,\), got shape \(3,\)"):
        checks.check_close([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(checks.CheckFailed, match="largest difference 0.5") as info:
        checks.check_close([1.0, 2.5], [1.0, 2.0], hint="look again")
    assert "Hint: look again" in str(info.value)
    with pytest.raises(checks.CheckFailed, match="got None"):
        checks.check_close(None, 1.0)
    with pytest.raises(checks.CheckFailed, match="NaN"):
        checks.check_close(float("nan"), 1.0)


def test_check_equal_is_exact():
    checks.check_equal([1, 2], [1, 2])
    checks.check_equal(3, 3.0)
    checks.check_equal(torch.tensor([1, 2]), np.array([1, 2]))
    for got, expected in [([1, 2], (1, 2)), ("a", "b"), (True, 1), (torch.tensor([1, 2]), [1, 2, 3])]:
        with pytest.raises(checks.CheckFailed, match="expected"):
            checks.check_equal(got, expected)


def test_check_true_and_check_raises():
    checks.check_true(True, "ok", "never shown")
    with pytest.raises(checks.CheckFailed, match="it was false"):
        checks.check_true(False, "claim", "it was false")
    with pytest.raises(TypeError, match="condition must be a bool"):
        checks.check_true("yes", "claim", "reason")
    checks.check_raises(lambda: int("x"), ValueError, match="invalid literal")
    with pytest.raises(checks.CheckFailed, match="nothing was raised"):
        checks.check_raises(lambda: 1, ValueError)
    with pytest.raises(checks.CheckFailed, match="expected ValueError, got KeyError"):
        checks.check_raises(lambda: {}["k"], ValueError)
    with pytest.raises(NotImplementedError):
        checks.check_raises(lambda: (_ for _ in ()).throw(NotImplementedError()), ValueError)


def _draw(scale: float):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, scale])
    ax.set_title(f"scale {scale}")
    return fig


def test_explorer_redraws_when_a_control_moves():
    explorer = widgets.Explorer(_draw, {"scale": widgets.slider(0.5, 2.0, 0.5, 1.0, "scale")})
    assert explorer.figure.axes[0].get_title() == "scale 1.0"
    explorer.set(scale=2.0)
    assert explorer.figure.axes[0].get_title() == "scale 2.0"
    with pytest.raises(ValueError, match="no control named"):
        explorer.set(width=3)


def test_slider_kinds_and_bad_controls():
    assert type(widgets.slider(1, 5, 1, 2)).__name__ == "IntSlider"
    assert type(widgets.slider(0.1, 1.0, 0.1, 0.5)).__name__ == "FloatSlider"
    with pytest.raises(ValueError, match="value must lie in"):
        widgets.slider(0, 1, 0.1, 3)
    with pytest.raises(ValueError, match="control 'scale'"):
        widgets.explore(_draw, scale=[1, 2])
    with pytest.raises(TypeError, match="draw must return a matplotlib Figure"):
        widgets.Explorer(lambda scale: None, {"scale": widgets.slider(0, 1, 1, 0)})


def test_course_style_sets_palette():
    plotting.use_course_style()
    assert plt.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.PALETTE[0]
    fig, axes = plotting.subplots(ncols=2)
    assert len(axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="ncols"):
        plotting.subplots(ncols=0)
