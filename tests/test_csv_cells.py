"""Tables are written so that a spreadsheet never runs a cell: text that starts like a formula is escaped."""

from __future__ import annotations

import csv
from pathlib import Path

from collapsebench.core.io import atomic_write_csv, read_csv


def test_formula_text_is_escaped_and_numbers_are_left_alone(tmp_path: Path) -> None:
    """Defect: public/data/table1.csv held display names raw (a pull request's `=HYPERLINK(...)` ran on open)."""
    rows = [{"display_name": '=HYPERLINK("https://example.org","x")', "clip_t": -0.107703, "note": "-0.5"},
            {"display_name": "+1 then", "clip_t": 0.25, "note": "@SUM(A1:A2)"},
            {"display_name": "-cmd|' /C calc'!A0", "clip_t": None, "note": "plain"}]
    path = tmp_path / "table.csv"
    atomic_write_csv(path, ["display_name", "clip_t", "note"], rows)
    cells = [row for row in csv.reader(path.open())][1:]
    assert cells == [["'=HYPERLINK(\"https://example.org\",\"x\")", "-0.107703", "-0.5"],
                     ["'+1 then", "0.250000", "'@SUM(A1:A2)"],
                     ["'-cmd|' /C calc'!A0", "", "plain"]]
    assert read_csv(path)[0]["clip_t"] == "-0.107703"  # a negative number is still a number
