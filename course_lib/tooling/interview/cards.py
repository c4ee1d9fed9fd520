"""Flashcards read from the lessons' tagged cells: the 30-second answer, each follow-up question and
each common mistake, so that a corrected lesson corrects its card.

A lesson has one markdown cell tagged ``answer`` (its question on the front, the answer on the back),
2-4 cells tagged ``follow-up`` (``**Question?** short answer``) and 1-4 cells tagged ``mistake``
(``**"the common claim"** the correction, with its evidence, in one or two sentences``). Heading
lines (``## ...``) in a tagged cell are not part of its card. A card's identity is the lesson and the
cell's id, so a rebuilt deck updates a card whose text changed instead of adding a new one.

    >>> cards = lesson_cards(LESSONS[3])
    >>> [card.kind for card in cards][:2]
    ['answer', 'mistake']

Left out: the lesson's code and figures (a card is text only) and cells without one of the three tags.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.tooling.syllabus import LESSONS, NOTEBOOKS, PARTS, Lesson

__all__ = ["KINDS", "MAX_CORRECTION_WORDS", "MAX_CORRECTION_SENTENCES", "Card", "lesson_cards",
           "course_cards", "sentence_count", "part_of"]

KINDS = ("answer", "follow-up", "mistake")
MAX_CORRECTION_WORDS = 70
MAX_CORRECTION_SENTENCES = 2

_HEADING = re.compile(r"#{1,6}\s")  # a markdown heading line; "#2" in wrapped prose is not one
_LEAD = re.compile(r"\*\*(?P<lead>.+?)\*\*(?P<rest>.*)", re.DOTALL)
_CLAIM = re.compile(r'"(?P<claim>.+)"', re.DOTALL)
# Spans whose dots do not end a sentence: maths, code, and the abbreviations the lessons use.
_NOT_SENTENCE_ENDS = re.compile(r"\$\$.+?\$\$|\$[^$]+\$|`[^`]+`|\bet al\.|\be\.g\.|\bi\.e\.|\bvs\.|\bcf\.|"
                                r"\bFig\.|\bEq\.|\bNo\.|\bapprox\.|\d\.\d", re.DOTALL)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


@dataclass(frozen=True)
class Card:
    """One flashcard: ``front`` and ``back`` are markdown (with ``$...$`` maths) taken from a lesson."""

    lesson: int
    kind: str
    cell_id: str
    front: str
    back: str

    @property
    def identity(self) -> str:
        """What stays the same while the card's text is corrected: the lesson and the cell's id."""
        return f"lesson-{self.lesson:02d}/{self.cell_id}"


def lesson_cards(lesson: Lesson, folder: Path = NOTEBOOKS) -> list[Card]:
    """The cards of one lesson, in notebook order; a tagged cell of the wrong form raises ValueError."""
    path = Path(folder) / lesson.notebook
    notebook = nbformat.read(path, as_version=4)
    cards = []
    for index, cell in enumerate(notebook.cells):
        kinds = [tag for tag in cell.metadata.get("tags", []) if tag in KINDS]
        if not kinds:
            continue
        where = f"{path.name} cell {index}"
        if len(kinds) > 1 or cell.cell_type != "markdown":
            raise ValueError(f"{where}: a card is one markdown cell with one of the tags {KINDS}, got "
                             f"a {cell.cell_type} cell tagged {kinds}")
        cards.append(_card(lesson, kinds[0], cell.get("id") or f"cell-{index}", _body(cell.source), where))
    return cards


def course_cards(lessons: Iterable[Lesson] = LESSONS, folder: Path = NOTEBOOKS) -> list[Card]:
    """The cards of every lesson in ``lessons`` whose notebook exists, in course order."""
    return [card for lesson in lessons if lesson.exists(folder) for card in lesson_cards(lesson, folder)]


def part_of(lesson_number: int) -> int:
    """The number (1-based) of the reading track in `syllabus.PARTS` that holds the lesson."""
    for number, part in enumerate(PARTS, start=1):
        if lesson_number in part.lessons:
            return number
    raise ValueError(f"lesson_number must be a lesson of the course, got {lesson_number!r}")


def sentence_count(text: str) -> int:
    """The number of sentences of ``text``: maths, code and abbreviations such as "et al." ignored."""
    pieces = _SENTENCE_END.split(_NOT_SENTENCE_ENDS.sub("x", text.strip()))
    return sum(1 for piece in pieces if piece.strip())


def _body(source: str) -> str:
    """A tagged cell's text without its heading lines."""
    lines = [line for line in source.strip().split("\n") if not _HEADING.match(line)]
    return "\n".join(lines).strip()


def _card(lesson: Lesson, kind: str, cell_id: str, body: str, where: str) -> Card:
    """The card of one tagged cell; ``where`` names the cell in error messages."""
    if kind == "answer":
        return Card(lesson.number, kind, cell_id, lesson.question, body)
    match = _LEAD.fullmatch(body)
    if not match or not match.group("rest").strip():
        form = '**"the common claim"** the correction' if kind == "mistake" else "**The question?** the answer"
        raise ValueError(f"{where}: a {kind} cell reads {form}, got {body[:60]!r}")
    lead, rest = match.group("lead").strip(), match.group("rest").strip()
    if kind == "mistake":
        claim = _CLAIM.fullmatch(lead)
        if not claim:
            raise ValueError(f'{where}: a mistake cell starts with the claim in quotes, **"..."**, got {lead!r}')
        lead = claim.group("claim").strip()
    return Card(lesson.number, kind, cell_id, lead, rest)
