"""Interactive figures that degrade to a static figure.

`explore(draw, name=control, ...)` shows a row of controls and one figure. The figure is an ordinary
display output drawn at the controls' initial values, so it is what GitHub, nbval and a PDF export
show; in a live notebook, moving a control redraws that same output in place (no second copy).
Left out: saved widget state (the notebooks store none) and layouts beyond one row of controls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure

from course_lib.validation import callable_arg, real

__all__ = ["slider", "Explorer", "explore"]


def slider(low: float, high: float, step: float, value: float, description: str = "") -> widgets.ValueWidget:
    """An `IntSlider` when all four numbers are ints, else a `FloatSlider`; validated."""
    for arg, number in (("low", low), ("high", high), ("step", step), ("value", value)):
        real(number, arg)
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    if not low <= value <= high:
        raise ValueError(f"value must lie in [{low}, {high}], got {value}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    kwargs = dict(min=low, max=high, step=step, value=value, description=description,
                  continuous_update=False, style={"description_width": "initial"})
    if all(isinstance(x, int) for x in (low, high, step, value)):  # bools were refused above
        return widgets.IntSlider(**kwargs)
    return widgets.FloatSlider(**kwargs)


def _as_control(name: str, control: Any) -> widgets.ValueWidget:
    if isinstance(control, widgets.ValueWidget):
        if not control.description:
            control.description = name
        return control
    if isinstance(control, tuple) and len(control) == 4:
        return slider(*control, description=name)
    raise TypeError(
        f"control {name!r} must be an ipywidgets value widget or a (low, high, step, value) tuple, "
        f"got {control!r}")


class Explorer:
    """Controls and a figure redrawn in place; `explore` builds one, tests drive it through `set`.

    `controls` maps each keyword of `draw` to an ipywidgets value widget or a `(low, high, step,
    value)` tuple, which becomes a slider.
    """

    def __init__(self, draw: Callable[..., Figure], controls: dict[str, Any]) -> None:
        callable_arg(draw, "draw")
        if not controls:
            raise ValueError("controls must name at least one control, got none")
        self.draw = draw
        self.controls = {name: _as_control(name, control) for name, control in controls.items()}
        self.box = widgets.HBox(list(self.controls.values()))
        self.figure = self._render()
        self.handle = None
        for control in self.controls.values():
            control.observe(self._redraw, names="value")

    @property
    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def _render(self) -> Figure:
        figure = self.draw(**self.values)
        if not isinstance(figure, Figure):
            raise TypeError(f"draw must return a matplotlib Figure, got {type(figure).__name__}")
        plt.close(figure)  # shown through the display handle only, never twice
        return figure

    def _redraw(self, _change: dict | None = None) -> None:
        self.figure = self._render()
        if self.handle is not None:
            self.handle.update(self.figure)

    def set(self, **values: Any) -> None:
        """Move controls programmatically (as a learner would with the mouse)."""
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"no control named {name!r}; controls are {list(self.controls)}")
            control = self.controls[name]
            low, high = getattr(control, "min", None), getattr(control, "max", None)
            if low is not None and high is not None and not low <= value <= high:
                # a slider would silently clamp it to the nearest end
                raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
            control.value = value

    def show(self) -> Explorer:
        display(self.box)
        self.handle = display(self.figure, display_id=True)
        return self


def explore(draw: Callable[..., Figure], **controls: Any) -> None:
    """Show controls and the figure `draw(**values)`; moving a control redraws the figure in place.

    Each keyword is a control: an ipywidgets value widget, or a `(low, high, step, value)` tuple
    made into a slider. `draw` takes the controls' values as keyword arguments and returns a
    matplotlib Figure. The first drawing, at the initial values, is the static fallback.
    Returns None, so that a cell ending in `explore(...)` prints nothing more; build an
    `Explorer(draw, controls).show()` to keep a handle.
    """
    Explorer(draw, controls).show()
