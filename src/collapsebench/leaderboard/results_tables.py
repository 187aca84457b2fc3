"""Table 1 as the site shows it: rows grouped by subject count, SCR first, ranks only where a rank means something.

Every table is plain data for one Jinja macro (all text escaped there). Rows
are grouped by subject count in their own `<tbody>`, so sorting a column
reorders models within one N and never mixes counts. The model name comes
first (a sticky column on a phone), SCR@tau right after it, then the other
metrics in the metric table's order; a column no row fills is left out.
Ranks are shown only in tables of rows that may be ranked (scored with the
pinned backbones, complete, with a known provenance); smoke, custom,
incomplete and unverified rows get no rank cell at all, wherever they appear.

A table shows the paper's columns (SCR, DINOv2, CLIP-I, CLIP-T), the ranks and
the refusal rate by default and keeps the others (DINO, the face and
instance-level columns, images, pool) behind "all columns", so it fits a
laptop screen. Every metric header says which way is better and links to its
definition on the Metrics page (a tap target, not a hover tooltip).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from collapsebench.benchmark.suite import SCENES
from collapsebench.core.manifest import SUBMITTED_LABEL
from collapsebench.core.metric_table import BY_COLUMN, METRICS, THRESHOLDS
from collapsebench.leaderboard.labels import (
    CLOSED_API_LABEL,
    Tag,
    is_closed_api,
    is_verified,
    row_tags,
)
from collapsebench.reporting.rows import Row, is_custom, is_result, is_smoke

TAUS = tuple(f"{t:g}" for t in THRESHOLDS)
SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
EMPTY = "\u2014"
SHOWN_BY_DEFAULT = frozenset({"clip_t", "clip_i", "dinov2", "refusal_rate", *(f"scr_{tau}" for tau in TAUS)})
REFUSAL = "refusal_rate"  # written by the report for closed API models: jobs the provider answered without an image
REFUSAL_TEXT = ("share of the benchmark's jobs the provider answered without an image (over its reference limit, "
                "content policy, no image): a refusal, never counted as a collapse; lower is better")


def slug(name: str) -> str:
    """A file name or id part for a model: the name itself when it is safe, else a hash of it."""
    if SAFE_COMPONENT.match(name) and ".." not in name:
        return name
    return "m-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]


def tau_css(tau: str) -> str:
    """The classes that show an element only while SCR threshold `tau` is selected (see the tau_switch macro)."""
    return f"tau tau-{tau.replace('.', '')}"


def fmt(value: float | None, percent: bool) -> str:
    if value is None:
        return EMPTY
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def fmt_interval(low: float | None, high: float | None, percent: bool) -> str:
    if low is None or high is None:
        return ""
    return f"[{100 * low:.1f}, {100 * high:.1f}]" if percent else f"[{low:.2f}, {high:.2f}]"


def number(row: Row, key: str) -> float | None:
    value = row.get(key)
    return value if isinstance(value, float) else None


def cell(text: str, sort: str = "", css: str = "", title: str = "", href: str | None = None, ci: str = "",
         header: bool = False, anchor: str | None = None, tags: Sequence[Tag] = ()) -> dict[str, Any]:
    """One table cell. `sort` is what the column sorter compares ('' = empty, sorts last and lets a column be
    dropped); `header` makes it the row's `<th scope="row">`; `anchor` adds a permalink to that row id; `tags` are
    labels shown after the text (origin, closed API)."""
    return {"text": text, "sort": sort, "css": css, "title": title, "href": href, "ci": ci, "header": header,
            "anchor": anchor, "tags": list(tags)}


@dataclass(frozen=True)
class Spec:
    """One column: its header and how a row fills its cell. `keep` columns stay even when every cell is empty."""

    key: str
    label: str
    css: str
    title: str
    fill: Callable[[Row], dict[str, Any]]
    keep: bool = False
    tau: str | None = None  # shown only while this SCR threshold is selected
    arrow: str = ""  # which way is better: "\u2191" higher, "\u2193" lower
    definition: str | None = None  # its anchor on the Metrics page
    extra: bool = False  # behind "all columns"

    @property
    def header(self) -> dict[str, Any]:
        return {"key": self.key, "label": f"{self.label} {self.arrow}".strip(), "css": self.css, "title": self.title,
                "definition": self.definition, "extra": self.extra}


@dataclass
class Group:
    """Rows of one subject count (or all rows, unlabelled, in a table that is not grouped)."""

    id: str | None
    label: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Table:
    """A table ready for the template: short caption, a longer note above it, header cells, grouped rows."""

    id: str
    caption: str
    note: str
    headers: list[dict[str, Any]]
    groups: list[Group]
    download: str | None = None
    root: str = ""

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for group in self.groups for row in group.rows]

    @property
    def extra_columns(self) -> int:
        """How many columns sit behind "all columns"."""
        return sum(bool(h["extra"]) for h in self.headers)


def rankable(row: Row) -> bool:
    """A row that may carry a rank: reproduced here, scored with the pinned backbones, covering the benchmark, with
    a known origin (a results folder that appeared without provenance is shown, never ranked)."""
    return row.get("source") == "reproduced" and is_result(row) and not row.get("incomplete") and is_verified(row)


def row_label(row: Row, short: bool = False) -> str:
    """The name a table shows: display name (or the short id), with paper / submitted / incomplete labels."""
    name = row["model"]
    if row["source"] == "reported":
        return f"{name} (paper)"
    text = name if short else row.get("display_name") or name
    if row.get("generated_by") == "authors":
        text += f" ({SUBMITTED_LABEL})"
    if row.get("incomplete"):
        text += f" ({row['incomplete']}; not ranked)"
    return text


def card_href(row: Row, root: str, cards: dict[str, str]) -> str | None:
    """The row's model page: its own for a reproduced row, its entry's for a paper row (cards maps both)."""
    name = row["model"]
    key = name if row["source"] == "reproduced" else f"paper:{str(name).casefold()}"
    return f"{root}models/{cards[key]}.html" if key in cards else None


def definition(root: str, column: str) -> str:
    """Where a column is defined: its entry on the Metrics page."""
    return f"{root}metrics.html#col-{column}"


def refusal_spec(root: str) -> Spec:
    """The refusal rate of a closed API model (a column the report writes only where refusals can happen)."""
    css = "num"

    def fill(row: Row) -> dict[str, Any]:
        value = number(row, REFUSAL)
        return cell(fmt(value, True), "" if value is None else f"{value:.6f}", css)

    return Spec(REFUSAL, "refused", css, REFUSAL_TEXT, fill, arrow="\u2193", definition=definition(root, REFUSAL))


def metric_spec(metric: Any, root: str = "") -> Spec:
    tau = f"{metric.tau:g}" if metric.tau is not None and f"{metric.tau:g}" in TAUS else None  # not Face-SCR's
    css = "num" + (f" {tau_css(tau)}" if tau else "")

    def fill(row: Row) -> dict[str, Any]:
        value = number(row, metric.column)
        return cell(fmt(value, metric.percent), "" if value is None else f"{value:.6f}", css,
                    "" if value is not None else "not reported / not computed",
                    ci=fmt_interval(row.get(f"{metric.column}_lo"), row.get(f"{metric.column}_hi"), metric.percent))

    return Spec(metric.column, metric.label, css, metric.description, fill, tau=tau,
                arrow="\u2191" if metric.higher_is_better else "\u2193", definition=definition(root, metric.column),
                extra=metric.column not in SHOWN_BY_DEFAULT)


def rank_spec(tau: str, peers: Sequence[Row], root: str = "") -> Spec:
    """SCR@tau rank as a tie group; '=1' marks a rank shared with another model of the same group; a closed API
    model's rank carries that label beside it."""
    key, css = f"rank_scr_{tau}", f"num {tau_css(tau)}"

    def fill(row: Row) -> dict[str, Any]:
        rank = row.get(key) if rankable(row) else None
        if rank is None:
            return cell("", css=css, title=str(row.get("rank_note") or "not ranked"))
        group = (row["kind"], row["backbones"], row.get("pool"), row["n_subjects"], rank)
        shared = sum((r["kind"], r["backbones"], r.get("pool"), r["n_subjects"], r.get(key)) == group
                     for r in peers if rankable(r)) > 1
        title = ("shared: the paired-bootstrap intervals of the differences do not separate these models" if shared
                 else f"{int(rank) - 1} model(s) ahead of it beyond doubt (paired bootstrap, 95%)")
        api = [Tag("closed API", "api", CLOSED_API_LABEL, "index.html#g-closed-api")] if is_closed_api(
            row) else []
        return cell(f"{'=' if shared else ''}{int(rank)}", f"{rank:.0f}", css, title, tags=api)

    return Spec(key, f"rank @{tau}", css, f"tie group by SCR@{tau} within the subject count and pool", fill,
                tau=tau, definition=f"{root}metrics.html#uncertainty")


def scene_order(scene: str | None) -> tuple[int, str]:
    """The benchmark's scene order (neutral, occlusion, interaction), unknown scenes after it."""
    return (SCENES.index(scene), "") if scene in SCENES else (len(SCENES), scene or "")


def identity_specs(root: str, cards: dict[str, str], model_column: bool, grouped: bool, scene: bool) -> list[Spec]:
    """Name, subject count (when rows are not grouped by it) and scene columns."""
    specs = []
    if model_column:
        specs.append(Spec("model", "model", "name", "", lambda row: cell(
            row_label(row, short=scene), row_label(row, short=scene).lower(), "name", row["model"],
            card_href(row, root, cards), header=True, tags=row_tags(row)), keep=True))
    if not grouped:
        specs.append(Spec("n_subjects", "N", "num", "subjects per prompt", lambda row: cell(
            str(row["n_subjects"]), str(row["n_subjects"]), "num", header=not model_column), keep=True))
    if scene:
        specs.append(Spec("scene", "scene", "", "scene type", lambda row: cell(
            row.get("scene") or "", row.get("scene") or ""), keep=True))
    return specs


def column_specs(rows: Sequence[Row], root: str, cards: dict[str, str], *, ranked: bool, model_column: bool,
                 grouped: bool, scene: bool, peers: Sequence[Row]) -> list[Spec]:
    """Every candidate column in display order: the row's identity, SCR@tau, its ranks, the other identity metrics
    (DINOv2 first), the CLIP metrics, images, pool."""
    scr = [m for m in METRICS if m.column.startswith("scr_")]
    others = sorted((m for m in METRICS if m not in scr), key=lambda m: m.source.startswith("clip"))  # identity first
    ranks = [rank_spec(tau, peers, root) for tau in TAUS] if ranked and any(rankable(r) for r in rows) else []
    refusals = [] if REFUSAL in BY_COLUMN else [refusal_spec(root)]
    return [*identity_specs(root, cards, model_column, grouped, scene), *(metric_spec(m, root) for m in scr), *ranks,
            *(metric_spec(m, root) for m in others), *refusals,
            Spec("n_images", "images", "num", "images in the cell", lambda row: cell(
                "" if row.get("n_images") is None else str(row["n_images"]),
                "" if row.get("n_images") is None else str(row["n_images"]), "num"), extra=True,
                definition=definition(root, "n_images")),
            Spec("pool", "pool", "", "the subject pool the prompts were cast from", lambda row: cell(
                row.get("pool_name") or "", row.get("pool_name") or "", "", row.get("pool") or ""), extra=True,
                definition=definition(root, "pool"))]


def always_shown(specs: list[Spec], filled: list[tuple[Row, list[dict[str, Any]]]]) -> tuple[
        list[Spec], list[tuple[Row, list[dict[str, Any]]]]]:
    """Drop the tau switch's classes: a table that has SCR at only some thresholds (the paper's: 0.4 only) keeps
    those columns in view whatever threshold is picked, instead of showing an empty table."""
    def plain(css: str) -> str:
        return " ".join(word for word in css.split() if word != "tau" and not word.startswith("tau-"))

    specs = [replace(spec, css=plain(spec.css), tau=None) for spec in specs]
    return specs, [(row, [{**c, "css": plain(c["css"])} for c in cells]) for row, cells in filled]


def row_id(table_id: str, row: Row, model_column: bool) -> str:
    parts = [table_id] + ([slug(row["model"])] if model_column else []) + [f"n{row['n_subjects']}"]
    if row.get("scene"):
        parts.append(slug(str(row["scene"])))
    return "-".join(parts)


def results_table(rows: Sequence[Row], table_id: str, caption: str, note: str, root: str, cards: dict[str, str], *,
                  ranked: bool, scene: bool = False, model_column: bool = True, grouped: bool = True,
                  peers: Sequence[Row] | None = None, download: str | None = None) -> Table:
    """Table 1 (or the per-scene table when `scene`) as the site shows it.

    `ranked` adds rank columns (filled only for rows that may be ranked); `model_column=False` drops the name (a
    model card's own table); `grouped=False` shows N as a column instead of one `<tbody>` per N; `peers` are the
    rows a shared rank is looked up in (default: `rows`).
    """
    specs = column_specs(rows, root, cards, ranked=ranked, model_column=model_column, grouped=grouped, scene=scene,
                         peers=peers or rows)
    order = sorted(rows, key=lambda r: (r["n_subjects"], scene_order(r.get("scene")), r.get("rank_scr_0.4") or 1e9,
                                        str(r.get("display_name") or r["model"])))
    filled = [(row, [spec.fill(row) for spec in specs]) for row in order]
    kept = [i for i, spec in enumerate(specs) if spec.keep or any(cells[i]["sort"] for _, cells in filled)]
    if {specs[i].tau for i in kept if specs[i].tau} not in (set(), set(TAUS)):
        specs, filled = always_shown(specs, filled)
    groups: dict[Any, Group] = {}
    for row, cells in filled:
        key = row["n_subjects"] if grouped else None
        if key not in groups:
            groups[key] = Group(f"{table_id}-n{key}", f"N = {key} subjects") if grouped else Group(None, None)
        rid = row_id(table_id, row, model_column)
        shown = [{**cells[i], "css": f"{cells[i]['css']} extra".strip() if specs[i].extra else cells[i]["css"]}
                 for i in kept]
        first = next((c for c in shown if c["header"]), shown[0])
        first["anchor"] = rid
        groups[key].rows.append({"id": rid, "cells": shown})
    headers = [{**specs[i].header, "css": f"{specs[i].css} extra".strip() if specs[i].extra else specs[i].css}
               for i in kept]
    return Table(table_id, caption, note, headers, list(groups.values()), download, root)


def split(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Leaderboard sections: paper rows, reproduced models, calibration baselines, the smoke pipeline check, and
    rows scored with custom (unverified) backbones."""
    sections: dict[str, list[Row]] = {"reported": [], "reproduced": [], "calibration": [], "smoke": [], "custom": []}
    for row in rows:
        if row.get("source") == "reported":
            sections["reported"].append(row)
        elif is_smoke(row):
            sections["smoke"].append(row)
        elif is_custom(row):
            sections["custom"].append(row)
        elif row.get("kind") == "calibration":
            sections["calibration"].append(row)
        else:
            sections["reproduced"].append(row)
    return sections
