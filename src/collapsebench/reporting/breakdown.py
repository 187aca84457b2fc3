"""Cells below and beside Table 1: per-scene rows and tie-group ranks.

Table 1 pools the three scene types; the per-scene table splits each
(model, subject count) cell by scene so a reader can see whether occlusion or
interaction is what breaks a model. Ranks are given as tie groups (models
whose bootstrap intervals overlap share a rank) because with 5 prompts per
cell most differences between close models are not resolved by the data.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence, Set
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.core.metric_table import RANKED
from collapsebench.reporting.metrics import bootstrap_intervals, summarize, tie_groups

# metric -> higher is better; the metrics a reader ranks models by.
PER_SCENE_KEYS = ("model", "display_name", "kind", "n_subjects", "scene", "source", "backbones")


def cell_summary(cell: Sequence[dict[str, str]], columns: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    """A cell's point estimates plus `<column>_lo/_hi` 95% paired-bootstrap bounds for `columns`.

    Columns absent from the scores (e.g. DINO when its backbone was not run) get no interval.
    """
    summary: dict[str, Any] = dict(summarize(cell))
    present = [column for column in columns if column in summary]
    for column, (low, high) in bootstrap_intervals(cell, present, n_boot=n_boot, seed=seed).items():
        summary[f"{column}_lo"], summary[f"{column}_hi"] = low, high
    return summary


def scene_seed(seed: int, n_subjects: int, scene: str) -> int:
    """The bootstrap seed of a (subject count, scene) cell: the same for every model, so draws are paired.

    Derived from the scene's name (not its position) so a model missing a scene does not shift the others.
    """
    return seed + 1000 * n_subjects + zlib.crc32(scene.encode("utf-8")) % 1000


def per_scene_rows(config: ModelConfig, rows: Sequence[dict[str, str]], backbones: str,
                   columns: Sequence[str], n_boot: int, seed: int) -> list[dict[str, Any]]:
    """One row per (subject count, scene) of one model's scores, with intervals over that cell's prompts."""
    cells: dict[tuple[int, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        cells[(int(row["n_subjects"]), row["scene"])].append(row)
    return [
        {"model": config.name, "display_name": config.display_name, "kind": config.kind, "n_subjects": n,
         "scene": scene, "source": "reproduced", "backbones": backbones,
         **cell_summary(cell, columns, n_boot, scene_seed(seed, n, scene))}
        for (n, scene), cell in sorted(cells.items())
    ]


def add_tie_ranks(table: list[dict[str, Any]], unranked: Set[str] = frozenset()) -> None:
    """Set `rank_<metric>` on reproduced rows, ranking within (kind, backbones, pool, subject count).

    Models are only compared with models scored by the same backbones on the same subject pool (another pool is
    another benchmark instance) at the same subject count, and calibration rows only with each other. Reported
    rows have no intervals, so they get no rank rather than a made-up one.
    """
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        if row.get("source") == "reproduced" and row["model"] not in unranked:
            groups[(row["kind"], row["backbones"], row.get("pool", ""), int(row["n_subjects"]))].append(row)
    for rows in groups.values():
        for metric, higher_is_better in RANKED.items():
            rankable = [r for r in rows if all(isinstance(r.get(f"{metric}_{end}"), float)
                                               and math.isfinite(r[f"{metric}_{end}"]) for end in ("lo", "hi"))]
            ranks = tie_groups({r["model"]: (r[f"{metric}_lo"], r[f"{metric}_hi"]) for r in rankable},
                               higher_is_better)
            for row in rankable:
                row[f"rank_{metric}"] = ranks[row["model"]]
