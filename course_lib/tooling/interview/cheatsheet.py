"""The cheat sheet: every question, its 30-second answer and its key numbers, in course order, as one
Markdown page and one HTML page; and the key-numbers table, every registered number with its source
and the text it was checked against, as a page of its own (a reference, not read end to end).

Key numbers are the registry's (`course_lib.registry`): each lesson's numbers are those whose entry
lists the lesson. The sheet is meant to be read in under an hour (`reading_minutes`).

Left out: follow-ups and mistakes (the deck and the quiz hold them), the lessons' measurements (toy
numbers belong with their experiment), and rendering maths offline (the HTML page loads MathJax when
the browser is online and shows the TeX source otherwise).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path

from course_lib.registry import CitedNumber, format_citation, load_registry
from course_lib.tooling.interview.cards import course_cards
from course_lib.tooling.interview.render import to_html
from course_lib.tooling.syllabus import LESSONS, NOTEBOOKS, Lesson

__all__ = ["TITLE", "NUMBERS_TITLE", "WORDS_PER_MINUTE", "cheat_sheet_markdown", "key_numbers_markdown",
           "page_html", "reading_minutes", "key_numbers", "write_cheat_sheet"]

TITLE = "How large language models work: the interview cheat sheet"
NUMBERS_TITLE = "How large language models work: key numbers and their sources"
WORDS_PER_MINUTE = 200  # a careful reading pace for technical prose
_MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
_CSS = ("body { font-family: sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }\n"
        "h2 { border-top: 1px solid #ddd; padding-top: 0.8em; font-size: 1.2em; }\n"
        "table { border-collapse: collapse; font-size: 0.9em; }\n"
        "td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; }\n"
        "code { background: #f2f2f2; padding: 0 0.2em; }")


def key_numbers(lesson_number: int) -> list[CitedNumber]:
    """The registered numbers a lesson cites, in the registry's order."""
    return [number for number in load_registry().values() if lesson_number in number.lessons]


def cheat_sheet_markdown(lessons: Iterable[Lesson] = LESSONS, folder: Path = NOTEBOOKS,
                         link_prefix: str = "") -> str:
    """The cheat sheet as Markdown; ``link_prefix`` is prepended to each notebook's file name."""
    lessons = [lesson for lesson in lessons if lesson.exists(folder)]
    answers = {card.lesson: card.back for card in course_cards(lessons, folder) if card.kind == "answer"}
    parts = [f"# {TITLE}\n",
             "Each question's 30-second answer and the numbers worth knowing, in course order. Every "
             "answer is taken from its lesson, where it is shown with code; every number from the "
             "registry of cited numbers, with its source (all of them, with the text each was checked "
             "against: `key_numbers.md`).\n"]
    for lesson in lessons:
        parts.append(f"## {lesson.number:02d} · {lesson.question}\n")
        parts.append(answers[lesson.number] + "\n")
        numbers = key_numbers(lesson.number)
        if numbers:
            parts.append("**Key numbers.** " + "; ".join(
                f"{number.what}: {format_citation(number.key)}" for number in numbers) + ".\n")
        parts.append(f"[Lesson {lesson.number:02d}]({link_prefix}{lesson.notebook})\n")
    return "\n".join(parts)


def key_numbers_markdown() -> str:
    """Every registered number: what it is, its value, its source, where it was checked, its lessons."""
    rows = [f"# {NUMBERS_TITLE}\n", "| What | Number | Source | Checked in | Lessons |", "|---|---|---|---|---|"]
    for number in load_registry().values():
        cells = [number.what, format_citation(number.key).rsplit(" (", 1)[0], number.citation, number.checked_in,
                 ", ".join(f"{n:02d}" for n in number.lessons)]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def page_html(markdown: str, title: str = TITLE) -> str:
    """A standalone HTML page of ``markdown``."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>\n{_CSS}\n</style>\n<script async src=\"{_MATHJAX}\"></script>\n</head>\n<body>\n"
            f"{to_html(markdown)}\n</body>\n</html>\n")


def reading_minutes(markdown: str) -> float:
    """Minutes to read ``markdown`` at `WORDS_PER_MINUTE`."""
    return len(markdown.split()) / WORDS_PER_MINUTE


def write_cheat_sheet(folder: Path, lessons: Iterable[Lesson] = LESSONS, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Write the cheat sheet and the key numbers (``.md`` and ``.html`` each) into ``folder``; links lead
    to ``notebooks`` by a relative path, so they work wherever the repository lies."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    relative = Path(os.path.relpath(Path(notebooks).resolve(), folder.resolve())).as_posix()
    markdown = cheat_sheet_markdown(lessons, notebooks, link_prefix=f"{relative}/")
    numbers = key_numbers_markdown()
    pages = {"cheat_sheet.md": markdown, "cheat_sheet.html": page_html(markdown),
             "key_numbers.md": numbers, "key_numbers.html": page_html(numbers, NUMBERS_TITLE)}
    for name, text in pages.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in pages]
