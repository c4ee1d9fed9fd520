"""An Anki deck of the course's cards (`genanki`): one note per answer, follow-up and mistake.

Each note's GUID comes from its card's identity (the lesson and the cell's id), so importing a
rebuilt deck updates the notes whose text a lesson corrected instead of adding duplicates. Notes are
tagged by lesson, reading track (`syllabus.PARTS`) and kind; maths is delimited for Anki's MathJax.

Left out: scheduling (Anki's own), media (cards are text only) and a reverse card for each note.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import genanki

from course_lib.tooling.interview.cards import Card, part_of
from course_lib.tooling.interview.render import to_html
from course_lib.tooling.syllabus import LESSONS

__all__ = ["DECK_ID", "MODEL_ID", "DECK_NAME", "card_guid", "card_tags", "card_fields", "build_deck",
           "write_deck"]

DECK_ID = 1_730_512_093  # fixed once: Anki recognises the deck across rebuilds by these ids
MODEL_ID = 1_730_512_094
DECK_NAME = "How large language models work, in fifty questions"
_KIND_LABEL = {"answer": "The 30-second answer", "follow-up": "Follow-up question", "mistake": "Common mistake"}
_MODEL = genanki.Model(
    MODEL_ID, "LLM course card",
    fields=[{"name": "Front"}, {"name": "Back"}, {"name": "Lesson"}, {"name": "Kind"}],
    templates=[{
        "name": "Card",
        "qfmt": '<div class="meta">{{Lesson}} · {{Kind}}</div>{{Front}}',
        "afmt": '{{FrontSide}}<hr id="answer">{{Back}}',
    }],
    css=".card { font-family: sans-serif; font-size: 18px; text-align: left; max-width: 42em; margin: auto; }\n"
        ".meta { color: #777; font-size: 13px; margin-bottom: 0.6em; }\n"
        "code { background: #f2f2f2; padding: 0 0.2em; }",
)


def card_guid(card: Card) -> str:
    """The note's GUID: a hash of the card's identity, the same in every build."""
    return genanki.guid_for(card.identity)


def card_tags(card: Card) -> list[str]:
    """Anki tags (no spaces allowed): lesson, reading track and kind."""
    return [f"llm-course::lesson-{card.lesson:02d}", f"llm-course::part-{part_of(card.lesson)}",
            f"llm-course::{card.kind}"]


def card_fields(card: Card) -> list[str]:
    """The note's fields as HTML: front, back, lesson title, kind."""
    front = f'True or false: "{card.front}"' if card.kind == "mistake" else card.front
    lesson = LESSONS[card.lesson - 1]
    return [to_html(front), to_html(card.back), f"{lesson.number:02d} · {lesson.question}", _KIND_LABEL[card.kind]]


def build_deck(cards: Sequence[Card]) -> genanki.Deck:
    """The deck of ``cards``, one note each; two cards with one identity raise ValueError."""
    deck = genanki.Deck(DECK_ID, DECK_NAME)
    seen: set[str] = set()
    for card in cards:
        if card.identity in seen:
            raise ValueError(f"cards must have distinct identities, got {card.identity!r} twice")
        seen.add(card.identity)
        deck.add_note(genanki.Note(model=_MODEL, fields=card_fields(card), tags=card_tags(card),
                                   guid=card_guid(card)))
    return deck


def write_deck(cards: Sequence[Card], path: Path) -> Path:
    """Write the deck of ``cards`` to the ``.apkg`` file ``path`` and return the path."""
    path = Path(path)
    if path.suffix != ".apkg":
        raise ValueError(f"path must end in .apkg, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    genanki.Package(build_deck(cards)).write_to_file(str(path))
    return path
