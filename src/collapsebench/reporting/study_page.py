"""The known-truth study's part of results/validity.md and its figure (drawn by `report`).

The measurements come from results/validity/summary.json (`collapsebench
validity`, scoring/validity_study.py). The prediction below is fixed text,
written before any measurement; the checks under it are computed from the
summary, and with smoke backbones the section says they mean nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from collapsebench.core.metric_table import FACE_TAU, HEADLINE_TAU  # noqa: E402
from collapsebench.reporting.figures import index_figure, save  # noqa: E402

TAU = HEADLINE_TAU
SLOPE_TOLERANCE = 0.25  # "tracks the truth": slope within this of 1
ORDER = ("scr", "matched_scr", "clip_i", "face_scr")  # the study's metrics, as tabled and drawn

PREDICTION = f"""\
## Known-truth study: prediction (written before any measurement)

Composites of the pool's photos in which exactly k of the N requested subjects
appear; the other N - k slots hold other people or animals of the same kind
(impostors), at group-photo scale with overlap and occlusion. The truth is the
collapsed fraction (N - k) / N.

- **matched SCR@{TAU:g}** tracks the truth: slope within {SLOPE_TOLERANCE:g} of 1 against
  (N - k) / N, and a steeper slope than whole-image SCR.
- **whole-image SCR@{TAU:g}** responds weakly (slope well below 1), and with every
  subject present (k = N) it is higher at the largest N than at the smallest:
  dilution, not collapse.
- **CLIP-I** hardly changes when people are swapped for other people: a generic
  group scores close to the true one (the paper's central claim). It tells a
  present subject from an impostor worse than matched DINOv2 (lower AUROC).
- **face identity** (people only) separates present people from impostors best:
  AUROC at least 0.9.
- **crop thresholds**: at most 5% of impostor crops (ground-truth boxes) reach
  cosine {TAU:g}, i.e. the impostor crops' 95th percentile is below {TAU:g}; otherwise
  matched SCR@{TAU:g} counts impostors as present and τ (and the clone floor) must rise
  to the value measured below.
"""


def load_summary(results_dir: Path) -> dict[str, Any] | None:
    """results/validity/summary.json, or None when `collapsebench validity` has not run."""
    path = Path(results_dir) / "validity" / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _metric(summary: dict[str, Any], name: str) -> dict[str, Any] | None:
    return summary.get("metrics", {}).get(name)


def _metrics(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [metric for name in ORDER if (metric := _metric(summary, name))]


def _level(metric: dict[str, Any], n: int, k: int) -> float | None:
    found = [entry["value"] for entry in metric["levels"] if entry["n"] == n and entry["k"] == k]
    return found[0] if found else None


def checks(summary: dict[str, Any]) -> list[str]:
    """One line per predicted behaviour: holds / does not hold, with the numbers."""
    def verdict(ok: bool) -> str:
        return "**holds**" if ok else "**does not hold**"

    lines = []
    whole, matched = _metric(summary, "scr"), _metric(summary, "matched_scr")
    clip, face = _metric(summary, "clip_i"), _metric(summary, "face_scr")
    if matched and whole:
        lines.append(f"- matched SCR@{TAU:g} slope within {SLOPE_TOLERANCE:g} of 1: "
                     f"{verdict(abs(matched['slope'] - 1) <= SLOPE_TOLERANCE)} (slope {matched['slope']:.2f})")
        lines.append(f"- matched SCR steeper than whole-image SCR: {verdict(matched['slope'] > whole['slope'])} "
                     f"({matched['slope']:.2f} vs {whole['slope']:.2f})")
    if whole:
        counts = sorted({entry["n"] for entry in whole["levels"]})
        low, high = _level(whole, counts[0], counts[0]), _level(whole, counts[-1], counts[-1])
        if low is not None and high is not None:
            lines.append(f"- whole-image SCR@{TAU:g} with everyone present rises with N (dilution): "
                         f"{verdict(high > low)} (N={counts[0]}: {low:.2f}, N={counts[-1]}: {high:.2f})")
    if clip and matched and clip["auroc"] is not None and matched["auroc"] is not None:
        lines.append(f"- CLIP-I tells present from impostor worse than matched DINOv2: "
                     f"{verdict(clip['auroc'] < matched['auroc'])} (AUROC {clip['auroc']:.2f} vs "
                     f"{matched['auroc']:.2f})")
    if face and face["auroc"] is not None:
        lines.append(f"- face identity AUROC at least 0.9 for people: {verdict(face['auroc'] >= 0.9)} "
                     f"({face['auroc']:.2f})")
    crops = summary.get("crops")
    if crops:
        lines.append(f"- impostor crops' 95th percentile below {TAU:g}: {verdict(crops['impostor_p95'] < TAU)} "
                     f"({crops['impostor_p95']:.3f}; {100 * crops['impostors_present_at_tau']:.1f}% of impostor "
                     f"crops reach {TAU:g})")
    return lines


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def measured(summary: dict[str, Any]) -> str:
    """The measured part: provenance, the smoke label, checks, per-metric table, crop-threshold calibration."""
    parts = ["## Known-truth study: measured\n"]
    settings = summary["settings"]
    parts.append(f"{summary['composites']} composites ({settings['size']} px; N in {settings['counts']}, every k, "
                 f"{settings['repeats']} per level; backgrounds: "
                 f"{settings['backgrounds'] or 'backdrops of pool photos not in the picture'}; "
                 f"{summary['reused_impostors']} impostor slots had to reuse an impostor). "
                 "Data: results/validity/study.csv (per requested subject) and crops.csv (ground-truth crops).\n")
    if summary["profile"] == "smoke":
        parts.append("**These numbers come from smoke backbones** (tiny random-weight DINOv2, CLIP, OWLv2, YuNet "
                     "and SFace built in code). They show the study runs end to end and **measure nothing about "
                     "identity**: the verdicts below are meaningless. The study itself needs the real, pinned "
                     "checkpoints (`scoring.profile: real`).\n")
    found = checks(summary)
    if found:
        parts.append("Checks of the prediction:\n\n" + "\n".join(found) + "\n")
    lines = ["| metric | slope vs (N-k)/N | intercept | AUROC present vs impostor | present p50 | impostor p50 |",
             "|---|---|---|---|---|---|"]
    for metric in _metrics(summary):
        present, absent = metric.get("present") or {}, metric.get("absent") or {}
        lines.append(f"| {metric['label']} | {_fmt(metric['slope'])} | {_fmt(metric['intercept'])} | "
                     f"{_fmt(metric['auroc'])} | {_fmt(present.get('p50'), 3)} | {_fmt(absent.get('p50'), 3)} |")
    parts.append("Per metric (SCRs: share of requested subjects counted collapsed, ideal slope 1, intercept 0; "
                 "CLIP-I: mean cosine; a missed subject scores lowest in the AUROC):\n\n" + "\n".join(lines) + "\n")
    crops = summary.get("crops")
    if crops:
        parts.append(
            "Crop thresholds (DINOv2 cosine of ground-truth crops, padded to a square, to the subject's reference "
            f"crop): true crops p5/p50/p95 {_fmt(crops['true']['p5'], 3)}/{_fmt(crops['true']['p50'], 3)}/"
            f"{_fmt(crops['true']['p95'], 3)}, impostor crops {_fmt(crops['impostor']['p5'], 3)}/"
            f"{_fmt(crops['impostor']['p50'], 3)}/{_fmt(crops['impostor']['p95'], 3)}; AUROC "
            f"{_fmt(crops['auroc'])}. At τ = {TAU:g}, {100 * crops['true_collapsed_at_tau']:.1f}% of true crops "
            f"would be counted collapsed and {100 * crops['impostors_present_at_tau']:.1f}% of impostor crops "
            f"present. The threshold that best separates them (Youden) is {crops['youden_tau']:.3f}; "
            f"`scoring.matched.clone_floor` should be at least the impostor 95th percentile, "
            f"{crops['impostor_p95']:.3f}. Face-SCR uses SFace's published threshold {FACE_TAU:g}.\n")
    return "\n".join(parts)


def render(summary: dict[str, Any] | None) -> str:
    """The study's whole section of validity.md (prediction first, then the measurement)."""
    if summary is None:
        return PREDICTION + "\n## Known-truth study: measured\n\nNot run yet: `collapsebench validity` writes " \
                            "results/validity/summary.json (the `validity` stage of `dvc repro`).\n"
    return PREDICTION + "\n" + measured(summary)


def stem(summary: dict[str, Any]) -> str:
    return "smoke_validity_study" if summary["profile"] == "smoke" else "validity_study"


def figure(summary: dict[str, Any], folder: Path) -> None:
    """Dose-response per metric (one line per N, the ideal as a dotted diagonal) + the crop cosine quantiles."""
    metrics = _metrics(summary)
    crops = summary.get("crops")
    panels = len(metrics) + (1 if crops else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.8 * panels, 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for n in sorted({entry["n"] for entry in metric["levels"]}):
            levels = sorted((e for e in metric["levels"] if e["n"] == n), key=lambda e: e["collapsed_truth"])
            axis.plot([e["collapsed_truth"] for e in levels], [e["value"] for e in levels], marker="o", ms=3,
                      label=f"N={n}")
        if metric["tau"] is not None:
            axis.plot([0, 1], [0, 1], ":", color="grey", label="ideal")
            axis.set_ylim(-0.02, 1.02)
        auroc = "-" if metric["auroc"] is None else f"{metric['auroc']:.2f}"
        axis.set(title=f"{metric['label']} (AUROC {auroc})", xlabel="true collapsed fraction (N-k)/N")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("measured")
    axes[0][0].legend(fontsize=7)
    if crops:
        axis = axes[0][-1]
        for position, (name, stats) in enumerate((("true", crops["true"]), ("impostor", crops["impostor"]))):
            axis.plot([position, position], [stats["p5"], stats["p95"]], color="C0" if name == "true" else "C3", lw=2)
            axis.plot([position - 0.15, position + 0.15], [stats["p50"]] * 2, color="black")
        axis.axhline(TAU, ls="--", color="grey", label=f"τ = {TAU:g}")
        axis.set(title="crop cosines (p5-p95, median)", xticks=[0, 1], xticklabels=["true", "impostor"],
                 xlim=(-0.6, 1.6))
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    smoke = summary["profile"] == "smoke"
    save(fig, Path(folder), stem(summary), smoke)
    index_figure(Path(folder), stem(summary), "Known-truth study: each metric against the true collapsed fraction",
                 "Composites of the pool's photos with k of N requested subjects present and same-kind impostors "
                 "in the other slots. A metric that measures collapse follows the dotted diagonal. Text, "
                 "prediction and checks: results/validity.md.", smoke)
