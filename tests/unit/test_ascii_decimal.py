"""Whole numbers users write as text: ASCII digits only, whatever str.isdigit() and strip() accept."""

from __future__ import annotations

import pytest

from pixelrefer.errors import ConfigError
from pixelrefer.utils.text import ascii_decimal


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("17", 17), (" 3 ", 3), ("007", 7)])
def test_ascii_digits_are_read(text, value):
    assert ascii_decimal(text) == value


@pytest.mark.parametrize("text", ["", " ", "-1", "+1", "1.0", "1e3", "\u00b2", "\u0663", "8\x1f", "\t4", "1_000"])
def test_anything_else_is_none(text):
    assert ascii_decimal(text) is None


def test_launch_variables_must_be_whole_numbers(monkeypatch):
    from pixelrefer.cli.eval import _launch_layout

    monkeypatch.setenv("WORLD_SIZE", "\u00b2")  # "²".isdigit() holds, int("²") raises
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        _launch_layout(None, None, "cpu")
