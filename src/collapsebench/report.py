"""The report stage: Table 1, metrics for `dvc metrics show`, plot data and figures.

Inputs are files only: each model's `scores.csv` + `scoring.json` and the
paper's transcribed Table 1. Reproduced and reported rows share the column
names but are told apart by `source`; smoke-backbone rows by `backbones`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BenchError
from .io import atomic_write_csv, atomic_write_json, read_csv
from .metrics import THRESHOLDS, bootstrap_intervals, scr, summarize
from .model_config import ModelConfig

CI_COLUMNS = ("clip_t", "clip_i", "dinov2", "dino") + tuple(f"scr_{t:g}" for t in THRESHOLDS)
TABLE1_COLUMNS = (
    ("model", "display_name", "kind", "n_subjects") + CI_COLUMNS + ("n_images", "n_pairs", "source", "backbones")
    + tuple(f"{c}_{end}" for c in CI_COLUMNS for end in ("lo", "hi"))
)
SWEEP = tuple(round(t, 2) for t in np.arange(0.2, 0.801, 0.05))


def load_scores(results_dir: Path, model: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    folder = Path(results_dir) / "models" / model
    scores, info = folder / "scores.csv", folder / "scoring.json"
    if not scores.is_file() or not info.is_file():
        raise BenchError(f"{folder}: scores.csv / scoring.json missing; run `collapsebench score {model}` first")
    rows = read_csv(scores)
    if not rows:
        raise BenchError(f"{scores}: no rows")
    return rows, json.loads(info.read_text(encoding="utf-8"))


def reproduced_rows(config: ModelConfig, rows: list[dict[str, str]], info: dict[str, Any],
                    n_boot: int, seed: int) -> list[dict[str, Any]]:
    """One Table 1 row per subject count, with paired-bootstrap intervals."""
    by_n: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_n[int(row["n_subjects"])].append(row)
    table = []
    for n in sorted(by_n):
        cell = by_n[n]
        summary = summarize(cell)
        # Same bootstrap seed for every model of a cell: the resampled prompts are paired.
        intervals = bootstrap_intervals(cell, CI_COLUMNS, n_boot=n_boot, seed=seed + n)
        row: dict[str, Any] = {
            "model": config.name, "display_name": config.display_name, "kind": config.kind, "n_subjects": n,
            "source": "reproduced", "backbones": info.get("profile", "unknown"), **summary,
        }
        for column, (low, high) in intervals.items():
            row[f"{column}_lo"], row[f"{column}_hi"] = low, high
        table.append(row)
    return table


def reported_rows(path: Path) -> list[dict[str, Any]]:
    """The paper's Table 1, labelled `reported` (no intervals: the paper gives none)."""
    rows = []
    for row in read_csv(path):
        rows.append({
            "model": row["model"], "display_name": f"{row['model']} (paper)", "kind": "reported",
            "n_subjects": int(row["n_subjects"]), "source": "reported", "backbones": "paper",
            **{key: float(value) for key, value in row.items() if key not in ("model", "n_subjects") and value},
        })
    return rows


def scr_sweep(config: ModelConfig, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    by_n: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        by_n[int(row["n_subjects"])].append(float(row["dinov2"]))
    return [{"model": config.name, "n_subjects": n, "tau": tau, "scr": scr(values, tau)}
            for n, values in sorted(by_n.items()) for tau in SWEEP]


def run_report(results_dir: Path, configs: list[ModelConfig], paper_table: Path, n_boot: int, seed: int) -> list[dict]:
    results_dir = Path(results_dir)
    table: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    for config in configs:
        rows, info = load_scores(results_dir, config.name)
        table += reproduced_rows(config, rows, info, n_boot, seed)
        sweep += scr_sweep(config, rows)
    table += reported_rows(paper_table)
    atomic_write_csv(results_dir / "table1.csv", TABLE1_COLUMNS, table)
    atomic_write_json(results_dir / "metrics.json", {
        row["model"]: {f"n{r['n_subjects']}": {k: round(r[k], 4) for k in ("dinov2", "clip_i", "clip_t", "scr_0.4")}
                       for r in table if r["model"] == row["model"] and r["source"] == "reproduced"}
        for row in table if row["source"] == "reproduced"
    })
    plots = results_dir / "plots"
    atomic_write_csv(plots / "trends.csv", ("model", "source", "backbones", "n_subjects", "dinov2", "scr_0.4",
                                            "clip_i", "clip_t"), table)
    atomic_write_csv(plots / "scr_sweep.csv", ("model", "n_subjects", "tau", "scr"), sweep)
    from .figures import draw_figures

    draw_figures(table, sweep, results_dir / "figures")
    return table

