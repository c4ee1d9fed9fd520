"""Tests for course_lib.notebook.token_plots: token labels, box layout, and figures that fit their boxes."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.notebook.plotting import subplots, use_course_style  # noqa: E402
from course_lib.notebook.token_plots import (  # noqa: E402
    BOX_COLOURS,
    HIGHLIGHT_COLOUR,
    VISIBLE_WHITESPACE,
    _drawable,
    plot_tokens,
    rows_needed,
    token_figure,
    token_label,
    token_pieces,
)
from course_lib.tokenization import BPETokenizer, WordLevelTokenizer, WordPieceTokenizer  # noqa: E402

TEXT = "The cat sat on the mat. The dog sat on the log. Where is the cat? 猫 ሰላም 😀\n" * 3
MIXED = "Tusos said: ሰላም 😀 नमस्ते $5 and\ta tab\n"


@pytest.fixture(scope="module", autouse=True)
def course_style():
    use_course_style()


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    tokenizer = BPETokenizer()
    tokenizer.train(TEXT, 290)
    return tokenizer


def box_extents(fig: Figure, ax) -> list:
    """Window extents of the boxes plot_tokens drew, after a real draw."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [text.get_bbox_patch().get_window_extent(renderer) for text in ax.texts]


# --- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("piece, label", [
    (b" cat", "␣cat"),
    ("##ing", "##ing"),
    ("[UNK]", "[UNK]"),
    (b"\n", "↵"),
    ("a\tb", "a⇥b"),
    (b"\xf0\x9f", "⟨f0 9f⟩"),  # the first two bytes of an emoji: not a whole character
    (b"\x80", "⟨80⟩"),
    ("ሰ", "⟨e1 88 b0⟩"),  # Ethiopic: DejaVu Sans has no glyph for it
    ("\U0010fffd", "⟨f4 8f bf bd⟩"),  # private use: no font draws it
    ("Привет", "Привет"),
])
def test_token_label(piece, label):
    assert token_label(piece) == label


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6))
def test_label_is_the_visible_text_if_drawable_else_its_bytes(text):
    visible = "".join(VISIBLE_WHITESPACE.get(char, char) for char in text)
    drawable = all(ord(char) in _drawable() for char in visible)
    label = token_label(text)
    if drawable:
        assert label == visible
    else:
        assert label == "⟨" + " ".join(f"{byte:02x}" for byte in text.encode("utf-8")) + "⟩"
    assert token_label(text.encode("utf-8")) == label


def test_label_rejects_bad_pieces():
    with pytest.raises(ValueError, match="empty"):
        token_label(b"")
    with pytest.raises(TypeError, match="str or bytes, got int"):
        token_label(7)


# --- pieces ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=20))
def test_bpe_pieces_are_the_bytes_of_the_text(bpe, text):
    pieces = token_pieces(bpe, text)
    assert b"".join(pieces) == text.encode("utf-8")
    assert len(pieces) == len(bpe.encode(text))


def test_string_tokenizers_give_their_tokens():
    words = WordLevelTokenizer()
    words.train(TEXT, 10)
    pieces = WordPieceTokenizer()
    pieces.train(TEXT, 40)
    for tokenizer in (words, pieces):
        assert token_pieces(tokenizer, "the cat and the zebra") == tokenizer.tokenize("the cat and the zebra")
    assert "[UNK]" in token_pieces(words, "the zebra")


def test_pieces_reject_other_objects():
    with pytest.raises(TypeError, match="course_lib tokenizer, got str"):
        token_pieces("not a tokenizer", "text")


# --- layout ---------------------------------------------------------------------------------------


def test_boxes_do_not_overlap_and_stay_inside_the_axes(bpe):
    pieces = token_pieces(bpe, TEXT)
    fig, ax = subplots(width=6, height=4)
    rows = plot_tokens(ax, pieces)
    assert [t.get_text() for t in ax.texts] == [token_label(p) for p in pieces]
    assert rows == rows_needed(pieces, ax.get_position().width * fig.get_figwidth()) and rows > 1
    boxes = box_extents(fig, ax)
    axes_box = ax.get_window_extent()
    assert all(axes_box.x0 - 1 <= b.x0 and b.x1 <= axes_box.x1 + 1 for b in boxes)
    assert all(b.x1 <= c.x0 for b, c in zip(boxes, boxes[1:]) if abs(b.y0 - c.y0) < 1)  # same row
    rows_y = sorted({round(b.y0) for b in boxes}, reverse=True)
    assert len(rows_y) == rows
    assert all(upper - lower > max(b.height for b in boxes) for upper, lower in zip(rows_y, rows_y[1:]))
    plt.close(fig)


def test_one_row_when_everything_fits():
    fig, ax = subplots(width=8, height=1)
    assert plot_tokens(ax, ["a", "b", "c"]) == 1
    assert plot_tokens(ax, []) == 0
    plt.close(fig)


def test_highlighted_pieces_get_the_highlight_box():
    fig, ax = subplots()
    plot_tokens(ax, ["the", "[UNK]", "cat", "[UNK]"], highlight={"[UNK]"})
    fills = [text.get_bbox_patch().get_facecolor() for text in ax.texts]
    highlighted = [fill == to_rgba(HIGHLIGHT_COLOUR) for fill in fills]
    assert highlighted == [False, True, False, True]
    assert [text.get_color() == "white" for text in ax.texts] == highlighted
    assert fills[0] in BOX_COLOURS and fills[2] in BOX_COLOURS  # ordinary boxes keep the palette
    with pytest.raises(TypeError, match="highlight must be a collection"):
        plot_tokens(ax, ["a"], highlight="[UNK]")
    plt.close(fig)


def test_drawing_any_script_emits_no_missing_glyph_warning(bpe):
    fig, ax = subplots(width=6, height=3)
    plot_tokens(ax, token_pieces(bpe, MIXED))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.canvas.draw()
    plt.close(fig)


def test_plot_tokens_rejects_bad_inputs():
    fig, ax = subplots()
    with pytest.raises(TypeError, match="sequence of str or bytes, got str"):
        plot_tokens(ax, "abc")
    with pytest.raises(ValueError, match="fontsize must be positive, got 0.0"):
        plot_tokens(ax, ["a"], fontsize=0)
    with pytest.raises(ValueError, match="empty pieces"):
        plot_tokens(ax, ["a", ""])
    with pytest.raises(ValueError, match="width must be positive, got 0.0"):
        rows_needed(["a"], width=0)
    with pytest.raises(TypeError, match="width must be a real number, got str '3'"):
        rows_needed(["a"], width="3")
    with pytest.raises(TypeError, match="width must be a real number, got bool True"):
        rows_needed(["a"], width=True)
    assert rows_needed(["a", "b"], width=np.float64(3.0), fontsize=np.int64(12)) == rows_needed(["a", "b"], 3.0)
    plt.close(fig)


# --- figures --------------------------------------------------------------------------------------


def test_token_figure_fits_its_panels(bpe):
    short = {"bytes": [bytes([b]) for b in b"cat"]}
    long = {"BPE": token_pieces(bpe, TEXT), "bytes": [bytes([b]) for b in TEXT.encode()]}
    small, big = token_figure(short), token_figure(long, title="two tokenizers")
    assert isinstance(big, Figure) and len(big.axes) == 2
    assert big.get_figheight() > small.get_figheight()
    big.canvas.draw()
    renderer = big.canvas.get_renderer()
    figure_box = big.bbox
    for ax in big.axes:
        for text in ax.texts:
            box = text.get_bbox_patch().get_window_extent(renderer)
            assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1
            assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1
    plt.close(small)
    plt.close(big)


def test_token_figure_rejects_bad_inputs():
    with pytest.raises(ValueError, match="non-empty mapping"):
        token_figure({})
    with pytest.raises(TypeError, match="panels must be a mapping of title -> pieces, got list"):
        token_figure([["a"]])
    with pytest.raises(ValueError, match="width must be positive, got -1.0"):
        token_figure({"a": ["a"]}, width=-1)
    with pytest.raises(ValueError, match=r"width must be more than the two 0.15-inch margins \(0.3 inches\), got 0.2"):
        token_figure({"a": ["a"]}, width=0.2)
