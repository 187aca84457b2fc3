"""Cells below and beside Table 1: per-scene rows and tie-group ranks.

Table 1 pools the three scene types; the per-scene table splits each
(model, subject count) cell by scene so a reader can see whether occlusion or
interaction is what breaks a model. Ranks come from paired-bootstrap
intervals of the differences between models (reporting/metrics.py
`paired_ranks`): a model's rank is 1 + the number of models ahead of it beyond
doubt, so models whose difference is not resolved share a rank. Pairing is
checked first: every model of a cell must have answered the same (prompt, seed)
jobs; a row that breaks it is not ranked, and `rank_note` in table1.csv says
why. A closed API row's refused jobs count as answered (a refusal is the model's
answer, not a missing image): its prompt ratios are over the images it has, and
when refusals leave a prompt without any image the cell's models are compared
on the prompts every one of them has images of.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.core.metric_table import RANK_NOTE, RANKED
from collapsebench.reporting.metrics import (
    bootstrap_intervals,
    paired_ranks,
    prompt_ratios,
    summarize,
)

PAIRED = "_paired"  # a Table 1 row's private key: what paired ranking needs (never written to a file)


@dataclass(frozen=True)
class PairedCell:
    """One model's cell as the paired ranking sees it: which images, and the per-prompt ratios of each metric."""

    jobs: frozenset[tuple[int, int]]  # (prompt_id, seed)
    numerators: dict[str, np.ndarray]  # per prompt, sorted by prompt id
    denominators: dict[str, np.ndarray]
    n_boot: int
    seed: int

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
    ranked = [column for column in RANKED if column in summary]
    numerators, denominators = prompt_ratios(cell, ranked)
    summary[PAIRED] = PairedCell(frozenset((int(r["prompt_id"]), int(r["seed"])) for r in cell), numerators,
                                 denominators, n_boot, seed)
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


def add_tie_ranks(table: list[dict[str, Any]], unranked: Set[str] = frozenset(),
                  unverified: Set[str] = frozenset(),
                  refused: Mapping[str, Set[tuple[int, int, int]]] | None = None) -> None:
    """Set `rank_<metric>` (or `rank_note`) on reproduced rows, ranking within (kind, backbones, pool, count).

    Models are only compared with models scored by the same backbones on the same subject pool (another pool is
    another benchmark instance) at the same subject count, and calibration rows only with each other. Reported
    rows have no per-prompt scores, so they get no rank rather than a made-up one. `unranked` models (scores that
    do not cover the benchmark), `unverified` ones (no provenance, reporting/origin.py) and rows that break the
    pairing of their cell get a `rank_note` instead. `refused`: per model, its refused jobs as (prompt, seed,
    subject count), answered jobs for the pairing.
    """
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        if row.get("source") != "reproduced":
            continue
        if row["model"] in unverified:
            row[RANK_NOTE] = "not ranked: no provenance (scored neither by our workflow nor by this checkout)"
        elif row["model"] in unranked:
            row[RANK_NOTE] = "not ranked: its scores do not cover the benchmark (see coverage.csv)"
        elif not isinstance(row.get(PAIRED), PairedCell):
            row[RANK_NOTE] = "not ranked: no per-prompt scores"
        else:
            groups[(row["kind"], row["backbones"], row.get("pool", ""), int(row["n_subjects"]))].append(row)
    for rows in groups.values():
        answered = {row["model"]: _answered(row, refused or {}) for row in rows}
        paired = [row for row in rows if _check_pairing(row, rows, answered)]
        common = set.intersection(*(set(_prompts(r)) for r in paired)) if paired else set()
        if paired and not common:
            for row in paired:
                row[RANK_NOTE] = "not ranked: refusals leave no prompt of this cell with images of every model"
            continue
        for metric, higher_is_better in RANKED.items():
            cells = {r["model"]: _on_prompts(r, metric, common) for r in paired if metric in r[PAIRED].numerators}
            if not cells:
                continue
            first = paired[0][PAIRED]
            for model, rank in paired_ranks(cells, higher_is_better, first.n_boot, first.seed).items():
                next(r for r in paired if r["model"] == model)[f"rank_{metric}"] = rank


def _answered(row: dict[str, Any], refused: Mapping[str, Set[tuple[int, int, int]]]) -> frozenset[tuple[int, int]]:
    """The jobs of `row`'s cell that its model answered: its images and its refusals at that subject count."""
    n = int(row["n_subjects"])
    return row[PAIRED].jobs | {(p, s) for p, s, count in refused.get(row["model"], ()) if count == n}


def _prompts(row: dict[str, Any]) -> list[int]:
    """The prompt ids of a row's images, in the order of its per-prompt ratios (prompt_ratios sorts by id)."""
    return sorted({p for p, _ in row[PAIRED].jobs})


def _on_prompts(row: dict[str, Any], metric: str, prompts: Set[int]) -> tuple[np.ndarray, np.ndarray]:
    """A row's per-prompt numerators and denominators of `metric`, restricted to `prompts` (same order for all)."""
    keep = [i for i, p in enumerate(_prompts(row)) if p in prompts]
    return row[PAIRED].numerators[metric][keep], row[PAIRED].denominators[metric][keep]


def _check_pairing(row: dict[str, Any], rows: Sequence[dict[str, Any]],
                   answered: Mapping[str, frozenset[tuple[int, int]]]) -> bool:
    """Whether `row` answered the cell's jobs (the set most of its models share; on a tie the larger one).

    When it does not, its `rank_note` names what it lacks or adds: its draws would not be paired.
    """
    counts = Counter(answered[r["model"]] for r in rows)
    reference = max(counts, key=lambda jobs: (counts[jobs], len(jobs), sorted(jobs)))
    jobs = answered[row["model"]]
    if jobs == reference:
        return True
    missing, extra = sorted(reference - jobs), sorted(jobs - reference)
    parts = ([f"lacks {_jobs_text(missing)} that the other models of this cell have"] if missing else []) + (
        [f"has {_jobs_text(extra)} that they lack"] if extra else [])
    row[RANK_NOTE] = "not ranked: pairing broken: it " + " and ".join(parts)
    return False


def _jobs_text(jobs: Sequence[tuple[int, int]], shown: int = 6) -> str:
    """`prompt 12 seed 0, prompt 12 seed 1 (+3 more)`."""
    text = ", ".join(f"prompt {p} seed {s}" for p, s in jobs[:shown])
    return text + (f" (+{len(jobs) - shown} more)" if len(jobs) > shown else "")
