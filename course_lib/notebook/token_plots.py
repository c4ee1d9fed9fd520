"""Drawing a tokenization: the text cut into its tokens, one coloured box per token.

`token_pieces` asks a tokenizer for the pieces of a text (bytes for byte-level BPE, strings for the
word-level and WordPiece tokenizers), `token_label` turns one piece into what its box shows, and
`plot_tokens` lays the boxes out left to right on an axes, wrapping at its right edge (`rows_needed`
says how many rows that takes), optionally highlighting some pieces such as ``[UNK]``.
`token_figure` stacks several tokenizations of a text in one figure sized to fit them.

What a box shows: the piece's text, with a space drawn as ``␣``, a newline as ``↵`` and a tab as
``⇥``. A piece that is not whole UTF-8 characters (byte-level BPE may cut a character, e.g. an emoji,
into several tokens), or that holds a character the figure's font cannot draw (matplotlib's
DejaVu Sans has no Devanagari, Ethiopic, Thai or CJK glyphs), shows its bytes in hex instead:
``⟨e1 88 b0⟩``. So a drawing never has missing-glyph boxes, and a byte token looks like what it is.

Left out: right-to-left layout and shaping (Arabic and Hebrew letters are drawn one by one, left to
right), colouring by token id (boxes alternate colours by position so neighbours always differ),
and interactive hover (the figures are static images).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.textpath import text_to_path
from matplotlib.transforms import ScaledTranslation

from course_lib.notebook.plotting import PALETTE
from course_lib.tokenization import BPETokenizer, Tokenizer
from course_lib.validation import positive_number

__all__ = [
    "VISIBLE_WHITESPACE", "BOX_COLOURS", "HIGHLIGHT_COLOUR", "token_pieces", "token_label", "rows_needed",
    "plot_tokens", "token_figure",
]

VISIBLE_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥"}
"""How whitespace inside a piece is drawn."""

BOX_COLOURS = tuple(to_rgba(colour, 0.28) for colour in PALETTE[:6])
"""Box fill colours, used in turn (the first six colours of the course palette, translucent)."""

HIGHLIGHT_COLOUR = PALETTE[1]
"""Fill of a highlighted box (e.g. every ``[UNK]``), drawn with white text."""

_PAD = 0.3  # box padding, in units of the font size
_GAP = 0.35  # space between boxes, in units of the font size
_LINE = 2.1  # distance between rows, in units of the font size
_POINTS_PER_INCH = 72.0


@functools.lru_cache(maxsize=8)
def _code_points(font_path: str) -> frozenset[int]:
    """Code points the font file at ``font_path`` has glyphs for."""
    return frozenset(get_font(font_path).get_charmap())


def _drawable() -> frozenset[int]:
    """Code points of the font that matplotlib draws text with, under the current settings."""
    return _code_points(findfont(FontProperties()))


def _hex(data: bytes) -> str:
    return "⟨" + " ".join(f"{byte:02x}" for byte in data) + "⟩"


def _check_piece(piece: object, position: int) -> str | bytes:
    if not isinstance(piece, (str, bytes)):
        raise TypeError(f"pieces must contain str or bytes, got {type(piece).__name__} at position {position}")
    if not piece:
        raise ValueError(f"pieces must not contain empty pieces, got {piece!r} at position {position}")
    return piece


def _check_pieces(pieces: object) -> list[str | bytes]:
    if isinstance(pieces, (str, bytes)) or not isinstance(pieces, Sequence):
        raise TypeError(f"pieces must be a sequence of str or bytes, got {type(pieces).__name__}")
    return [_check_piece(piece, position) for position, piece in enumerate(pieces)]


def token_pieces(tokenizer: Tokenizer, text: str) -> list[str | bytes]:
    """The pieces ``tokenizer`` cuts ``text`` into, one per token id, in order.

    Byte-level BPE gives each token's bytes (a token may be part of a character); the word-level and
    WordPiece tokenizers give their string tokens (``[UNK]`` included, ``##`` marking continuations).
    """
    if isinstance(tokenizer, BPETokenizer):
        return [tokenizer.vocab[i] for i in tokenizer.encode(text)]
    tokenize = getattr(tokenizer, "tokenize", None)
    if not isinstance(tokenizer, Tokenizer) or tokenize is None:
        raise TypeError(f"tokenizer must be a course_lib tokenizer, got {type(tokenizer).__name__}")
    return tokenize(text)


def token_label(piece: str | bytes) -> str:
    """What the box of ``piece`` shows: its text with visible whitespace, or its bytes in hex.

    >>> token_label(b" cat"), token_label("##ing"), token_label(b"\\xf0\\x9f")
    ('␣cat', '##ing', '⟨f0 9f⟩')
    """
    piece = _check_piece(piece, 0)
    data = piece.encode("utf-8") if isinstance(piece, str) else piece
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _hex(data)
    label = "".join(VISIBLE_WHITESPACE.get(char, char) for char in text)
    drawable = _drawable()
    return label if all(ord(char) in drawable for char in label) else _hex(data)


def _width_points(label: str, fontsize: float) -> float:
    """Width of ``label`` drawn at ``fontsize``, in points (no box)."""
    width, _, _ = text_to_path.get_text_width_height_descent(label, FontProperties(size=fontsize), ismath=False)
    return width


def _layout(labels: Sequence[str], width: float, fontsize: float) -> list[tuple[float, int]]:
    """Left edge (points) and row of each box, filling rows of ``width`` points left to right."""
    places, x, row = [], 0.0, 0
    for label in labels:
        box = _width_points(label, fontsize) + 2 * _PAD * fontsize
        if x > 0 and x + box > width:
            x, row = 0.0, row + 1
        places.append((x, row))
        x += box + _GAP * fontsize
    return places


def _axes_width_points(ax: Axes) -> float:
    return ax.get_position().width * ax.figure.get_figwidth() * _POINTS_PER_INCH


def rows_needed(pieces: Sequence[str | bytes], width: float, fontsize: float = 12.0) -> int:
    """How many rows `plot_tokens` uses for ``pieces`` on an axes ``width`` inches wide."""
    pieces = _check_pieces(pieces)
    fontsize = positive_number(fontsize, "fontsize")
    width = positive_number(width, "width")
    places = _layout([token_label(p) for p in pieces], width * _POINTS_PER_INCH, fontsize)
    return places[-1][1] + 1 if places else 0


def _text_colour(label: str, highlighted: bool) -> str:
    if highlighted:
        return "white"
    return "#444444" if label.startswith("⟨") else "black"


def plot_tokens(ax: Axes, pieces: Sequence[str | bytes], fontsize: float = 12.0,
                highlight: Collection[str | bytes] = ()) -> int:
    """Draw ``pieces`` on ``ax`` as coloured boxes, from its top-left corner; return the rows used.

    Boxes go left to right and wrap at the axes' right edge; rows are ``2.1 * fontsize`` points
    apart, so an axes needs ``rows * 2.1 * fontsize`` points of height (`token_figure` sizes its
    panels that way). Pieces equal to one in ``highlight`` (e.g. ``{"[UNK]"}``) get a solid
    `HIGHLIGHT_COLOUR` box. The axes' frame and ticks are turned off.
    """
    pieces = _check_pieces(pieces)
    fontsize = positive_number(fontsize, "fontsize")
    if isinstance(highlight, (str, bytes)):
        raise TypeError(f"highlight must be a collection of pieces, got {type(highlight).__name__}")
    highlight = set(highlight)
    labels = [token_label(p) for p in pieces]
    places = _layout(labels, _axes_width_points(ax), fontsize)
    for index, (piece, label, (x, row)) in enumerate(zip(pieces, labels, places)):
        highlighted = piece in highlight
        fill = HIGHLIGHT_COLOUR if highlighted else BOX_COLOURS[index % len(BOX_COLOURS)]
        y = (row + 0.5) * _LINE * fontsize
        offset = ScaledTranslation((x + _PAD * fontsize) / _POINTS_PER_INCH, -y / _POINTS_PER_INCH,
                                   ax.figure.dpi_scale_trans)
        ax.text(0, 1, label, transform=ax.transAxes + offset, fontsize=fontsize, ha="left", va="center",
                parse_math=False, color=_text_colour(label, highlighted),
                bbox=dict(boxstyle=f"round,pad={_PAD}", facecolor=fill, edgecolor="none"))
    ax.set_axis_off()
    return places[-1][1] + 1 if places else 0


def token_figure(panels: Mapping[str, Sequence[str | bytes]], width: float = 9.0, fontsize: float = 12.0,
                 title: str | None = None, highlight: Collection[str | bytes] = ()) -> Figure:
    """One figure with one row of panels per entry of ``panels`` (panel title -> pieces), sized to fit.

    Each panel gets as much height as its pieces need at ``width`` inches, so long tokenizations
    wrap instead of overflowing; ``highlight`` is passed to `plot_tokens`. Returns the Figure (call
    ``plt.show()`` or hand it to a widget).
    """
    if not isinstance(panels, Mapping):
        raise TypeError(f"panels must be a mapping of title -> pieces, got {type(panels).__name__}")
    if not panels:
        raise ValueError("panels must be a non-empty mapping of title -> pieces, got an empty one")
    fontsize = positive_number(fontsize, "fontsize")
    margin, heading = 0.15, 0.32  # inches: around the figure, and above each panel for its title
    if positive_number(width, "width") <= 2 * margin:
        raise ValueError(f"width must be more than the two {margin}-inch margins ({2 * margin} inches), got {width!r}")
    inner = width - 2 * margin
    rows = [max(1, rows_needed(pieces, inner, fontsize)) for pieces in panels.values()]
    heights = [heading + r * _LINE * fontsize / _POINTS_PER_INCH for r in rows]
    top = 0.35 if title else 0.0
    height = top + sum(heights) + 2 * margin
    fig = plt.figure(figsize=(width, height), layout="none")
    if title:
        fig.suptitle(title, x=margin / width, y=1 - margin / height, ha="left", va="top",
                     fontsize=plt.rcParams["axes.titlesize"])
    y = height - margin - top
    for (name, pieces), panel_height in zip(panels.items(), heights):
        y -= panel_height
        ax = fig.add_axes((margin / width, y / height, inner / width, (panel_height - heading) / height))
        plot_tokens(ax, pieces, fontsize, highlight)
        ax.set_title(name, loc="left", fontsize=fontsize * 0.9, pad=4)
    return fig
