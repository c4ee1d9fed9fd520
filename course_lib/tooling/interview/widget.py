"""The quiz in a notebook: the question as Markdown, and buttons to reveal the answer and go on.

The first question is an ordinary display output, so the notebook reads the same on GitHub and
under nbval; in a live notebook the buttons update that output in place.

Left out: choosing tracks or lessons with controls (the cell's arguments choose them) and scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
from IPython.display import Markdown, display

from course_lib.tooling.interview.cards import Card
from course_lib.tooling.interview.quiz import prompt_text

__all__ = ["QuizWidget", "show_quiz"]


class QuizWidget:
    """A quiz over ``cards`` in the given order; `reveal` and `next` are what the buttons call."""

    def __init__(self, cards: Sequence[Card]) -> None:
        if not cards:
            raise ValueError("cards must hold at least one card, got none")
        self.cards, self.index, self.revealed = list(cards), 0, False
        self.reveal_button = widgets.Button(description="Show the answer")
        self.next_button = widgets.Button(description="Next question")
        self.reveal_button.on_click(lambda _button: self.reveal())
        self.next_button.on_click(lambda _button: self.next())
        self.handle = None

    def text(self) -> str:
        """The Markdown shown now: the question, and its answer once revealed."""
        card = self.cards[self.index]
        question = f"**Question {self.index + 1} of {len(self.cards)}** {prompt_text(card)}"
        return f"{question}\n\n{card.back}" if self.revealed else question

    def reveal(self) -> None:
        self.revealed = True
        self._update()

    def next(self) -> None:
        """The next question (after the last, the first again)."""
        self.index, self.revealed = (self.index + 1) % len(self.cards), False
        self._update()

    def show(self) -> QuizWidget:
        display(widgets.HBox([self.reveal_button, self.next_button]))
        self.handle = display(Markdown(self.text()), display_id=True)
        return self

    def _update(self) -> None:
        if self.handle is not None:
            self.handle.update(Markdown(self.text()))


def show_quiz(cards: Sequence[Card]) -> None:
    """Show a quiz over ``cards``. Returns None, so that a cell ending in it prints nothing more;
    build a `QuizWidget(cards).show()` to keep a handle."""
    QuizWidget(cards).show()
