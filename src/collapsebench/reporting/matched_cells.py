"""Aggregating matched SCR into Table 1 cells (the report half of matched SCR; detection is in scoring/detection.py).

Point values are pooled ratios (matched SCR and clone rate over subject
instances, count accuracy over images); intervals reuse the paired prompt
bootstrap of the paper's columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from collapsebench.core.metric_table import (
    MATCHED_COLUMNS,
    THRESHOLDS,
    interval_columns,
)
from collapsebench.reporting.metrics import ratio_intervals


def matched_enabled(rows: Sequence[Mapping[str, str]]) -> bool:
    """Whether these scores.csv rows carry matched values (`n_detections` filled)."""
    return bool(rows) and all(str(row.get("n_detections", "")) != "" for row in rows)


def clone_flags(rows: Sequence[Mapping[str, str]]) -> list[bool]:
    """Per row: its subject's best crop is also the best crop of another subject of the same image."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in rows:
        if row["best_crop"] != "":
            counts[(str(row["prompt_id"]), str(row["seed"]), str(row["best_crop"]))] += 1
    return [row["best_crop"] != "" and counts[(str(row["prompt_id"]), str(row["seed"]), str(row["best_crop"]))] > 1
            for row in rows]


def _prompt_ratios(rows: Sequence[Mapping[str, str]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per prompt (sorted by id): numerator and denominator of every matched column."""
    flags = clone_flags(rows)
    by_prompt: dict[int, list[tuple[Mapping[str, str], bool]]] = defaultdict(list)
    for row, flag in zip(rows, flags):
        by_prompt[int(row["prompt_id"])].append((row, flag))
    numerators: dict[str, list[float]] = defaultdict(list)
    denominators: dict[str, list[float]] = defaultdict(list)
    for prompt in sorted(by_prompt):
        pairs = by_prompt[prompt]
        for tau in THRESHOLDS:
            collapsed = sum(row["matched_dinov2"] == "" or float(row["matched_dinov2"]) < tau for row, _ in pairs)
            numerators[f"matched_scr_{tau:g}"].append(collapsed)
            denominators[f"matched_scr_{tau:g}"].append(len(pairs))
        images = {row["seed"]: int(row["n_detections"]) == int(row["n_subjects"]) for row, _ in pairs}
        numerators["count_accuracy"].append(sum(images.values()))
        denominators["count_accuracy"].append(len(images))
        numerators["clone_rate"].append(sum(flag for _, flag in pairs))
        denominators["clone_rate"].append(len(pairs))
    return ({k: np.array(v, dtype=float) for k, v in numerators.items()},
            {k: np.array(v, dtype=float) for k, v in denominators.items()})


def matched_cell(rows: Sequence[Mapping[str, str]], n_boot: int, seed: int) -> dict[str, float]:
    """A Table 1 cell's matched columns with `_lo/_hi` bounds; {} when the rows carry no matched values.

    Point values are pooled ratios (matched SCR and clone rate over subject
    instances, count accuracy over images); intervals reuse the paired prompt
    bootstrap of the paper's columns (same seed -> same draws).
    """
    if not matched_enabled(rows):
        return {}
    numerators, denominators = _prompt_ratios(rows)
    cell: dict[str, float] = {column: float(numerators[column].sum() / denominators[column].sum())
                              for column in MATCHED_COLUMNS}
    for column, (low, high) in ratio_intervals(numerators, denominators, n_boot, seed).items():
        cell[f"{column}_lo"], cell[f"{column}_hi"] = low, high
    return cell


MATCHED_TABLE_COLUMNS = MATCHED_COLUMNS + interval_columns(MATCHED_COLUMNS)


def add_matched_cells(table: list[dict[str, Any]], rows: Sequence[Mapping[str, str]], n_boot: int,
                      seed: int) -> list[dict[str, Any]]:
    """Fill one model's Table 1 rows (one per subject count) with their matched columns, in place.

    The bootstrap seed of a cell is `seed + n`, as for the paper's columns, so the draws are paired.
    """
    by_n: dict[int, list[Mapping[str, str]]] = defaultdict(list)
    for row in rows:
        by_n[int(row["n_subjects"])].append(row)
    for entry in table:
        entry.update(matched_cell(by_n.get(int(entry["n_subjects"]), []), n_boot, seed + int(entry["n_subjects"])))
    return table
