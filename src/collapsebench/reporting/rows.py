"""Reading the report's CSV files back as typed rows (for the figures and the site).

The report writes every number as text; its readers need floats, ints for
subject counts, None for empty cells (a metric the paper did not report), and
one shared answer to "is this row a result?" (not when scored by smoke or custom backbones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collapsebench.core.io import read_csv

TEXT_FIELDS = ("model", "display_name", "kind", "source", "backbones", "scene", "pool")
Row = dict[str, Any]


def parse(rows: Sequence[dict[str, str]]) -> list[Row]:
    """CSV strings -> numbers (empty or non-finite cells -> None), text fields kept as they are."""
    parsed = []
    for row in rows:
        out: Row = {}
        for key, value in row.items():
            if key in TEXT_FIELDS or value is None:
                out[key] = value
            elif value == "":
                out[key] = None
            else:
                try:
                    number = float(value)
                except ValueError:
                    out[key] = value
                else:  # "nan" (an interval the bootstrap could not form) reads as missing, not as a number
                    out[key] = number if math.isfinite(number) else None
        for key in ("n_subjects", "n_images", "n_pairs"):
            if isinstance(out.get(key), float):
                out[key] = int(out[key])
        parsed.append(out)
    return parsed


def load(results_dir: Path, name: str) -> list[Row]:
    """Typed rows of results/<name>, or [] when the report did not write that file."""
    path = Path(results_dir) / name
    return parse(read_csv(path)) if path.is_file() else []


def is_smoke(row: Row) -> bool:
    """Scored with random-weight smoke backbones: a pipeline check, never a result."""
    return row.get("backbones") == "smoke"


def is_custom(row: Row) -> bool:
    """Scored with checkpoints not verified to be the pinned ones (scoring/checkpoints.py): not comparable."""
    return row.get("backbones") == "custom"


def is_result(row: Row) -> bool:
    """What leaderboard tables and figures may show: the paper's rows and rows scored with the pinned checkpoints."""
    return not is_smoke(row) and not is_custom(row)
