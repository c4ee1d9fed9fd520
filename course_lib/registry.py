"""The numbers the lessons cite from papers and reports, read from one file: `data/cited_numbers.json`.

Each entry has a key (``"gpt3.training_flops"``), a value and unit, the way lessons write it
(``display``: ``"3.14e+23"``), what it is, whether the source discloses it, the source (authors,
year, title, and the table or section where the number stands), the text it was checked against,
and the lessons that cite it. A number the source says it does not disclose (GPT-4's size) is
registered with ``value`` None and ``disclosed`` False, so a fact sheet can say "not disclosed"
with a citation instead of guessing; a number the source gives as a range has a (low, high) value.

    >>> cited("gpt3.training_flops").value
    3.14e+23
    >>> format_citation("gpt3.training_flops")
    '3.14e+23 FLOPs (Brown et al. 2020, Table D.1)'

Left out: numbers the course measures itself (those are computed in the lessons), formatting
beyond the registered display string, and any number not checked against its source.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from course_lib.datasets import DATA_DIR
from course_lib.validation import string

__all__ = [
    "REGISTRY_FILE",
    "CitedNumber",
    "Source",
    "cited",
    "format_citation",
    "load_registry",
]

REGISTRY_FILE = DATA_DIR / "cited_numbers.json"
_FIELDS = ("key", "value", "unit", "display", "what", "disclosed", "source", "checked_in", "lessons")
_SOURCE_FIELDS = ("authors", "year", "title", "where")
_UNITLESS = ("", "%")  # units a citation does not repeat after the display string


@dataclass(frozen=True)
class Source:
    """Where a number comes from: ``where`` is the table, section or figure that holds it."""

    authors: str
    year: int
    title: str
    where: str

    def __str__(self) -> str:
        return f"{self.authors} {self.year}, {self.where}"


@dataclass(frozen=True)
class CitedNumber:
    """One registered number; ``value`` is None when undisclosed, a (low, high) pair for a range."""

    key: str
    value: float | tuple[float, float] | None
    unit: str
    display: str
    what: str
    disclosed: bool
    source: Source
    checked_in: str
    lessons: tuple[int, ...]

    @property
    def citation(self) -> str:
        """The short citation, e.g. ``"Brown et al. 2020, Table D.1"``."""
        return str(self.source)


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, CitedNumber]:
    """Every entry of the registry file at ``path``, by key; a malformed entry raises ValueError."""
    return dict(_load(str(Path(path).resolve())))


def cited(key: str) -> CitedNumber:
    """The registered number ``key``; an unknown key raises ValueError naming the nearest keys."""
    key = string(key, "key")
    registry = load_registry()
    if key not in registry:
        near = difflib.get_close_matches(key, registry, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(k) for k in near)}?" if near else ""
        raise ValueError(f"key must be a key of {REGISTRY_FILE.name}, got {key!r}{hint}")
    return registry[key]


def format_citation(key: str) -> str:
    """``key``'s number as a lesson writes it, with its unit and source:
    ``"175B parameters (Brown et al. 2020, Table 2.1)"``, ``"not disclosed (OpenAI 2023, section 2)"``."""
    number = cited(key)
    single = isinstance(number.value, (int, float))
    unit = f" {number.unit}" if single and number.unit not in _UNITLESS else ""
    return f"{number.display}{unit} ({number.citation})"


@cache
def _load(path: str) -> tuple[tuple[str, CitedNumber], ...]:
    """The parsed entries of the file at ``path`` (cached: the file is read once per process)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("numbers"), list):
        raise ValueError(f"{path} must hold an object with a list 'numbers'")
    entries: dict[str, CitedNumber] = {}
    for index, raw in enumerate(document["numbers"]):
        number = _entry(raw, f"{Path(path).name} entry {index}")
        if number.key in entries:
            raise ValueError(f"{Path(path).name}: key {number.key!r} is registered twice")
        entries[number.key] = number
    return tuple(entries.items())


def _entry(raw: Any, where: str) -> CitedNumber:
    """One entry, checked field by field; ``where`` names it in error messages."""
    if not isinstance(raw, dict) or set(raw) != set(_FIELDS):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{where} must have exactly the fields {list(_FIELDS)}, got {got}")
    where = f"{where} ({raw['key']!r})"
    for name in ("key", "unit", "display", "what", "checked_in"):
        if not isinstance(raw[name], str) or (name != "unit" and not raw[name].strip()):
            raise ValueError(f"{where}: {name} must be a non-empty string, got {raw[name]!r}")
    if not isinstance(raw["disclosed"], bool):
        raise ValueError(f"{where}: disclosed must be true or false, got {raw['disclosed']!r}")
    value = _value(raw["value"], where)
    if (value is None) == raw["disclosed"]:
        raise ValueError(f"{where}: value must be null exactly when disclosed is false, "
                         f"got value {raw['value']!r} with disclosed {raw['disclosed']}")
    lessons = raw["lessons"]
    if (not isinstance(lessons, list) or not lessons
            or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 50 for n in lessons)):
        raise ValueError(f"{where}: lessons must be a non-empty list of lesson numbers 1..50, got {lessons!r}")
    return CitedNumber(raw["key"], value, raw["unit"], raw["display"], raw["what"], raw["disclosed"],
                       _source(raw["source"], where), raw["checked_in"], tuple(lessons))


def _value(value: Any, where: str) -> float | tuple[float, float] | None:
    """A registered value: null, a number, or a [low, high] pair of numbers."""
    def is_number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if value is None or is_number(value):
        return value
    if isinstance(value, list) and len(value) == 2 and all(map(is_number, value)) and value[0] < value[1]:
        return (value[0], value[1])
    raise ValueError(f"{where}: value must be null, a number or a [low, high] pair, got {value!r}")


def _source(raw: Any, where: str) -> Source:
    """The source of an entry: authors, year, title and where in the source."""
    if not isinstance(raw, dict) or set(raw) != set(_SOURCE_FIELDS):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{where}: source must have exactly the fields {list(_SOURCE_FIELDS)}, got {got}")
    for name in ("authors", "title", "where"):
        if not isinstance(raw[name], str) or not raw[name].strip():
            raise ValueError(f"{where}: source {name} must be a non-empty string, got {raw[name]!r}")
    if not isinstance(raw["year"], int) or isinstance(raw["year"], bool) or not 1900 <= raw["year"] <= 2100:
        raise ValueError(f"{where}: source year must be a year, got {raw['year']!r}")
    return Source(raw["authors"], raw["year"], raw["title"], raw["where"])
