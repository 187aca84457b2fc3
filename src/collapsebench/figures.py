"""The paper's figures, drawn with matplotlib from the report's rows only (PNG + SVG).

Reported (paper) rows are dashed, reproduced rows solid with their 95%
bootstrap interval shaded, smoke-backbone rows marked "(smoke)" in the legend.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io import atomic_write_bytes  # noqa: E402


def label(row: dict[str, Any]) -> str:
    suffix = " (smoke)" if row.get("backbones") == "smoke" else ""
    return f"{row['display_name'] if row['source'] == 'reported' else row['model']}{suffix}"


def save(figure: plt.Figure, folder: Path, stem: str) -> None:
    """Write PNG and SVG atomically (metadata dates stripped so reruns give identical SVGs)."""
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight",
                       metadata={"Date": None} if fmt == "svg" else None)
        atomic_write_bytes(folder / f"{stem}.{fmt}", buffer.getvalue())
    plt.close(figure)


def series(table: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        by_model[label(row)].append(row)
    return {name: sorted(rows, key=lambda r: r["n_subjects"]) for name, rows in by_model.items()}


def trends_figure(table: list[dict[str, Any]], folder: Path) -> None:
    """Figure 4: DINOv2 and SCR@0.4 against subject count, one line per model."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in series(table).items():
        n = [r["n_subjects"] for r in rows]
        style = "--" if rows[0]["source"] == "reported" else "-"
        for axis, column in zip(axes, ("dinov2", "scr_0.4")):
            line, = axis.plot(n, [r[column] for r in rows], style, marker="o", label=name)
            if rows[0]["source"] == "reproduced":
                axis.fill_between(n, [r[f"{column}_lo"] for r in rows], [r[f"{column}_hi"] for r in rows],
                                  color=line.get_color(), alpha=0.15)
    axes[0].set(title="DINOv2 identity similarity", xlabel="subjects in the prompt", ylabel="DINOv2 score (mean)")
    axes[1].set(title="Subject Collapse Rate @0.4", xlabel="subjects in the prompt", ylabel="SCR (lower is better)",
                ylim=(-0.02, 1.02))
    for axis in axes:
        axis.set_xticks([2, 4, 6, 8, 10])
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    save(figure, folder, "fig4_trends")


def sweep_figure(sweep: list[dict[str, Any]], folder: Path) -> None:
    """SCR against the threshold tau, one panel per subject count."""
    counts = sorted({row["n_subjects"] for row in sweep})
    figure, axes = plt.subplots(1, len(counts), figsize=(3 * len(counts), 3), sharey=True, squeeze=False)
    for axis, n in zip(axes[0], counts):
        models = sorted({row["model"] for row in sweep})
        for model in models:
            points = [row for row in sweep if row["model"] == model and row["n_subjects"] == n]
            axis.plot([p["tau"] for p in points], [p["scr"] for p in points], label=model)
        axis.set(title=f"N = {n}", xlabel="threshold tau")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("SCR")
    axes[0][-1].legend(fontsize=7)
    save(figure, folder, "scr_vs_threshold")


def draw_figures(table: list[dict[str, Any]], sweep: list[dict[str, Any]], folder: Path) -> None:
    trends_figure(table, folder)
    sweep_figure(sweep, folder)
