"""Aggregating the instance-level columns into Table 1 cells (the report half of matched SCR and face identity).

Detection, matching and faces are in scoring/detection.py and scoring/face.py.
Every value is a pooled ratio of per-prompt sums, so its interval comes from the
same paired prompt bootstrap as the paper's columns (same seed, same draws):

- matched SCR@tau, missing rate, clone rate and its null: over subject instances;
- count accuracy: over images;
- face ID (mean cosine of found faces), Face-SCR and faces missing: over the
  person subjects whose reference shows a face; a cell without such people has
  no face value at all (empty, never zero).

Older scores.csv files (before the kind, clone and face columns) are still
read: their clone flags come from `best_crop` alone (no floor, no null) and
their face columns stay empty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from collapsebench.core.metric_table import (
    FACE_TAU,
    INSTANCE_COLUMNS,
    THRESHOLDS,
    interval_columns,
)
from collapsebench.reporting.metrics import ratio_intervals

Row = Mapping[str, str]


def matched_enabled(rows: Sequence[Row]) -> bool:
    """Whether these scores.csv rows carry matched values (`n_detections` filled)."""
    return bool(rows) and all(str(row.get("n_detections", "")) != "" for row in rows)


def face_enabled(rows: Sequence[Row]) -> bool:
    """Whether these rows were scored for faces (some row has a face status)."""
    return any(row.get("face_status") for row in rows)


def clone_flags(rows: Sequence[Row]) -> list[bool]:
    """Per row: a clone (see scoring/detection.py). Older files: its best crop is another subject's best crop."""
    if rows and "clone" in rows[0]:
        return [str(row["clone"]) == "1" for row in rows]
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in rows:
        if row["best_crop"] != "":
            counts[(str(row["prompt_id"]), str(row["seed"]), str(row["best_crop"]))] += 1
    return [row["best_crop"] != "" and counts[(str(row["prompt_id"]), str(row["seed"]), str(row["best_crop"]))] > 1
            for row in rows]


def _matched_ratios(pairs: Sequence[tuple[Row, bool]]) -> dict[str, tuple[float, float]]:
    """One prompt's (numerator, denominator) of every matched column."""
    ratios = {}
    for tau in THRESHOLDS:
        collapsed = sum(row["matched_dinov2"] == "" or float(row["matched_dinov2"]) < tau for row, _ in pairs)
        ratios[f"matched_scr_{tau:g}"] = (collapsed, len(pairs))
    ratios["missing_rate"] = (sum(row["matched_dinov2"] == "" for row, _ in pairs), len(pairs))
    images = {row["seed"]: int(row["n_detections"]) == int(row["n_subjects"]) for row, _ in pairs}
    ratios["count_accuracy"] = (sum(images.values()), len(images))
    ratios["clone_rate"] = (sum(flag for _, flag in pairs), len(pairs))
    if "clone_null" in pairs[0][0]:
        ratios["clone_null"] = (sum(float(row["clone_null"] or 0) for row, _ in pairs), len(pairs))
    return ratios


def _face_ratios(rows: Sequence[Row]) -> dict[str, tuple[float, float]]:
    """One prompt's (numerator, denominator) of every face column, over its counted person subjects."""
    counted = [row for row in rows if row.get("face_status") in ("matched", "missing")]
    found = [float(row["face"]) for row in counted if row["face_status"] == "matched"]
    missing = len(counted) - len(found)
    return {"face": (sum(found), len(found)),
            "face_scr": (sum(c < FACE_TAU for c in found) + missing, len(counted)),
            "face_missing": (missing, len(counted))}


def _prompt_ratios(rows: Sequence[Row], matched: bool, face: bool) -> tuple[dict[str, np.ndarray],
                                                                           dict[str, np.ndarray]]:
    """Per prompt (sorted by id): numerator and denominator of every instance column scored."""
    flags = clone_flags(rows) if matched else [False] * len(rows)
    by_prompt: dict[int, list[tuple[Row, bool]]] = defaultdict(list)
    for row, flag in zip(rows, flags):
        by_prompt[int(row["prompt_id"])].append((row, flag))
    numerators: dict[str, list[float]] = defaultdict(list)
    denominators: dict[str, list[float]] = defaultdict(list)
    for prompt in sorted(by_prompt):
        ratios = {**(_matched_ratios(by_prompt[prompt]) if matched else {}),
                  **(_face_ratios([row for row, _ in by_prompt[prompt]]) if face else {})}
        for column, (numerator, denominator) in ratios.items():
            numerators[column].append(numerator)
            denominators[column].append(denominator)
    return ({k: np.array(v, dtype=float) for k, v in numerators.items()},
            {k: np.array(v, dtype=float) for k, v in denominators.items()})


def matched_cell(rows: Sequence[Row], n_boot: int, seed: int) -> dict[str, float]:
    """A Table 1 cell's instance columns with `_lo/_hi` bounds; {} when the rows carry none.

    A column whose denominator is 0 in the whole cell (face values in a cell of
    animals) is left out, so it stays empty rather than becoming 0.
    """
    matched, face = matched_enabled(rows), face_enabled(rows)
    if not matched and not face:
        return {}
    numerators, denominators = _prompt_ratios(rows, matched, face)
    kept = [column for column in INSTANCE_COLUMNS if column in numerators and denominators[column].sum() > 0]
    cell: dict[str, float] = {column: float(numerators[column].sum() / denominators[column].sum()) for column in kept}
    intervals = ratio_intervals({c: numerators[c] for c in kept}, {c: denominators[c] for c in kept}, n_boot, seed)
    for column, (low, high) in intervals.items():
        cell[f"{column}_lo"], cell[f"{column}_hi"] = low, high
    return cell


MATCHED_TABLE_COLUMNS = INSTANCE_COLUMNS + interval_columns(INSTANCE_COLUMNS)


def add_matched_cells(table: list[dict[str, Any]], rows: Sequence[Row], n_boot: int,
                      seed: int) -> list[dict[str, Any]]:
    """Fill one model's Table 1 rows (one per subject count) with their instance columns, in place.

    The bootstrap seed of a cell is `seed + n`, as for the paper's columns, so the draws are paired.
    """
    by_n: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_n[int(row["n_subjects"])].append(row)
    for entry in table:
        entry.update(matched_cell(by_n.get(int(entry["n_subjects"]), []), n_boot, seed + int(entry["n_subjects"])))
    return table
