"""The report stage: Table 1, metrics for `dvc metrics show`, plot data and figures.

Inputs are files only: each model's `scores.csv` + `scoring.json` and the
paper's transcribed Table 1. Reproduced and reported rows share the column
names but are told apart by `source`; smoke-backbone rows by `backbones`.

Closed API rows (`access` closed-api; open models say `open`) may have refused jobs (`refusals.jsonl`: over the
reference limit, content policy, no image). A refusal is never scored as a collapse: a refused job has no image,
so it is outside every metric's denominator (SCR is pooled over the (image, subject) pairs of the images made).
Its share of a cell's jobs is the row's `refusal_rate`, and `coverage.csv` counts it (`refused`) as an answered
job, so a row whose only missing jobs are refusals is complete, and ranked with the others: pairing compares the
jobs each model answered (images and refusals), each prompt's ratio is over the images a model has, and when
refusals leave a prompt without any image the cell's models are ranked on the prompts all of them have images of
(reporting/breakdown.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.suite import Prompt
from collapsebench.core.io import atomic_write_csv, atomic_write_json, read_csv
from collapsebench.core.manifest import PROVENANCE
from collapsebench.core.metric_table import (
    HEADLINE_COLUMNS,
    INTERVAL_COLUMNS,
    RANK_COLUMNS,
    interval_columns,
)
from collapsebench.core.refusals import Refusals
from collapsebench.reporting.breakdown import (
    PER_SCENE_KEYS,
    add_tie_ranks,
    cell_summary,
    per_scene_rows,
)
from collapsebench.reporting.inputs import (
    COVERAGE_COLUMNS,
    Coverage,
    coverage,
    coverage_rows,
    load_scores,
)
from collapsebench.reporting.matched_cells import (
    MATCHED_TABLE_COLUMNS,
    add_matched_cells,
)
from collapsebench.reporting.metrics import bootstrap_intervals, scr
from collapsebench.reporting.origin import row_origin

CI_COLUMNS = INTERVAL_COLUMNS
TABLE1_COLUMNS = (
    ("model", "display_name", "kind", "n_subjects") + CI_COLUMNS
    + ("n_images", "n_pairs", "source", "backbones", "generated_by", "pool")
    + interval_columns(CI_COLUMNS) + RANK_COLUMNS
    + MATCHED_TABLE_COLUMNS  # instance-level columns (beyond the paper), empty when not scored
    + ("access", "refusal_rate")  # closed-api or open; refused jobs / jobs asked (reported rows: empty)
    + ("origin",)  # workflow | submitted | local | unverified (reporting/origin.py); unverified rows are not ranked
)
PER_SCENE_COLUMNS = (
    PER_SCENE_KEYS + CI_COLUMNS + ("n_images", "n_pairs") + interval_columns(CI_COLUMNS)
)
SWEEP = tuple(round(t, 2) for t in np.arange(0.2, 0.801, 0.05))


def generated_by(results_dir: Path, model: str) -> str:
    """`authors` for a results submission (images made elsewhere, scored here), else `collapsebench`."""
    provenance = Path(results_dir) / "models" / model / PROVENANCE
    if provenance.is_file() and json.loads(provenance.read_text(encoding="utf-8")).get("source") == "submitted":
        return "authors"
    return "collapsebench"


def reproduced_rows(config: ModelConfig, rows: list[dict[str, str]], info: dict[str, Any],
                    n_boot: int, seed: int) -> list[dict[str, Any]]:
    """One Table 1 row per subject count, with paired-bootstrap intervals."""
    by_n: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_n[int(row["n_subjects"])].append(row)
    table = []
    for n in sorted(by_n):
        # Same bootstrap seed for every model of a cell: the resampled prompts are paired.
        table.append({
            "model": config.name, "display_name": config.display_name, "kind": config.kind, "n_subjects": n,
            "source": "reproduced", "backbones": info.get("profile", "unknown"), "pool": info.get("pool", ""),
            **cell_summary(by_n[n], CI_COLUMNS, n_boot, seed + n),
        })
    return table


def reported_rows(path: Path) -> list[dict[str, Any]]:
    """The paper's Table 1, labelled `reported` (no intervals: the paper gives none)."""
    rows = []
    for row in read_csv(path):
        rows.append({
            "model": row["model"], "display_name": f"{row['model']} (paper)", "kind": "reported",
            "n_subjects": int(row["n_subjects"]), "source": "reported", "backbones": "paper",
            "pool": "paper (XVerseBench + COSMISC identities)",
            **{key: float(value) for key, value in row.items() if key not in ("model", "n_subjects") and value},
        })
    return rows


def scr_sweep(config: ModelConfig, rows: list[dict[str, str]], backbones: str, n_boot: int,
              seed: int) -> list[dict[str, Any]]:
    """SCR at every threshold of SWEEP per subject count, with the same paired bootstrap as Table 1."""
    by_n: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_n[int(row["n_subjects"])].append(row)
    sweep = []
    for n, cell in sorted(by_n.items()):
        cosines = [float(row["dinov2"]) for row in cell]
        intervals = bootstrap_intervals(cell, [f"scr_{tau:g}" for tau in SWEEP], n_boot=n_boot, seed=seed + n)
        sweep += [{"model": config.name, "backbones": backbones, "n_subjects": n, "tau": tau,
                   "scr": scr(cosines, tau), "scr_lo": intervals[f"scr_{tau:g}"][0],
                   "scr_hi": intervals[f"scr_{tau:g}"][1]} for tau in SWEEP]
    return sweep


@dataclass
class Report:
    table: list[dict[str, Any]]  # Table 1 rows, reproduced then reported
    coverage: list[Coverage]  # per model, in the order of `configs`


def run_report(results_dir: Path, configs: list[ModelConfig], paper_table: Path, prompts: Sequence[Prompt],
               seeds: Sequence[int], n_boot: int, seed: int) -> Report:
    """Every output of the report stage; models whose scores do not cover the benchmark are kept but not ranked."""
    results_dir = Path(results_dir)
    table: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    scenes: list[dict[str, Any]] = []
    covered: list[Coverage] = []
    origins: dict[str, str] = {}
    refused_jobs: dict[str, set[tuple[int, int, int]]] = {}  # per model: (prompt, seed, subject count)
    for config in configs:
        rows, info = load_scores(results_dir, config.name)
        refused = Refusals(results_dir / "models" / config.name).final()
        refused_jobs[config.name] = {(int(r["prompt_id"]), int(r["seed"]), int(r["n_subjects"]))
                                     for r in refused.values()}
        covered.append(coverage(config.name, rows, prompts, seeds, refused))
        backbones = info.get("profile", "unknown")
        cells = add_matched_cells(reproduced_rows(config, rows, info, n_boot, seed), rows, n_boot, seed)
        origin = row_origin(results_dir / "models" / config.name)
        origins[config.name] = origin
        table += [{**cell, "generated_by": generated_by(results_dir, config.name), "access": config.access,
                   "refusal_rate": covered[-1].refusal_rate(int(cell["n_subjects"])), "origin": origin}
                  for cell in cells]
        sweep += scr_sweep(config, rows, backbones, n_boot, seed)
        scenes += per_scene_rows(config, rows, backbones, CI_COLUMNS, n_boot, seed)
    add_tie_ranks(table, unranked={item.model for item in covered if not item.complete},
                  unverified={name for name, origin in origins.items() if origin == "unverified"},
                  refused=refused_jobs)
    table += reported_rows(paper_table)
    atomic_write_csv(results_dir / "coverage.csv", COVERAGE_COLUMNS, [r for item in covered for r in coverage_rows(item)])
    atomic_write_csv(results_dir / "table1.csv", TABLE1_COLUMNS, table)
    atomic_write_csv(results_dir / "per_scene.csv", PER_SCENE_COLUMNS, scenes)
    atomic_write_json(results_dir / "metrics.json", {
        row["model"]: {f"n{r['n_subjects']}": {k: round(r[k], 4) for k in HEADLINE_COLUMNS}
                       for r in table if r["model"] == row["model"] and r["source"] == "reproduced"}
        for row in table if row["source"] == "reproduced"
    })
    plots = results_dir / "plots"
    atomic_write_csv(plots / "trends.csv", ("model", "source", "backbones", "n_subjects") + HEADLINE_COLUMNS, table)
    atomic_write_csv(plots / "scr_sweep.csv", ("model", "backbones", "n_subjects", "tau", "scr", "scr_lo", "scr_hi"),
                     sweep)
    from collapsebench.reporting.figures import draw_figures

    draw_figures(results_dir)
    from collapsebench.reporting.validity import write_validity_study

    write_validity_study(results_dir, table)  # after draw_figures, which prunes figures it did not draw
    return Report(table, covered)

