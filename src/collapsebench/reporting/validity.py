"""Metric-validity study: the paper's whole-image SCR against matched SCR and CLIP-I as N grows.

Why: the paper's SCR compares a whole N-subject scene with single-subject
references, so part of what it calls collapse may be dilution (each subject
fills about 1/N of the frame). The calibration models tell the two apart:
the collage contains every identity pixel for pixel, so anything its SCR
reports is a property of the metric, not of a model. The prediction is
written down first (`PREDICTION`, fixed text); the measured part of
results/validity.md is generated from Table 1 rows at report time, with an
automatic check of each predicted behaviour, and says so when the numbers come
from smoke (random-weight) backbones. The known-truth study (composites with k
of N identities present; scoring/validity_study.py, its text in
reporting/study_page.py) follows as the second part of the same file.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from collapsebench.core.io import atomic_write_text  # noqa: E402
from collapsebench.core.metric_table import BY_COLUMN, HEADLINE_TAU  # noqa: E402
from collapsebench.reporting import study_page  # noqa: E402
from collapsebench.reporting.figures import index_figure, save  # noqa: E402
from collapsebench.reporting.rows import is_result, is_smoke  # noqa: E402

TAU = HEADLINE_TAU
GLOBAL, MATCHED = f"scr_{TAU:g}", f"matched_scr_{TAU:g}"
PANELS = ((GLOBAL, f"whole-image SCR@{TAU:g} (paper)"), (MATCHED, f"matched SCR@{TAU:g} (instance level)"),
          ("clip_i", "CLIP-I (whole image, mean)"))
NEAR_ZERO = 0.1  # "matched SCR near 0" for the collage
NEAR_ONE = 0.9  # "everything collapsed" for the floor

PREDICTION = f"""\
## Prediction (written before any measurement)

- **collage** (the references tiled; every identity present pixel for pixel):
  matched SCR stays near 0 at every N (a working detector finds the N tiles and
  each crop is its own reference), while the paper's whole-image SCR **rises
  with N** (each subject fills about 1/N of the frame, so its whole-image cosine
  falls) and CLIP-I falls for the same reason. Any SCR the collage gets is a
  property of the metric, not of a model.
- **clone** (subject 1 repeated N times): matched SCR close to (N-1)/N, clone
  rate close to 1 (every subject's best crop is a copy of subject 1), count
  accuracy high.
- **floor** (no subject at all): whole-image and matched SCR close to 1, no
  detections, count accuracy 0.
- **real models**: matched SCR at or below whole-image SCR when the detector
  finds the subjects; a gap that widens with N is the share of the paper's SCR
  that is dilution rather than collapse.

"Near 0" is checked as at most {NEAR_ZERO:g}, "close to 1" as at least {NEAR_ONE:g}, "rises" as a
higher value at the largest N than at the smallest.
"""

WHAT_EACH_METRIC_SEES = """\
## What each metric can and cannot see

| metric | sees | cannot see |
|---|---|---|
| whole-image SCR / DINOv2 (paper) | whether each reference's look is present somewhere in the scene | where, or how many times; each subject is one of N in the frame, so it is diluted as N grows (see the prediction) |
| CLIP-I | global semantic similarity of the scene to each reference | identity details: a group of other people of the same age and dress scores nearly as high; diluted like DINOv2 |
| CLIP-T | agreement of the scene with the prompt text | identity |
| matched SCR | each detected individual against each subject of its kind, one to one; crop and reference both padded to a square, so heads and tails survive the backbone's center crop | an individual the detector misses (counted collapsed, and shown apart as "missing"); a crop cut by occlusion or holding two people; identity below DINOv2's resolution (faces at 100 px) |
| missing | subjects left without a detection of their kind: detection failure, told apart from identity failure | why the detector missed (absent subject, occlusion, odd style) |
| count accuracy | whether the image holds N people/animals | who they are |
| clone rate (+ null) | several subjects whose best crop is one rendered individual, each above the clone floor, against what random best crops would give (1-(1-1/k)^(m-1)) | a clone the detector merges into one box; clones below the floor (they count as missing or collapsed instead) |
| face ID / Face-SCR (people) | face-recognition identity of each person's assigned face (YuNet + SFace), one to one | animals (empty, not zero); faces turned away, tiny (under about 10 px after letterboxing to 640) or hidden (missing); people whose reference shows no face (not counted); stylized faces the recognizer was not trained on; the face detector is kind-blind, so an animal's face can be assigned to a person |
"""


def cells(table: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Reproduced Table 1 rows per model, sorted by subject count."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        if row.get("source") == "reproduced":
            by_model[str(row["model"])].append(row)
    return {model: sorted(rows, key=lambda r: int(r["n_subjects"])) for model, rows in sorted(by_model.items())}


def _value(row: dict[str, Any], column: str) -> float:
    got = row.get(column)
    return math.nan if got in (None, "") else float(got)


def _series(rows: Sequence[dict[str, Any]], column: str) -> str:
    return ", ".join(f"N={r['n_subjects']}: {_value(r, column):.2f}" for r in rows)


def checks(by_model: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One line per predicted behaviour of the calibration models: holds / does not hold, with the numbers."""
    lines = []

    def verdict(ok: bool) -> str:
        return "**holds**" if ok else "**does not hold**"

    collage = by_model.get("collage")
    if collage:
        rise = _value(collage[-1], GLOBAL) > _value(collage[0], GLOBAL)
        lines.append(f"- collage, whole-image SCR@{TAU:g} rises with N: {verdict(rise)} ({_series(collage, GLOBAL)})")
        if not math.isnan(_value(collage[0], MATCHED)):
            low = max(_value(r, MATCHED) for r in collage) <= NEAR_ZERO
            lines.append(f"- collage, matched SCR@{TAU:g} near 0 at every N: {verdict(low)} "
                         f"({_series(collage, MATCHED)})")
    clone = by_model.get("clone")
    if clone and not math.isnan(_value(clone[0], MATCHED)):
        gap = max(abs(_value(r, MATCHED) - (int(r["n_subjects"]) - 1) / int(r["n_subjects"])) for r in clone)
        lines.append(f"- clone, matched SCR@{TAU:g} close to (N-1)/N (within 0.15): {verdict(gap <= 0.15)} "
                     f"(largest gap {gap:.2f}; {_series(clone, MATCHED)})")
        high = min(_value(r, "clone_rate") for r in clone) >= NEAR_ONE
        lines.append(f"- clone, clone rate close to 1: {verdict(high)} ({_series(clone, 'clone_rate')})")
    floor = by_model.get("floor")
    if floor:
        for column, name in ((GLOBAL, "whole-image SCR"), (MATCHED, "matched SCR")):
            if not math.isnan(_value(floor[0], column)):
                ok = min(_value(r, column) for r in floor) >= NEAR_ONE
                lines.append(f"- floor, {name}@{TAU:g} close to 1: {verdict(ok)} ({_series(floor, column)})")
    return lines


def measured_table(by_model: dict[str, list[dict[str, Any]]]) -> str:
    columns = tuple((column, BY_COLUMN[column].label) for column in (GLOBAL, MATCHED, "clip_i", "count_accuracy",
                                                                     "clone_rate"))
    lines = ["| model | N | " + " | ".join(name for _, name in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for model, rows in by_model.items():
        for row in rows:
            values = [_value(row, column) for column, _ in columns]
            lines.append(f"| {model} | {row['n_subjects']} | "
                         + " | ".join("-" if math.isnan(v) else f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


def render(table: Sequence[dict[str, Any]]) -> str:
    """The whole results/validity.md text: prediction, what metrics see, then the measured result."""
    by_model = cells(table)
    smoke = any(row.get("backbones") == "smoke" for rows in by_model.values() for row in rows)
    matched = any(not math.isnan(_value(row, MATCHED)) for rows in by_model.values() for row in rows)
    parts = ["# Metric validity: whole-image SCR vs matched SCR vs CLIP-I as N grows\n",
             f"Generated by `collapsebench report` from results/table1.csv; figure: figures/{stem(smoke)}.png.\n",
             PREDICTION, WHAT_EACH_METRIC_SEES, "## Measured\n"]
    if smoke:
        parts.append("**These numbers come from smoke backbones** (tiny random-weight DINOv2, DINO, CLIP and "
                     "OWLv2 built in code). They show the study runs end to end and **measure nothing about "
                     "identity**: the verdicts below are meaningless for them. Whether the prediction holds "
                     "needs the real, pinned checkpoints (`scoring.profile: real`; model hub access or a "
                     "filled Hugging Face cache, and a GPU for a reasonable run time).\n")
    if not matched:
        parts.append("Matched SCR was not computed for these scores (`scoring.matched.enabled` is false), "
                     "so only the whole-image metrics are shown.\n")
    if not by_model:
        parts.append("No reproduced rows yet.\n")
        return "\n".join(parts)
    found = checks(by_model)
    if found:
        parts.append("Checks of the prediction (calibration models):\n\n" + "\n".join(found) + "\n")
    real = [m for m, rows in by_model.items() if rows[0].get("kind") != "calibration"]
    for model in real if matched else []:
        gaps = ", ".join(f"N={r['n_subjects']}: {_value(r, GLOBAL) - _value(r, MATCHED):+.2f}" for r in by_model[model])
        parts.append(f"- {model}: whole-image minus matched SCR@{TAU:g}: {gaps}")
    parts.append("\n" + measured_table(by_model) + "\n")
    return "\n".join(parts)


def figure(table: Sequence[dict[str, Any]], folder: Path) -> None:
    """Three panels against N: whole-image SCR, matched SCR, CLIP-I; one line per reproduced model."""
    by_model = cells(table)
    smoke = any(row.get("backbones") == "smoke" for rows in by_model.values() for row in rows)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for axis, (column, title) in zip(axes, PANELS):
        for model, rows in by_model.items():
            values = [_value(r, column) for r in rows]
            if all(math.isnan(v) for v in values):
                continue
            style = "--" if rows[0].get("kind") == "calibration" else "-"
            line, = axis.plot([r["n_subjects"] for r in rows], values, style, marker="o", label=model)
            low, high = [_value(r, f"{column}_lo") for r in rows], [_value(r, f"{column}_hi") for r in rows]
            if not any(math.isnan(v) for v in low + high):
                axis.fill_between([r["n_subjects"] for r in rows], low, high, color=line.get_color(), alpha=0.15)
        axis.set(title=title, xlabel="subjects in the prompt", xticks=[2, 4, 6, 8, 10])
        axis.grid(alpha=0.3)
        if column != "clip_i":
            axis.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("value")
    axes[-1].legend(fontsize=7)
    save(fig, Path(folder), stem(smoke), smoke)
    index_figure(Path(folder), stem(smoke), "Metric validity: whole-image SCR, matched SCR and CLIP-I against N",
                 "Prediction: a perfect collage keeps matched SCR near 0 at every N while the whole-image SCR "
                 "rises with N. Dashed lines are calibration models. Text and measured values: results/validity.md.",
                 smoke)


def stem(smoke: bool) -> str:
    """File stem of the figure; smoke-scored figures carry the `smoke_` prefix like every other figure."""
    return "smoke_validity" if smoke else "validity"


def write_validity_study(results_dir: Path, table: Sequence[dict[str, Any]]) -> None:
    """results/validity.md + results/figures/[smoke_]validity.png|svg (call after the other figures are drawn),
    plus the known-truth study's section and figure ([smoke_]validity_study) when results/validity/ has it.

    Rows scored with real backbones are studied when there are any; smoke rows
    only otherwise, so a random-weight number is never mixed into a result.
    Rows scored with custom backbones are never studied (not comparable).
    """
    results_dir = Path(results_dir)
    reproduced = [row for row in table if row.get("source") == "reproduced"]
    real = [row for row in reproduced if is_result(row)]
    selected = real or [row for row in reproduced if is_smoke(row)]
    figure(selected, results_dir / "figures")
    study = study_page.load_summary(results_dir)
    if study is not None:
        study_page.figure(study, results_dir / "figures")
    atomic_write_text(results_dir / "validity.md", render(selected) + "\n" + study_page.render(study))
