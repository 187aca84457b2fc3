"""Where a reproduced row came from, and whether its model is a closed API: the labels every page puts on a row.

A number on the leaderboard is only as good as the road it took: images our
GPU workflow made and scored, images the authors submitted that our workflow
re-scored, rows this checkout made itself (the calibration models of a laptop
run), or a results folder that appeared with no provenance at all. The report
writes that road in table1.csv's `origin` column; a table without the column
(older reports) is read as `local`, and any value this site does not know is
read as `unverified`, which is never ranked.

A closed API model cannot be re-run by anyone at a later date with the same
result, so its rows are ranked with the others but carry that label beside
their rank, wherever they show.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapsebench.reporting.rows import Row

ORIGINS = {
    "workflow": "scored by our GPU workflow",
    "submitted": "submitted images, re-scored by our workflow",
    "local": "made by this checkout's own run",
    "unverified": "present without provenance: not ranked",
}
SHORT = {"workflow": "our GPU run", "submitted": "submitted, re-scored", "local": "local run",
         "unverified": "no provenance"}
DEFAULT_ORIGIN = "local"  # reports written before the column existed
UNVERIFIED = "unverified"
CLOSED_API = "closed-api"
CLOSED_API_LABEL = "closed API: not reproducible, dated"


@dataclass(frozen=True)
class Tag:
    """A short label next to a row's name: its text, a CSS class, the full sentence, and where it is defined
    (relative to the site root: the template prefixes the page's root)."""

    text: str
    css: str
    title: str
    href: str


def origin(row: Row) -> str:
    """The row's origin: the report's value, `local` when the column is absent, `unverified` when unknown."""
    value = row.get("origin")
    if value is None or value == "":
        return DEFAULT_ORIGIN
    return value if value in ORIGINS else UNVERIFIED


def is_verified(row: Row) -> bool:
    """Whether a reproduced row has a provenance the site may rank."""
    return origin(row) != UNVERIFIED


def is_closed_api(row: Row) -> bool:
    return row.get("access") == CLOSED_API


def row_tags(row: Row) -> list[Tag]:
    """The labels of a reproduced row (origin, closed API), each linked to its definition in the glossary."""
    if row.get("source") != "reproduced":
        return []
    found = origin(row)
    tags = [Tag(SHORT[found], f"origin origin-{found}", ORIGINS[found], "index.html#g-origin")]
    if is_closed_api(row):
        tags.append(Tag(CLOSED_API_LABEL, "api", CLOSED_API_LABEL, "index.html#g-closed-api"))
    return tags
