"""A quiz from the course's cards: one question at a time, the answer revealed on request.

Questions come in course order or shuffled with a seed (the same seed, the same order), restricted
to reading tracks (`syllabus.PARTS`), lessons or kinds of card. The mock-interview mode asks each
lesson's question and then its follow-ups, as an interviewer would; mistakes come as "True or false".

    >>> from course_lib.tooling.interview.cards import course_cards
    >>> [card.kind for card in quiz_order(course_cards(), lessons=[4], mock=True)][:2]
    ['answer', 'follow-up']

Left out: scoring (you judge your own answer) and spaced repetition (the Anki deck does that).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from course_lib.tooling.interview.cards import KINDS, Card, part_of
from course_lib.tooling.interview.render import unwrap
from course_lib.tooling.syllabus import LESSONS, PARTS
from course_lib.validation import integer, one_of

__all__ = ["ORDERS", "select_cards", "quiz_order", "prompt_text", "run_quiz"]

ORDERS = ("course", "random")


def select_cards(cards: Iterable[Card], parts: Iterable[int] | None = None, lessons: Iterable[int] | None = None,
                 kinds: Iterable[str] | None = None) -> list[Card]:
    """The cards in the given reading tracks, lessons and kinds (None: all); unknown values raise ValueError."""
    parts = _members(parts, range(1, len(PARTS) + 1), "parts")
    lessons = _members(lessons, range(1, len(LESSONS) + 1), "lessons")
    kinds = _members(kinds, KINDS, "kinds")
    return [card for card in cards
            if (parts is None or part_of(card.lesson) in parts)
            and (lessons is None or card.lesson in lessons)
            and (kinds is None or card.kind in kinds)]


def quiz_order(cards: Iterable[Card], order: str = "course", seed: int = 0, mock: bool = False,
               parts: Iterable[int] | None = None, lessons: Iterable[int] | None = None,
               kinds: Iterable[str] | None = None) -> list[Card]:
    """The selected cards in the order they are asked. ``mock``: lesson by lesson, the question and
    then its follow-ups (mistakes left out); with ``order="random"`` the lessons are shuffled."""
    order, seed = one_of(order, "order", ORDERS), integer(seed, "seed")
    if mock:
        kinds = ("answer", "follow-up")
    chosen = select_cards(cards, parts, lessons, kinds)
    if not mock:
        return random.Random(seed).sample(chosen, len(chosen)) if order == "random" else chosen
    numbers = list(dict.fromkeys(card.lesson for card in chosen))
    if order == "random":
        random.Random(seed).shuffle(numbers)
    return [card for number in numbers for card in chosen if card.lesson == number]


def prompt_text(card: Card) -> str:
    """What the quiz asks for ``card``."""
    lesson, front = f"[{card.lesson:02d} · {card.kind}]", unwrap(card.front)
    return f'{lesson} True or false: "{front}"' if card.kind == "mistake" else f"{lesson} {front}"


def run_quiz(cards: Sequence[Card], ask: Callable[[str], str] | None = None,
             say: Callable[[str], None] | None = None) -> int:
    """Ask each card in turn: ``ask`` waits for the learner (Enter reveals, "q" stops; default
    `input`), ``say`` shows text (default `print`). Returns the number of answers revealed."""
    ask, say = ask or input, say or print
    revealed = 0
    for number, card in enumerate(cards, start=1):
        say(f"\nQuestion {number} of {len(cards)} {prompt_text(card)}")
        if ask("Enter shows the answer, q stops: ").strip().lower() == "q":
            break
        say(unwrap(card.back))
        revealed += 1
    say(f"\n{revealed} of {len(cards)} answers seen.")
    return revealed


def _members(values: Iterable | None, allowed: Sequence, name: str) -> set | None:
    """``values`` as a set, each checked to be in ``allowed``; None stays None (no restriction)."""
    if values is None:
        return None
    values = set(values)
    unknown = sorted(values - set(allowed), key=str)
    if unknown or not values:
        raise ValueError(f"{name} must be a non-empty choice of {list(allowed)}, got {sorted(values, key=str)}")
    return values
