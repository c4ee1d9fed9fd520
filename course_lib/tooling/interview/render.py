"""Lesson markdown as HTML for Anki and the cheat sheet, with its maths kept for MathJax.

Lessons write maths as ``$...$`` and ``$$...$$``; Anki and MathJax read ``\\(...\\)`` and
``\\[...\\]``. Maths is lifted out before the markdown is converted (so ``x_i`` and ``a * b`` are
not read as emphasis) and put back, escaped, afterwards; code spans keep their dollar signs.

    >>> to_html("**Bold** and $x_i^2$")
    '<p><strong>Bold</strong> and \\\\(x_i^2\\\\)</p>'

Left out: raw HTML in the lessons (escaped, shown as text) and rendering the maths itself (MathJax
in Anki or in the browser does that).
"""

from __future__ import annotations

import html
import re

import mistune

__all__ = ["to_html", "split_math", "unwrap"]

_CODE = re.compile(r"(`+).+?\1", re.DOTALL)
_MATH = re.compile(r"\$\$(?P<display>.+?)\$\$|\$(?P<inline>[^\s$](?:[^$]*?[^\s$])?)\$", re.DOTALL)
_PLACEHOLDER = "MATHSPAN{}END"
# A line break inside a paragraph (not before a blank line, a list item or a table row).
_SOFT_BREAK = re.compile(r"(?<=\S)[ \t]*\n(?![ \t]*(?:\n|[-*+] |\d+\. |\|))[ \t]*")
_MARKDOWN = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])


def split_math(text: str) -> tuple[str, list[str]]:
    """``text`` with each maths span outside code replaced by a placeholder, and the spans as
    MathJax delimits them (``\\(...\\)`` inline, ``\\[...\\]`` displayed), in order."""
    spans: list[str] = []

    def lift(match: re.Match) -> str:
        display = match.group("display")
        spans.append(rf"\[{display.strip()}\]" if display is not None else rf"\({match.group('inline')}\)")
        return _PLACEHOLDER.format(len(spans) - 1)

    pieces, last = [], 0
    for code in _CODE.finditer(text):  # maths is looked for between code spans only
        pieces += [_MATH.sub(lift, text[last:code.start()]), code.group(0)]
        last = code.end()
    pieces.append(_MATH.sub(lift, text[last:]))
    return "".join(pieces), spans


def to_html(text: str) -> str:
    """The markdown ``text`` as HTML, its maths delimited for MathJax."""
    lifted, spans = split_math(text)
    rendered = _MARKDOWN(lifted).strip()
    for index, span in enumerate(spans):
        rendered = rendered.replace(_PLACEHOLDER.format(index), html.escape(span, quote=False))
    return rendered


def unwrap(text: str) -> str:
    """Markdown ``text`` with each paragraph on one line, as a terminal shows it best."""
    return _SOFT_BREAK.sub(" ", text.strip())
