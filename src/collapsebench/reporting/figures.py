"""The paper's figures, drawn with matplotlib from the report's files only (PNG + SVG).

Inputs: results/table1.csv, results/plots/scr_sweep.csv, results/per_scene.csv.
Output: results/figures/<stem>.png|svg and figures.json (titles and captions
the site shows next to each figure).

Leaderboard figures use paper-reported rows (dashed, no intervals: the paper
gives none) and reproduced rows scored with real backbones (solid, 95%
paired-bootstrap interval shaded). Rows scored with smoke backbones are drawn
only in separate `smoke_*` figures that carry a watermark, so a random-weight
number can never be read as a result. Rendering is deterministic (fixed SVG
hash salt, no dates), so a rerun on the same inputs rewrites the same bytes.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from collapsebench.core.io import atomic_write_bytes, atomic_write_json  # noqa: E402
from collapsebench.core.metric_table import BY_COLUMN, HEADLINE_TAU  # noqa: E402
from collapsebench.reporting.rows import Row, is_result, is_smoke, load  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "collapsebench"  # stable element ids in SVGs
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable, selectable SVGs
WATERMARK = "SMOKE BACKBONES \u2014 random weights, not results"
SUBJECT_TICKS = (2, 4, 6, 8, 10)
# The radar's spokes; a lower-is-better metric is drawn as 1 - value so that outward is always better.
RADAR = tuple(BY_COLUMN[c] for c in ("clip_t", "clip_i", "dino", "dinov2", f"scr_{HEADLINE_TAU:g}"))
RADAR_AXES = tuple((m.column, m.label if m.higher_is_better else f"1 \u2212 {m.label}") for m in RADAR)


@dataclass(frozen=True)
class FigureData:
    """The rows one set of figures is drawn from (leaderboard or smoke)."""

    table: list[Row]
    sweep: list[Row]
    scenes: list[Row]
    smoke: bool

    @property
    def prefix(self) -> str:
        return "smoke_" if self.smoke else ""


def label(row: Row) -> str:
    """Legend name: paper rows say so, calibration rows say so, smoke rows say so.

    Dollar signs are escaped: matplotlib would read `$...$` in a name as mathtext.
    """
    name = str(row["model"]).replace("$", r"\$")
    if row["source"] == "reported":
        return f"{name} (paper)"
    tags = [tag for tag, on in (("calibration", row.get("kind") == "calibration"), ("smoke", is_smoke(row))) if on]
    return f"{name} ({', '.join(tags)})" if tags else name


def colors(rows: Sequence[Row]) -> dict[str, Any]:
    """One stable colour per model name across every figure (sorted names -> tab10)."""
    cycle = plt.get_cmap("tab10").colors
    return {name: cycle[i % len(cycle)] for i, name in enumerate(sorted({r["model"] for r in rows}))}


def by_label(rows: Sequence[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(label(row), []).append(row)
    return {name: sorted(group, key=lambda r: r["n_subjects"]) for name, group in sorted(grouped.items())}


def value(row: Row, column: str) -> float:
    got = row.get(column)
    return math.nan if got is None else float(got)


def interval(row: Row, column: str) -> tuple[float, float] | None:
    low, high = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    return None if low is None or high is None else (float(low), float(high))


def style_key(rows: Sequence[Row], columns: Sequence[str], paper: str, ours: str, spread: str) -> str:
    """A caption's key to the marks, naming only what the figure draws: `paper` when it has printed rows, `ours`
    when it has reproduced rows, `spread` when some drawn row has an interval on one of `columns`."""
    drawn = [(paper, any(r.get("source") == "reported" for r in rows)),
             (ours, any(r.get("source") != "reported" for r in rows)),
             (spread, any(interval(r, column) for r in rows for column in columns))]
    return " ".join(text for text, shown in drawn if shown)


def save(figure: plt.Figure, folder: Path, stem: str, smoke: bool) -> None:
    """Write PNG and SVG atomically; smoke figures get a title and a diagonal watermark first."""
    if smoke:
        figure.text(0.5, 0.5, WATERMARK, rotation=25, ha="center", va="center", fontsize=26, color="red",
                    alpha=0.18, weight="bold", transform=figure.transFigure, zorder=100)
        figure.suptitle(WATERMARK, color="red", weight="bold", y=1.04)
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight",
                       metadata={"Date": None} if fmt == "svg" else None)
        atomic_write_bytes(folder / f"{stem}.{fmt}", buffer.getvalue())
    plt.close(figure)


def trends_figure(data: FigureData, palette: dict[str, Any]) -> tuple[plt.Figure, str] | None:
    """Figure 4: DINOv2 and SCR@0.4 against subject count, one line per model."""
    if not data.table:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in by_label(data.table).items():
        n = [r["n_subjects"] for r in rows]
        reported = rows[0]["source"] == "reported"
        for axis, column in zip(axes, ("dinov2", "scr_0.4")):
            axis.plot(n, [value(r, column) for r in rows], "--" if reported else "-", marker="o",
                      mfc="white" if reported else None, color=palette[rows[0]["model"]], label=name)
            bounds = [interval(r, column) for r in rows]
            if all(bounds):
                axis.fill_between(n, [b[0] for b in bounds], [b[1] for b in bounds], color=palette[rows[0]["model"]],
                                  alpha=0.15, linewidth=0)
    axes[0].set(title="DINOv2 identity similarity (higher is better)", xlabel="subjects in the prompt (N)",
                ylabel="DINOv2 score")
    axes[1].set(title="Subject Collapse Rate @0.4 (lower is better)", xlabel="subjects in the prompt (N)",
                ylabel="SCR@0.4", ylim=(-0.02, 1.02))
    for axis in axes:
        axis.set_xticks(SUBJECT_TICKS)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    return figure, "Figure 4. Mean DINOv2 similarity and SCR@0.4 per subject count. " + style_key(
        data.table, ("dinov2", "scr_0.4"), "Dashed lines, open markers: numbers printed in the paper (no intervals "
        "given).", "Solid lines: reproduced here.", "Shaded bands: 95% paired cluster-bootstrap intervals over "
        "prompts.")


def radar_figure(data: FigureData, palette: dict[str, Any]) -> tuple[plt.Figure, str] | None:
    """Figure 5: CLIP-T, CLIP-I, DINO, DINOv2 and 1-SCR at the smallest subject count (2 in the benchmark)."""
    if not data.table:
        return None
    n = min(r["n_subjects"] for r in data.table)
    rows = [r for r in data.table if r["n_subjects"] == n]
    angles = np.linspace(0, 2 * np.pi, len(RADAR_AXES), endpoint=False)
    figure, axis = plt.subplots(figsize=(6.2, 6.2), subplot_kw={"projection": "polar"})
    missing: dict[str, list[str]] = {}
    for row in sorted(rows, key=label):
        values = [value(row, m.column) if m.higher_is_better else 1 - value(row, m.column) for m in RADAR]
        gaps = [name for (_, name), v in zip(RADAR_AXES, values) if math.isnan(v)]
        if gaps:
            missing[label(row)] = gaps
        closed_angles, closed = np.append(angles, angles[0]), values + values[:1]
        color = palette[row["model"]]
        reported = row["source"] == "reported"
        # NaN breaks the outline: a missing metric shows as a gap, never as an invented point.
        axis.plot(closed_angles, closed, "--" if reported else "-", marker="o", mfc="white" if reported else None,
                  color=color, label=label(row))
        for angle, metric in zip(angles, RADAR):
            bounds = interval(row, metric.column)
            if bounds:
                low, high = bounds if metric.higher_is_better else (1 - bounds[1], 1 - bounds[0])
                axis.plot([angle, angle], [low, high], color=color, linewidth=3, alpha=0.35)
    axis.set_xticks(angles, [name for _, name in RADAR_AXES])
    axis.set_ylim(0, 1)
    axis.set_rlabel_position(36)  # between the first two spokes, clear of the data
    axis.set_title(f"All metrics at N = {n} (raw values, outward is better)", pad=22)
    axis.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.35, 1.12))
    caption = (f"Figure 5. Every metric at N = {n} on one 0-1 scale (raw cosines; SCR shown as 1 \u2212 SCR@0.4 so "
               "that outward is better for every axis). " + style_key(
                   rows, [m.column for m in RADAR], "Dashed outlines, open markers: numbers printed in the paper.",
                   "Solid outlines: reproduced here.", "Thick radial strokes: 95% bootstrap intervals."))
    if missing:
        caption += " Missing values are left out, not invented; the outline breaks there: " + "; ".join(
            f"{name} has no {', '.join(gaps)}" for name, gaps in missing.items()) + "."
        if any(r["source"] == "reported" for r in rows):
            caption += " (The paper's Table 1 prints no DINO v1 column.)"
    return figure, caption


def illusion_figure(data: FigureData, palette: dict[str, Any]) -> tuple[plt.Figure, str] | None:
    """Figure 1 style: CLIP-I against DINOv2 as N grows; arrows point from fewer to more subjects."""
    if not data.table:
        return None
    figure, axis = plt.subplots(figsize=(7, 5.2))
    for name, rows in by_label(data.table).items():
        color = palette[rows[0]["model"]]
        reported = rows[0]["source"] == "reported"
        x, y = [value(r, "dinov2") for r in rows], [value(r, "clip_i") for r in rows]
        axis.scatter(x, y, color=color, facecolor="white" if reported else color, zorder=3, label=name)
        for a, b in zip(range(len(rows)), range(1, len(rows))):
            axis.annotate("", xy=(x[b], y[b]), xytext=(x[a], y[a]),
                          arrowprops={"arrowstyle": "->", "color": color, "linestyle": "--" if reported else "-"})
        for index, (row, xi, yi) in enumerate(zip(rows, x, y)):
            if index in (0, len(rows) - 1):  # end points only: the middle counts crowd together
                last = index == len(rows) - 1
                # Both labels right of their point: the last count sits leftmost (lowest DINOv2), where a label
                # to its left ran over the y axis.
                axis.annotate(f"N={row['n_subjects']}", (xi, yi), textcoords="offset points",
                              xytext=(5, -12) if last else (5, 3), ha="left", fontsize=8, color=color)
            bx, by = interval(row, "dinov2"), interval(row, "clip_i")
            if bx and by:
                axis.plot(bx, [yi, yi], color=color, alpha=0.35, linewidth=2)
                axis.plot([xi, xi], by, color=color, alpha=0.35, linewidth=2)
    axis.margins(x=0.12)  # room for the end labels inside the axes
    axis.set(xlabel="DINOv2 score (identity)", ylabel="CLIP-I score",
             title="The illusion: CLIP-I stays high while DINOv2 falls as N grows")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return figure, ("Figure 1-style view. Each model's CLIP-I against its DINOv2 score at N = 2, 4, ... 10, arrows "
                    "from fewer to more subjects (the first and last count are labelled; the others follow in order). "
                    "A metric blind to identity would keep a model high on the y axis while it slides left. "
                    + style_key(data.table, ("dinov2", "clip_i"), "Open markers and dashed arrows: paper numbers.",
                                "Filled markers and solid arrows: reproduced here.", "Strokes: 95% intervals."))


def sweep_figure(data: FigureData, palette: dict[str, Any]) -> tuple[plt.Figure, str] | None:
    """SCR against the threshold tau (0.2..0.8), one panel per subject count, intervals shaded."""
    if not data.sweep:
        return None
    counts = sorted({row["n_subjects"] for row in data.sweep})
    figure, axes = plt.subplots(1, len(counts), figsize=(2.9 * len(counts), 3.4), sharey=True, squeeze=False)
    reported = [r for r in data.table if r["source"] == "reported"]
    for axis, n in zip(axes[0], counts):
        for model in sorted({row["model"] for row in data.sweep}):
            points = sorted((r for r in data.sweep if r["model"] == model and r["n_subjects"] == n),
                            key=lambda r: r["tau"])
            if not points:
                continue
            taus = [p["tau"] for p in points]
            axis.plot(taus, [p["scr"] for p in points], color=palette[model], label=label(
                {"model": model, "source": "reproduced", "backbones": points[0].get("backbones"),
                 "kind": next((r["kind"] for r in data.table if r["model"] == model), None)}))
            if all(p.get("scr_lo") is not None for p in points):
                axis.fill_between(taus, [p["scr_lo"] for p in points], [p["scr_hi"] for p in points],
                                  color=palette[model], alpha=0.15, linewidth=0)
        for row in reported:
            if row["n_subjects"] == n and row.get("scr_0.4") is not None:
                axis.plot([0.4], [row["scr_0.4"]], marker="D", mfc="white", linestyle="none",
                          color=palette[row["model"]], label=label(row))
        for tau in (0.4, 0.5, 0.6):
            axis.axvline(tau, color="grey", linewidth=0.6, linestyle=":")
        axis.set(title=f"N = {n}", xlabel="threshold \u03c4", xlim=(0.18, 0.82), ylim=(-0.02, 1.02))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("SCR@\u03c4 (fraction of subjects collapsed)")
    handles, names = axes[0][-1].get_legend_handles_labels()
    figure.legend(handles, names, fontsize=8, loc="upper center", ncol=min(4, max(1, len(names))),
                  bbox_to_anchor=(0.5, 0.0))  # below the figure, clear of the axis labels
    printed = [r for r in reported if r["n_subjects"] in counts and r.get("scr_0.4") is not None]
    return figure, ("SCR as the collapse threshold \u03c4 moves from 0.2 to 0.8 (dotted lines: the paper's 0.4, 0.5, "
                    "0.6). A subject counts as collapsed when its DINOv2 cosine is below \u03c4, so every curve rises "
                    "with \u03c4. " + style_key(
                        data.sweep + printed, ("scr",),  # sweep rows carry no source: all reproduced
                        "Diamonds: SCR@0.4 printed in the paper (it reports no other \u03c4).",
                        "Curves: reproduced here.", "Shaded: 95% intervals."))


def heatmap_figure(data: FigureData, palette: dict[str, Any]) -> tuple[plt.Figure, str] | None:
    """SCR@0.4 per model x scene x subject count, one panel per model."""
    if not data.scenes:
        return None
    models = sorted({r["model"] for r in data.scenes})
    scenes = sorted({r["scene"] for r in data.scenes}, key=lambda s: (s not in ("neutral", "occlusion",
                                                                                  "interaction"), s))
    counts = sorted({r["n_subjects"] for r in data.scenes})
    columns = min(3, len(models))
    rows_of_panels = math.ceil(len(models) / columns)
    figure, axes = plt.subplots(rows_of_panels, columns, figsize=(4.2 * columns, 2.3 * rows_of_panels + 0.6),
                                squeeze=False)
    image = None
    for axis in axes.flat[len(models):]:
        axis.set_visible(False)
    for axis, model in zip(axes.flat, models):
        grid = np.full((len(scenes), len(counts)), np.nan)
        for r in data.scenes:
            if r["model"] == model:
                grid[scenes.index(r["scene"]), counts.index(r["n_subjects"])] = value(r, "scr_0.4")
        image = axis.imshow(grid, vmin=0, vmax=1, cmap="magma_r", aspect="auto")
        for (i, j), cell in np.ndenumerate(grid):
            axis.text(j, i, "n/a" if math.isnan(cell) else f"{100 * cell:.0f}%", ha="center", va="center",
                      fontsize=8, color="white" if cell > 0.55 else "black")
        axis.set_xticks(range(len(counts)), [str(c) for c in counts])
        first_column = list(axes.flat).index(axis) % columns == 0
        axis.set_yticks(range(len(scenes)), scenes if first_column else [])
        axis.set(title=label(next(r for r in data.scenes if r["model"] == model)), xlabel="subjects (N)")
    figure.colorbar(image, ax=axes.ravel().tolist(), label="SCR@0.4", shrink=0.8)
    return figure, ("SCR@0.4 split by scene type (neutral side by side, occlusion, physical interaction) and subject "
                    "count. Each cell pools 5 prompts x 3 seeds; per-cell intervals are in the per-scene table.")


FIGURES: tuple[tuple[str, str, Callable[[FigureData, dict[str, Any]], tuple[plt.Figure, str] | None]], ...] = (
    ("fig4_trends", "DINOv2 and SCR against subject count", trends_figure),
    ("fig5_radar", "All metrics at two subjects", radar_figure),
    ("fig1_illusion", "CLIP-I against DINOv2: the illusion", illusion_figure),
    ("scr_vs_threshold", "SCR against the threshold", sweep_figure),
    ("per_scene_heatmap", "SCR@0.4 per scene and subject count", heatmap_figure),
)


def figure_sets(results_dir: Path) -> list[FigureData]:
    """Split the report's rows into the leaderboard set (paper + real backbones) and the smoke set; rows scored
    with custom backbones are in neither (the site lists them apart, in a table)."""
    table, sweep, scenes = (load(results_dir, name) for name in ("table1.csv", "plots/scr_sweep.csv", "per_scene.csv"))
    sets = [FigureData([r for r in table if is_result(r)], [r for r in sweep if is_result(r)],
                       [r for r in scenes if is_result(r)], smoke=False)]
    smoke = FigureData([r for r in table if is_smoke(r)], [r for r in sweep if is_smoke(r)],
                       [r for r in scenes if is_smoke(r)], smoke=True)
    if smoke.table or smoke.sweep or smoke.scenes:
        sets.append(smoke)
    return sets


def index_figure(folder: Path, stem: str, title: str, caption: str, smoke: bool) -> dict[str, Any]:
    """Add (or replace) one drawn figure's entry in figures.json: the site shows exactly the figures listed there.

    Another report step that draws a figure into results/figures/ with `save` calls this after
    `draw_figures` (which starts a fresh index), so its figure appears on the site, in the smoke
    section when `smoke`.
    """
    path = Path(folder) / "figures.json"
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    if smoke and not caption.startswith(WATERMARK):
        caption = f"{WATERMARK}. Pipeline check only: these rows were scored with tiny random-weight " \
                  f"backbones. {caption}"
    entry = {"stem": stem, "title": title, "caption": caption, "smoke": smoke, "png": f"{stem}.png",
             "svg": f"{stem}.svg"}
    atomic_write_json(path, [e for e in entries if e.get("stem") != stem] + [entry])
    return entry


def draw_figures(results_dir: Path) -> list[dict[str, Any]]:
    """Draw every figure that has data into results/figures/, drop stale ones, write a fresh figures.json."""
    results_dir = Path(results_dir)
    folder = results_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "figures.json", [])
    index: list[dict[str, Any]] = []
    for data in figure_sets(results_dir):
        palette = colors(data.table + data.sweep + data.scenes)
        for stem, title, draw in FIGURES:
            drawn = draw(data, palette)
            if drawn is None:
                continue
            figure, caption = drawn
            save(figure, folder, data.prefix + stem, data.smoke)
            index.append(index_figure(folder, data.prefix + stem, title, caption, data.smoke))
    keep = {entry[fmt] for entry in index for fmt in ("png", "svg")} | {"figures.json"}
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep and path.suffix in (".png", ".svg", ".json"):
            path.unlink()
    return index
