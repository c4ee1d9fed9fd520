"""Checks of data/parallel_sentences.json: complete, NFC-normalised, clean, each text in its own script."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "data" / "parallel_sentences.json"

# Unicode character-name prefixes of the letters and marks each script may use.
SCRIPT_NAMES = {
    "Latin": ("LATIN",),
    "Cyrillic": ("CYRILLIC",),
    "Greek": ("GREEK",),
    "Arabic": ("ARABIC",),
    "Hebrew": ("HEBREW",),
    "Devanagari": ("DEVANAGARI",),
    "Bengali": ("BENGALI",),
    "Han": ("CJK UNIFIED IDEOGRAPH",),
    "Hiragana": ("HIRAGANA",),
    "Katakana": ("KATAKANA",),  # also KATAKANA-HIRAGANA PROLONGED SOUND MARK
    "Hangul": ("HANGUL",),
    "Thai": ("THAI",),
    "Ethiopic (Ge'ez)": ("ETHIOPIC",),
}


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads(PATH.read_text(encoding="utf-8"))


def scripts_of(data: dict, code: str) -> list[str]:
    return data["languages"][code]["script"].split(", ")


def script_of_char(char: str) -> str | None:
    """The script in SCRIPT_NAMES whose name prefix matches ``char``'s Unicode name, if any."""
    name = unicodedata.name(char, "")
    return next((script for script, prefixes in SCRIPT_NAMES.items() if name.startswith(prefixes)), None)


def test_structure(data: dict) -> None:
    assert set(data) == {"description", "languages", "sentences"}
    assert isinstance(data["description"], str) and data["description"]
    assert len(data["languages"]) >= 14
    assert 8 <= len(data["sentences"]) <= 10
    for code, language in data["languages"].items():
        assert re.fullmatch(r"[a-z]{2}", code), code
        assert set(language) == {"name", "script"} and language["name"], code
        assert all(script in SCRIPT_NAMES for script in scripts_of(data, code)), code


def test_every_sentence_has_every_language(data: dict) -> None:
    for i, sentence in enumerate(data["sentences"]):
        assert list(sentence) == list(data["languages"]), f"sentence {i}"
        assert all(isinstance(text, str) and text for text in sentence.values()), f"sentence {i}"
        assert len(set(sentence.values())) == len(sentence), f"sentence {i} repeats a translation"


def test_file_is_utf8_nfc_and_clean(data: dict) -> None:
    raw = PATH.read_bytes().decode("utf-8")
    assert unicodedata.normalize("NFC", raw) == raw
    assert not any(line != line.rstrip() for line in raw.splitlines()), "trailing spaces"
    for sentence in data["sentences"]:
        for code, text in sentence.items():
            assert unicodedata.is_normalized("NFC", text), (code, text)
            assert text == text.strip() and "  " not in text, (code, text)
            assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in text), (code, text)


def test_letters_and_marks_belong_to_the_language_script(data: dict) -> None:
    for code in data["languages"]:
        allowed = set(scripts_of(data, code))
        seen = set()
        for sentence in data["sentences"]:
            text = sentence[code]
            letters = [c for c in text if unicodedata.category(c)[0] in "LM"]
            found = [script_of_char(c) for c in letters]
            wrong = [c for c, script in zip(letters, found) if script not in allowed]
            assert not wrong, f"{code}: {text!r} has letters outside {sorted(allowed)}: {wrong}"
            assert letters, f"{code}: {text!r} has no letters"
            seen.update(found)
        assert seen == allowed, f"{code}: scripts used {sorted(seen)}, declared {sorted(allowed)}"


def test_the_declared_scripts_are_many(data: dict) -> None:
    scripts = {script for code in data["languages"] for script in scripts_of(data, code)}
    assert len(scripts) == 13
    assert "17 languages written in 13 scripts" in data["description"]
    assert len(data["languages"]) == 17


def test_numbers_are_the_same_in_every_language(data: dict) -> None:
    with_numbers = 0
    for sentence in data["sentences"]:
        numbers = {code: re.findall(r"[0-9]+", text) for code, text in sentence.items()}
        assert len({tuple(n) for n in numbers.values()}) == 1, numbers
        with_numbers += bool(numbers["en"])
        assert not any(unicodedata.category(c) == "Nd" and not c.isascii() for c in "".join(sentence.values()))
    assert with_numbers >= 1


def test_script_of_char_recognises_the_scripts() -> None:
    examples = {"é": "Latin", "ж": "Cyrillic", "λ": "Greek", "ع": "Arabic", "ש": "Hebrew", "क": "Devanagari",
                "ক": "Bengali", "中": "Han", "ひ": "Hiragana", "カ": "Katakana", "ー": "Katakana", "한": "Hangul",
                "ก": "Thai", "ሰ": "Ethiopic (Ge'ez)", "😀": None, "1": None}
    assert {c: script_of_char(c) for c in examples} == examples
