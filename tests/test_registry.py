"""Tests for course_lib.registry and data/cited_numbers.json: every number has a source, its display
string says the same as its value, and every lesson that cites it exists (or is planned) and, once
its notebook exists, prints the number as registered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_lib.registry import (
    REGISTRY_FILE,
    CitedNumber,
    cited,
    format_citation,
    load_registry,
)
from course_lib.tooling.syllabus import LESSONS, NOTEBOOKS

REGISTRY = load_registry()
LESSON_BY_NUMBER = {lesson.number: lesson for lesson in LESSONS}
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12, "%": 1.0}


def notebook_text(path: Path) -> str:
    """Every cell's source and text outputs of a notebook, with runs of whitespace collapsed."""
    parts = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            for kind in ("text/plain", "text/markdown", "text/html"):
                parts.append("".join(output.get("data", {}).get(kind, "")))
    return re.sub(r"\s+", " ", "\n".join(parts))


def displayed_value(display: str) -> float:
    """The number a display string shows: '175B' -> 1.75e11, '2,048' -> 2048, '86.4%' -> 86.4."""
    match = re.fullmatch(r"(\d[\d,]*(?:\.\d+)?(?:e[+-]\d+)?)([KMBT%]?)", display)
    assert match, f"display {display!r} is not a number this test can read"
    return float(match.group(1).replace(",", "")) * _SCALE[match.group(2)]


def write_registry(tmp_path: Path, numbers: list) -> Path:
    path = tmp_path / "cited.json"
    path.write_text(json.dumps({"about": "test", "numbers": numbers}), encoding="utf-8")
    return path


def entry(**changes) -> dict:
    """A valid registry entry, with some fields changed."""
    base = {"key": "x.y", "value": 1.5e9, "unit": "parameters", "display": "1.5B", "what": "a size",
            "disclosed": True, "checked_in": "the paper, Table 1", "lessons": [49],
            "source": {"authors": "A et al.", "year": 2020, "title": "T", "where": "Table 1"}}
    return {**base, **changes}


# --- the shipped registry ---------------------------------------------------------------------------


def test_registry_holds_the_numbers_the_landscape_lessons_need():
    needed = {"gpt3.parameters", "gpt3.training_tokens", "gpt3.training_flops", "gpt3.context_tokens",
              "gpt4.parameters", "gpt4.context_tokens", "gpt4_32k.context_tokens", "chinchilla.parameters",
              "chinchilla.training_tokens", "gemini.goodput_before", "gemini.goodput_after",
              *(f"chinchilla.approach3.{name}" for name in ("E", "A", "B", "alpha", "beta"))}
    assert needed <= set(REGISTRY)


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_entry_has_a_source_with_a_place_in_it(key):
    number = REGISTRY[key]
    source = number.source
    assert source.authors.strip() and source.title.strip() and source.where.strip(), key
    assert 1900 < source.year <= 2100, key
    assert re.search(r"Table|section|Figure|appendix|abstract", source.where), \
        f"{key}: 'where' must name a table, section, figure or appendix, got {source.where!r}"
    assert number.checked_in.strip() and number.what.strip(), key


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_display_shows_the_registered_value(key):
    number = REGISTRY[key]
    if number.value is None:
        assert not number.disclosed and number.display == "not disclosed"
    elif isinstance(number.value, tuple):
        low, high = number.value
        assert low < high and number.display.strip()
    else:
        assert displayed_value(number.display) == pytest.approx(number.value, rel=1e-12), key


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_cited_lesson_is_in_the_syllabus_and_prints_the_number(key):
    number = REGISTRY[key]
    for lesson_number in number.lessons:
        assert lesson_number in LESSON_BY_NUMBER, f"{key}: lesson {lesson_number} is not in the syllabus"
        lesson = LESSON_BY_NUMBER[lesson_number]
        if lesson.exists():
            text = notebook_text(NOTEBOOKS / lesson.notebook)
            assert number.display in text, f"{key}: {lesson.notebook} does not contain {number.display!r}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.notebook)
def test_every_lesson_has_a_key_number(lesson):
    """The cheat sheet's key numbers come from the registry: each lesson cites at least one."""
    keys = [key for key, number in REGISTRY.items() if lesson.number in number.lessons]
    assert keys, f"{lesson.notebook} cites no registered number (data/cited_numbers.json)"


def test_the_notebook_check_would_catch_a_wrong_number():
    text = notebook_text(NOTEBOOKS / LESSON_BY_NUMBER[48].notebook)
    assert "87.5%" in text and "87.6%" not in text


def test_undisclosed_numbers_point_at_the_section_that_withholds_them():
    size = cited("gpt4.parameters")
    assert size.value is None and size.disclosed is False
    assert (size.source.authors, size.source.year, size.source.where) == ("OpenAI", 2023, "section 2")
    assert [k for k, n in REGISTRY.items() if not n.disclosed] == ["gpt4.parameters", "gpt4.training_flops"]


def test_gpt3_compute_table_reproduces_its_flops():
    params, tokens = cited("gpt3.parameters_in_compute_table").value, cited("gpt3.training_tokens").value
    assert f"{6 * params * tokens:.2e}" == cited("gpt3.training_flops").display


def test_registry_file_is_the_shipped_one():
    assert REGISTRY_FILE.name == "cited_numbers.json" and REGISTRY_FILE.is_file()


# --- reading and citing -----------------------------------------------------------------------------


def test_cited_returns_a_cited_number():
    number = cited("gpt3.context_tokens")
    assert isinstance(number, CitedNumber)
    assert (number.value, number.unit, number.display) == (2048, "tokens", "2,048") and 18 in number.lessons
    assert number.citation == "Brown et al. 2020, section 2.1"


@pytest.mark.parametrize("key, text", [
    ("gpt3.training_flops", "3.14e+23 FLOPs (Brown et al. 2020, Table D.1)"),
    ("gpt3.parameters", "175B parameters (Brown et al. 2020, Table 2.1)"),
    ("gpt4.mmlu_5shot", "86.4% (OpenAI 2023, Table 2)"),
    ("gpt4.parameters", "not disclosed (OpenAI 2023, section 2)"),
    ("chinchilla.approach3.A", "406.4 (Hoffmann et al. 2022, appendix D.2, equation 10)"),
    ("gemini.sdc_interval_weeks", "every week or two (Gemini Team 2023, section 3)"),
])
def test_format_citation(key, text):
    assert format_citation(key) == text


def test_unknown_key_names_the_key_and_its_near_matches():
    with pytest.raises(ValueError, match=r"got 'gpt3\.parameter'; did you mean 'gpt3\.parameters'"):
        cited("gpt3.parameter")
    with pytest.raises(ValueError, match=r"got 'nothing like it'$"):
        format_citation("nothing like it")
    with pytest.raises(TypeError, match="key must be a str, got int"):
        cited(3)


@pytest.mark.parametrize("numbers, message", [
    ([entry(), entry()], "key 'x.y' is registered twice"),
    ([entry(value=None)], "value must be null exactly when disclosed is false"),
    ([entry(disclosed=False)], "value must be null exactly when disclosed is false"),
    ([entry(value=[2, 1])], r"value must be null, a number or a \[low, high\] pair, got \[2, 1\]"),
    ([entry(value="175B")], "value must be null, a number"),
    ([entry(lessons=[])], "lessons must be a non-empty list"),
    ([entry(lessons=[51])], "lessons must be a non-empty list of lesson numbers 1..50, got \\[51\\]"),
    ([entry(display=" ")], "display must be a non-empty string"),
    ([entry(disclosed="yes")], "disclosed must be true or false"),
    ([entry(source={"authors": "A", "year": 2020, "title": "T"})], "source must have exactly the fields"),
    ([entry(source={"authors": "A", "year": "2020", "title": "T", "where": "Table 1"})], "source year"),
    ([entry(source={"authors": "A", "year": 2020, "title": "T", "where": ""})], "source where"),
    ([{k: v for k, v in entry().items() if k != "checked_in"}], "entry 0 must have exactly the fields"),
])
def test_malformed_registry_files_are_refused_with_the_entry_named(tmp_path, numbers, message):
    with pytest.raises(ValueError, match=message):
        load_registry(write_registry(tmp_path, numbers))


def test_a_valid_file_loads_and_ranges_become_pairs(tmp_path):
    numbers = [entry(), entry(key="x.range", value=[1, 2], display="one or two", unit="weeks")]
    registry = load_registry(write_registry(tmp_path, numbers))
    assert registry["x.y"].value == 1.5e9 and registry["x.range"].value == (1, 2)


def test_files_that_are_not_a_registry_are_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_registry(path)
    path.write_text('{"numbers": {}}', encoding="utf-8")
    with pytest.raises(ValueError, match="must hold an object with a list 'numbers'"):
        load_registry(path)
