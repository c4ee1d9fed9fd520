"""The interview layer: cards from tagged cells, the Anki deck, the cheat sheet and the quiz."""

from __future__ import annotations

import json
import os
import sqlite3
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import NOTEBOOKS

from course_lib.registry import load_registry
from course_lib.tooling.interview import __main__ as command
from course_lib.tooling.interview.anki import card_guid, card_tags, write_deck
from course_lib.tooling.interview.cards import KINDS, Card, course_cards, lesson_cards, part_of, sentence_count
from course_lib.tooling.interview.cheatsheet import (
    cheat_sheet_markdown,
    key_numbers,
    key_numbers_markdown,
    page_html,
    reading_minutes,
)
from course_lib.tooling.interview.quiz import prompt_text, quiz_order, run_quiz, select_cards
from course_lib.tooling.interview.render import split_math, to_html, unwrap
from course_lib.tooling.interview.widget import QuizWidget, show_quiz
from course_lib.tooling.syllabus import LESSONS, PARTS

EXISTING = [lesson for lesson in LESSONS if lesson.exists()]
CARDS = course_cards()


def tagged_cells(path: Path) -> list[tuple[str, str]]:
    """(tag, cell id) of every cell carrying one of the card tags, read from the raw JSON."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(tag, cell["id"]) for cell in cells for tag in cell["metadata"].get("tags", []) if tag in KINDS]


def apkg_notes(path: Path, tmp_path: Path) -> list[tuple[str, str, str]]:
    """(guid, tags, fields) of every note in an .apkg, read from its collection database."""
    with zipfile.ZipFile(path) as package:
        assert "collection.anki2" in package.namelist()
        package.extract("collection.anki2", tmp_path)
    connection = sqlite3.connect(tmp_path / "collection.anki2")
    try:
        return connection.execute("select guid, tags, flds from notes order by id").fetchall()
    finally:
        connection.close()


def make_lesson_notebook(folder: Path, lesson, cells: list[tuple[str, list[str]]]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(source, metadata={"tags": tags}) for source, tags in cells]
    nbformat.write(notebook, folder / lesson.notebook)


# --- cards ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", EXISTING, ids=lambda lesson: lesson.notebook)
def test_one_card_per_tagged_cell(lesson):
    cards = lesson_cards(lesson)
    assert [(card.kind, card.cell_id) for card in cards] == tagged_cells(NOTEBOOKS / lesson.notebook)
    assert all(card.front.strip() and card.back.strip() and not card.back.startswith("#") for card in cards)
    assert [card.kind for card in cards].count("answer") == 1


def test_card_identities_are_unique_across_the_course():
    identities = [card.identity for card in CARDS]
    assert len(identities) == len(set(identities))


def test_cards_read_the_three_forms(tmp_path):
    lesson = LESSONS[3]
    make_lesson_notebook(tmp_path, lesson, [
        ("## The answer in 30 seconds\n\nIt rescales the logits.", ["answer"]),
        ('## What the common answer gets wrong\n\n**"It makes output deterministic."** Only $T = 0$ does.', ["mistake"]),
        ("**Why *this* order?** Because Task\n#2 wraps.", ["follow-up"]),
        ("Untagged prose.", []),
    ])
    answer, mistake, follow_up = lesson_cards(lesson, tmp_path)
    assert (answer.front, answer.back) == (lesson.question, "It rescales the logits.")
    assert (mistake.kind, mistake.front, mistake.back) == ("mistake", "It makes output deterministic.", "Only $T = 0$ does.")
    assert (follow_up.front, follow_up.back) == ("Why *this* order?", "Because Task\n#2 wraps.")


@pytest.mark.parametrize("source, tags, message", [
    ("**Bold question without an answer?**", ["follow-up"], "follow-up cell reads"),
    ("No bold lead at all.", ["follow-up"], "follow-up cell reads"),
    ("**A claim without quotes.** The correction.", ["mistake"], "claim in quotes"),
    ("**A question?** An answer.", ["follow-up", "mistake"], "one of the tags"),
])
def test_malformed_tagged_cells_are_refused_with_the_cell_named(tmp_path, source, tags, message):
    make_lesson_notebook(tmp_path, LESSONS[0], [("Title", []), (source, tags)])
    with pytest.raises(ValueError, match=message) as error:
        lesson_cards(LESSONS[0], tmp_path)
    assert "cell 1" in str(error.value)


@pytest.mark.parametrize("text, count", [
    ("One. Two.", 2), ("No full stop", 1), ("Brown et al. 2020 (Table 2.1) say 175B.", 1),
    ("It is $a. b$ and `x.y` e.g. here. Then this!", 2), ("", 0),
])
def test_sentence_count(text, count):
    assert sentence_count(text) == count


def test_every_lesson_is_in_one_part():
    assert [part_of(n) for n in PARTS[2].lessons] == [3] * len(PARTS[2].lessons)
    with pytest.raises(ValueError, match="lesson_number"):
        part_of(51)


# --- rendering -----------------------------------------------------------------------------------------


def test_maths_is_lifted_before_markdown_and_delimited_for_mathjax():
    html = to_html("**Bold**, $a_i * b_i$, $$\\sum_i x_i$$ and `code $x$`; it costs $5 or $6.")
    assert "<strong>Bold</strong>" in html and r"\(a_i * b_i\)" in html and r"\[\sum_i x_i\]" in html
    assert "<code>code $x$</code>" in html and "$5 or $6" in html and "<em>" not in html


def test_unwrap_joins_the_lines_of_a_paragraph_only():
    text = "One line\nwraps here.\n\nA list:\n- first\n- second\n| a | b |\n|---|---|"
    assert unwrap(text) == "One line wraps here.\n\nA list:\n- first\n- second\n| a | b |\n|---|---|"
    assert "\n" not in unwrap(CARDS[0].back)


def test_maths_is_escaped_and_raw_html_shown_as_text():
    assert to_html("$p<q$ and <b>x</b>") == r"<p>\(p&lt;q\) and &lt;b&gt;x&lt;/b&gt;</p>"
    assert split_math("`$a$` $b$") == ("`$a$` MATHSPAN0END", [r"\(b\)"])


# --- the Anki deck -------------------------------------------------------------------------------------


def test_deck_is_an_anki_package_with_one_note_per_card_and_stable_guids(tmp_path):
    first = apkg_notes(write_deck(CARDS, tmp_path / "a" / "deck.apkg"), tmp_path / "a")
    second = apkg_notes(write_deck(course_cards(), tmp_path / "b" / "deck.apkg"), tmp_path / "b")
    assert len(first) == len(CARDS) == len(tagged_cells_of_course())
    assert [note[0] for note in first] == [note[0] for note in second] == [card_guid(card) for card in CARDS]
    assert len({note[0] for note in first}) == len(first)
    lesson_tags = {tag for note in first for tag in note[1].split() if tag.startswith("llm-course::lesson-")}
    assert lesson_tags == {f"llm-course::lesson-{lesson.number:02d}" for lesson in EXISTING}


def tagged_cells_of_course() -> list[tuple[str, str]]:
    return [cell for lesson in EXISTING for cell in tagged_cells(NOTEBOOKS / lesson.notebook)]


def test_a_corrected_card_keeps_its_guid_and_tags():
    card = CARDS[0]
    corrected = Card(card.lesson, card.kind, card.cell_id, card.front, card.back + " Corrected.")
    moved = Card(card.lesson, card.kind, "another-cell", card.front, card.back)
    assert card_guid(corrected) == card_guid(card) != card_guid(moved)
    assert card_tags(card) == [f"llm-course::lesson-{card.lesson:02d}", f"llm-course::part-{part_of(card.lesson)}",
                               f"llm-course::{card.kind}"]


def test_deck_refuses_a_wrong_path_and_duplicate_cards(tmp_path):
    with pytest.raises(ValueError, match="path must end in .apkg"):
        write_deck(CARDS, tmp_path / "deck.zip")
    with pytest.raises(ValueError, match="distinct identities"):
        write_deck([CARDS[0], CARDS[0]], tmp_path / "deck.apkg")


# --- the cheat sheet -----------------------------------------------------------------------------------


def test_cheat_sheet_has_every_question_answer_and_key_number_in_course_order():
    sheet = cheat_sheet_markdown()
    positions = [sheet.index(f"## {lesson.number:02d} · {lesson.question}") for lesson in EXISTING]
    assert positions == sorted(positions)
    for card in (card for card in CARDS if card.kind == "answer"):
        assert card.back in sheet
    sections = sheet.split("\n## ")
    for lesson in EXISTING:
        section = next(part for part in sections if part.startswith(f"{lesson.number:02d} · "))
        for number in key_numbers(lesson.number):
            assert number.citation in section and number.display in section, (lesson.number, number.key)


def test_key_numbers_page_lists_every_registered_number_with_its_check():
    page = key_numbers_markdown()
    registry = load_registry()
    assert len(page.strip().split("\n")) == 4 + len(registry)  # title, blank line, header, rule
    for number in registry.values():
        assert number.citation in page and number.display in page and number.checked_in.replace("|", "\\|") in page
    assert all(key_numbers(lesson.number) for lesson in LESSONS), "every lesson has a key number"


def test_cheat_sheet_reads_in_under_an_hour():
    assert reading_minutes(cheat_sheet_markdown()) < 60


def test_cheat_sheet_html_is_a_page_with_mathjax_maths():
    page = page_html(cheat_sheet_markdown())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "mathjax" in page and r"\(" in page and "$" not in page.replace("$5", "")
    assert "<table>" in page_html(key_numbers_markdown())


# --- the quiz ------------------------------------------------------------------------------------------


def test_random_order_is_seeded():
    first, again, other = (quiz_order(CARDS, "random", seed) for seed in (3, 3, 4))
    assert first == again != other and sorted(map(id, first)) == sorted(map(id, CARDS))


def test_mock_interview_asks_each_question_then_its_follow_ups():
    asked = quiz_order(CARDS, "random", seed=1, mock=True, parts=[1])
    assert {card.kind for card in asked} == {"answer", "follow-up"}
    lessons = list(dict.fromkeys(card.lesson for card in asked))
    assert sorted(lessons) == sorted(n for n in PARTS[0].lessons if LESSONS[n - 1].exists())
    for number in lessons:
        kinds = [card.kind for card in asked if card.lesson == number]
        assert kinds[0] == "answer" and set(kinds[1:]) == {"follow-up"}
    starts = [asked.index(next(c for c in asked if c.lesson == n)) for n in lessons]
    assert starts == sorted(starts), "each lesson's cards come together"


def test_selection_by_part_lesson_and_kind():
    chosen = select_cards(CARDS, parts=[2], lessons=[23, 24, 1], kinds=["follow-up"])
    expected = [c for c in CARDS if c.lesson in (23, 24) and c.kind == "follow-up"]
    assert chosen == expected and len(expected) >= 4


@pytest.mark.parametrize("kwargs, message", [
    ({"parts": [9]}, "parts must be"), ({"lessons": [0]}, "lessons must be"), ({"kinds": ["answers"]}, "kinds must be"),
    ({"lessons": []}, "lessons must be"),
])
def test_selection_refuses_unknown_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_cards(CARDS, **kwargs)


def test_quiz_order_refuses_an_unknown_order():
    with pytest.raises(ValueError, match="order"):
        quiz_order(CARDS, "alphabetical")


def test_quiz_runs_without_a_terminal_and_stops_on_q():
    said, answers = [], iter(["", "", "q"])
    revealed = run_quiz(CARDS[:5], ask=lambda _prompt: next(answers), say=said.append)
    assert revealed == 2
    assert said[0].endswith(prompt_text(CARDS[0])) and said[1] == unwrap(CARDS[0].back) and said[3] == unwrap(CARDS[1].back)
    assert said[-1].strip() == "2 of 5 answers seen."


def test_quiz_command_runs_non_interactively(monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", lambda _prompt="": "")
    command.main(["quiz", "--lessons", "4", "--mock", "--limit", "2"])
    out = capsys.readouterr().out
    assert LESSONS[3].question in out and "2 of 2 answers seen." in out


def test_quiz_command_reports_bad_choices(capsys):
    with pytest.raises(SystemExit):
        command.main(["quiz", "--parts", "7"])
    assert "parts must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command.main(["quiz", "--lessons", "x"])


def test_build_command_writes_deck_sheets_and_cards(tmp_path, capsys):
    command.main(["build", str(tmp_path / "out")])
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == ["cards.json", "cheat_sheet.html", "cheat_sheet.md", "key_numbers.html", "key_numbers.md",
                     "llm_course.apkg"]
    listed = json.loads((tmp_path / "out" / "cards.json").read_text(encoding="utf-8"))
    assert [entry["guid"] for entry in listed] == [card_guid(card) for card in CARDS]
    assert f"{len(CARDS)} cards" in capsys.readouterr().out
    relative = Path(os.path.relpath(NOTEBOOKS, tmp_path / "out")).as_posix()
    sheet = (tmp_path / "out" / "cheat_sheet.md").read_text(encoding="utf-8")
    assert f"]({relative}/{LESSONS[0].notebook})" in sheet
    assert (tmp_path / "out" / relative / LESSONS[0].notebook).resolve() == (NOTEBOOKS / LESSONS[0].notebook).resolve()


def test_widget_reveals_and_moves_on():
    quiz = QuizWidget(CARDS[:2])
    assert quiz.text().startswith("**Question 1 of 2**") and CARDS[0].back not in quiz.text()
    quiz.reveal()
    assert quiz.text().endswith(CARDS[0].back)
    quiz.next()
    assert quiz.text().startswith("**Question 2 of 2**") and CARDS[1].back not in quiz.text()
    quiz.next()
    assert quiz.index == 0
    with pytest.raises(ValueError, match="cards"):
        QuizWidget([])
    assert show_quiz(CARDS[:1]) is None
