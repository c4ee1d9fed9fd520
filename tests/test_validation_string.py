"""Tests for course_lib.validation.string: a str passes through, anything else is a TypeError, and
an empty str a ValueError when nonempty=True."""

from __future__ import annotations

import pytest

from course_lib.validation import string


def test_a_str_is_returned_as_it_is():
    assert string("Rozi", "name") == "Rozi"
    assert string("", "name") == ""
    assert string("x", "name", nonempty=True) == "x"


@pytest.mark.parametrize("value, shown", [(3, "int"), (b"x", "bytes"), (None, "NoneType"), (["x"], "list")])
def test_anything_else_is_a_type_error_naming_the_argument(value, shown):
    with pytest.raises(TypeError, match=f"^name must be a str, got {shown}$"):
        string(value, "name")


def test_an_empty_str_is_refused_when_nonempty():
    with pytest.raises(ValueError, match="^name must be a non-empty str, got ''$"):
        string("", "name", nonempty=True)
