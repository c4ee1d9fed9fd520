"""Showing the library's own code and small tables inside a notebook.

Where a lesson is to *see* the code, the notebook shows the library's source with `show_source`
and then calls the function: one piece of code, in one place. Left out: anything interactive
(see `course_lib.notebook.widgets`).
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Sequence
from typing import Any

__all__ = ["SourceView", "show_source", "Table", "table"]


class SourceView:
    """A function's or class's source, rendered highlighted in Jupyter and as plain text elsewhere."""

    def __init__(self, obj: Any) -> None:
        try:
            self.source = inspect.getsource(obj)
        except (TypeError, OSError) as error:
            raise ValueError(f"obj must be a Python function, class or module with source, got {obj!r}") from error
        self.name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
        self.module = getattr(obj, "__module__", None) or ""  # a module has none: its title is its name

    def __repr__(self) -> str:
        return self.source.rstrip("\n")

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        formatter = HtmlFormatter(noclasses=True, style="friendly", nowrap=False)
        body = highlight(self.source, PythonLexer(), formatter)
        title = html.escape(f"{self.module}.{self.name}" if self.module else self.name)
        return f'<div><p style="margin:0;font-size:85%;color:#555"><code>{title}</code></p>{body}</div>'


def show_source(obj: Any) -> SourceView:
    """Return a view of `obj`'s source; as the last expression of a cell it renders highlighted."""
    return SourceView(obj)


class Table:
    """A small table that renders as HTML in Jupyter and as aligned text elsewhere (and in nbval)."""

    def __init__(self, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
        if isinstance(header, str):
            raise TypeError(f"header must be a sequence of column names, not a string, got {header!r}")
        rows = [list(row) for row in rows]
        for i, row in enumerate(rows):
            if len(row) != len(header):
                raise ValueError(f"rows[{i}] has {len(row)} cells, header has {len(header)}")
        self.rows = rows
        self.header = [str(name) for name in header]

    def _cells(self) -> list[list[str]]:
        return [[str(cell) for cell in row] for row in self.rows]

    def __repr__(self) -> str:
        cells = [self.header] + self._cells()
        widths = [max(len(row[j]) for row in cells) for j in range(len(self.header))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self._cells()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> Table:
    """A table of already-formatted values; format floats before passing them (rounded output)."""
    return Table(rows, header)
