"""Everything the interview layer writes, in one folder: the Anki deck, the cheat sheet, the key
numbers and the cards as JSON (`make interview`, and the workshop bundle's `interview/`).

Left out: the quiz, which runs from the notebooks themselves (`quiz`, `widget`).
"""

from __future__ import annotations

import json
from pathlib import Path

from course_lib.tooling.interview.anki import card_guid, write_deck
from course_lib.tooling.interview.cards import course_cards
from course_lib.tooling.interview.cheatsheet import write_cheat_sheet
from course_lib.tooling.syllabus import NOTEBOOKS

__all__ = ["DECK_FILE", "CARDS_FILE", "build"]

DECK_FILE, CARDS_FILE = "llm_course.apkg", "cards.json"


def build(folder: Path, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Write the deck, the cheat sheet, the key numbers and the cards of the lessons in ``notebooks``
    into ``folder``; return the paths written."""
    folder = Path(folder)
    cards = course_cards(folder=notebooks)
    deck = write_deck(cards, folder / DECK_FILE)
    pages = write_cheat_sheet(folder, notebooks=notebooks)
    listing = folder / CARDS_FILE
    listing.write_text(json.dumps([{**card.__dict__, "guid": card_guid(card)} for card in cards], indent=1,
                                  ensure_ascii=False) + "\n", encoding="utf-8")
    return [deck, *pages, listing]
