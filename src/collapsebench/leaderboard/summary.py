"""The home page's answer table, laid out like the paper's Table 1: models down, subject counts across.

Each cell holds SCR@tau and the DINOv2 score of one model at one N. Only rows
that belong on a leaderboard enter: the paper's printed rows and rows reproduced
here with the pinned backbones (incomplete ones shown, never marked). Smoke,
custom and calibration rows have tables of their own further down.

What a mark means differs by source, and the table says so:
- reproduced rows carry the report's paired-bootstrap ranks: the leader of a
  count is marked, and a lead shared by several models (rank 1 more than
  once in the same pool) is marked as a tie;
- the paper prints no intervals, so its rows cannot be ranked: only the best
  printed value of each count is marked, as a printed value;
- where a model has both a paper row and a reproduced row, the reproduced
  cell shows the difference and whether the printed value lies inside our
  95% interval.

The paper's other printed columns (CLIP-T, CLIP-I) are in the same table,
shown by its "all printed metrics" switch: the paper's Table 1 appears once on
the page, not once here and again below. Paper lines link to their entry's
page; reproduced lines carry their origin (and closed API) labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from collapsebench.core.metric_table import BY_COLUMN, HEADLINE_TAU
from collapsebench.leaderboard.labels import Tag, row_tags
from collapsebench.leaderboard.results_tables import (
    TAUS,
    card_href,
    fmt,
    fmt_interval,
    number,
    rankable,
    slug,
)
from collapsebench.reporting.rows import Row, is_result

PAPER_TAU = f"{HEADLINE_TAU:g}"  # the only threshold the paper prints
DINOV2 = "dinov2"
DETAIL = ("clip_i", "clip_t")  # the paper's other Table 1 columns, behind the summary's switch


@dataclass
class Mark:
    """One value of a summary cell with its verdict (badge) and, for a reproduced twin of a paper row, the gap."""

    text: str
    ci: str = ""
    badge: str = ""
    css: str = ""
    title: str = ""
    delta: str = ""
    delta_css: str = ""


@dataclass
class Line:
    """One row of the summary: one model from one source, its marks per subject count."""

    id: str
    label: str
    source: str  # "paper" or "reproduced"
    href: str | None
    note: str
    marks: dict[int, dict[str, Mark]] = field(default_factory=dict)
    tags: list[Tag] = field(default_factory=list)


@dataclass
class Summary:
    counts: list[int]
    groups: list[list[Line]]  # a model's paper line and reproduced line(s) together
    has_reproduced: bool

    @property
    def badges(self) -> set[str]:
        """The marks this table shows, for its legend (only those that appear are explained)."""
        return {mark.badge for group in self.groups for line in group for marks in line.marks.values()
                for mark in marks.values() if mark.badge}


def summary_rows(table: Sequence[Row]) -> list[Row]:
    """The rows a summary may show: the paper's and reproduced real-backbone rows of kind model."""
    return [r for r in table if r["source"] == "reported"
            or (r["source"] == "reproduced" and is_result(r) and r.get("kind") == "model")]


def family(row: Row, paper_names: dict[str, str]) -> str:
    """The paper model a row belongs with (case-insensitive name or display name match), else its own name."""
    for candidate in (row["model"], row.get("display_name") or ""):
        if str(candidate).casefold() in paper_names:
            return paper_names[str(candidate).casefold()]
    return str(row["model"])


def reproduced_mark(row: Row, column: str, peers: Sequence[Row], percent: bool) -> Mark:
    """A reproduced value with its rank verdict: leader, tied leader, or nothing."""
    value = number(row, column)
    mark = Mark(fmt(value, percent), fmt_interval(row.get(f"{column}_lo"), row.get(f"{column}_hi"), percent))
    if not rankable(row):
        mark.title = str(row.get("rank_note") or row.get("incomplete") or "not ranked")
        return mark
    group = [r for r in peers if rankable(r) and r["n_subjects"] == row["n_subjects"] and r.get("pool") == row.get(
        "pool") and r.get(f"rank_{column}") is not None]
    leaders = [r for r in group if r.get(f"rank_{column}") == 1]
    if len(group) < 2 or row not in leaders:
        return mark
    if len(leaders) > 1:
        others = ", ".join(str(r.get("display_name") or r["model"]) for r in leaders if r is not row)
        mark.badge, mark.css = "=1", "tied"
        mark.title = f"tied for first with {others}: no paired-bootstrap interval separates them"
    else:
        mark.badge, mark.css = "\u2605", "lead"
        mark.title = "first: no model is ahead of it, and every other model has one ahead beyond doubt"
    return mark


def paper_mark(row: Row, column: str, papers: Sequence[Row], percent: bool, lower_is_better: bool) -> Mark:
    """A printed value; the best printed value of its count is marked as printed, never as a rank."""
    value = number(row, column)
    mark = Mark(fmt(value, percent))
    values = [v for v in (number(r, column) for r in papers if r["n_subjects"] == row["n_subjects"]) if v is not None]
    if value is None or len(values) < 2:
        return mark
    best = min(values) if lower_is_better else max(values)
    if value == best:
        tied = values.count(best) > 1
        mark.badge, mark.css = ("\u25c7=" if tied else "\u25c7"), "printed-best"
        mark.title = ("best printed value" + (" (tied as printed)" if tied else "")
                      + " at this count; the paper gives no interval, so it is not a rank")
    return mark


def not_printed(tau: str) -> Mark:
    return Mark("not printed", css="not-printed", title=f"the paper prints SCR only at \u03c4 = {PAPER_TAU}, "
                                                        f"not at {tau}")


def add_delta(mark: Mark, ours: Row, twin: Row | None, column: str, percent: bool) -> None:
    """Our value minus the paper's, and whether the printed value falls inside our 95% interval."""
    paper, value = (number(twin, column) if twin else None), number(ours, column)
    if paper is None or value is None:
        return
    difference = value - paper
    mark.delta = f"\u0394 {100 * difference:+.1f} pts" if percent else f"\u0394 {difference:+.3f}"
    low, high = number(ours, f"{column}_lo"), number(ours, f"{column}_hi")
    if low is None or high is None:
        mark.delta += " vs paper (no interval)"
    elif low <= paper <= high:
        mark.delta, mark.delta_css = mark.delta + " vs paper: inside our interval", "inside"
    else:
        mark.delta, mark.delta_css = mark.delta + " vs paper: outside our interval", "outside"


def line_marks(row: Row, rows: Sequence[Row], twin: Row | None) -> dict[str, Mark]:
    """One cell: SCR at every tau and DINOv2, marked according to the row's source."""
    marks: dict[str, Mark] = {}
    papers = [r for r in rows if r["source"] == "reported"]
    for column in [f"scr_{tau}" for tau in TAUS] + [DINOV2]:
        metric = BY_COLUMN[column]
        if row["source"] == "reported":
            printed = column == DINOV2 or column == f"scr_{PAPER_TAU}"
            marks[column] = (paper_mark(row, column, papers, metric.percent, not metric.higher_is_better) if printed
                             else not_printed(column.removeprefix("scr_")))
        else:
            marks[column] = reproduced_mark(row, column, rows, metric.percent)
            if column in (DINOV2, f"scr_{PAPER_TAU}"):
                add_delta(marks[column], row, twin, column, metric.percent)
    for column in DETAIL:  # never marked: the paper ranks nothing, and we rank only SCR and DINOv2
        metric = BY_COLUMN[column]
        marks[column] = Mark(fmt(number(row, column), metric.percent),
                             fmt_interval(row.get(f"{column}_lo"), row.get(f"{column}_hi"), metric.percent))
    return marks


def line_id(first: Row, paper: bool) -> str:
    """A permalink id: the paper's line by model; ours by model and pool (a model may be run on several pools)."""
    pool = "" if paper else str(first.get("pool") or "")
    return "-".join(["summary", "paper" if paper else "ours", slug(str(first["model"]))]
                    + ([slug(pool)] if pool else []))


def line_note(first: Row) -> str:
    """What a reproduced line says under its name: its pool and, when incomplete, how much is missing."""
    pool = f"pool {first['pool_name']}" if first.get("pool_name") else ""
    return " \u00b7 ".join(filter(None, [pool, str(first.get("incomplete") or "")]))


def make_line(rows_of_model: Sequence[Row], rows: Sequence[Row], twins: dict[int, Row], root: str,
              cards: dict[str, str]) -> Line:
    first = rows_of_model[0]
    paper = first["source"] == "reported"
    label = str(first["model"]) if paper else str(first.get("display_name") or first["model"])
    line = Line(line_id(first, paper), label, "paper" if paper else "reproduced", card_href(first, root, cards),
                "" if paper else line_note(first), tags=row_tags(first))
    for row in rows_of_model:
        line.marks[row["n_subjects"]] = line_marks(row, rows, None if paper else twins.get(row["n_subjects"]))
    return line


def build_summary(table: Sequence[Row], root: str, cards: dict[str, str]) -> Summary:
    """The per-N summary of every leaderboard row: the paper's and ours, side by side per model."""
    rows = summary_rows(table)
    paper_names = {str(r["model"]).casefold(): str(r["model"]) for r in rows if r["source"] == "reported"}
    by_line: dict[tuple[str, str, str], list[Row]] = {}
    for row in sorted(rows, key=lambda r: (r["source"] != "reported", str(r["model"]), r["n_subjects"])):
        by_line.setdefault((family(row, paper_names), row["source"], str(row.get("pool") or "")), []).append(row)
    printed = {name: {r["n_subjects"]: r for r in found} for (name, source, _), found in by_line.items()
               if source == "reported"}
    families: dict[str, list[Line]] = {}
    for (name, _, _), rows_of_model in by_line.items():
        families.setdefault(name, []).append(make_line(rows_of_model, rows, printed.get(name, {}), root, cards))
    groups = [families[name] for name in sorted(families, key=str.casefold)]
    return Summary(sorted({r["n_subjects"] for r in rows}), groups,
                   any(r["source"] == "reproduced" for r in rows))
