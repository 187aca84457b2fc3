"""The home page's first screen: one sentence per subject count saying who holds the most identities, from the data.

A reader comes with one question, "who keeps identities at N?", and should not
have to read a table to get the answer. Each sentence names the leader at
SCR@0.4 (the paper's headline threshold), or the tie, and says where the
number comes from, because the sources do not mean the same thing:

- reproduced rows are ranked by paired-bootstrap intervals, so a leader or a
  tie is a finding ("ranked first", "tied first"); a closed API leader says so;
- the paper prints no intervals, so its best value is only the best *printed*
  value, and when the next one is within a few points the sentence says that
  nothing printed can separate them.

A last sentence says how bad the largest N is across every row shown.
Sentences are plain text; the template escapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collapsebench.leaderboard.labels import is_closed_api
from collapsebench.leaderboard.results_tables import fmt, fmt_interval, number, rankable
from collapsebench.leaderboard.summary import PAPER_TAU, summary_rows
from collapsebench.reporting.rows import Row

COLUMN = f"scr_{PAPER_TAU}"
CLOSE_POINTS = 3.0  # best two printed SCR values closer than this: a gap no printed interval backs


@dataclass(frozen=True)
class Sentence:
    """One line of the answer: the subject count it is about (None for the closing line) and its text parts."""

    n: int | None
    parts: tuple[str, ...]


def name_of(row: Row) -> str:
    return str(row.get("display_name") or row["model"]) if row["source"] == "reproduced" else str(row["model"])


def joined(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def paper_part(rows: Sequence[Row]) -> str | None:
    """The best printed SCR at one count, and the runner-up when no printed interval could separate them."""
    printed = sorted((r for r in rows if r["source"] == "reported" and number(r, COLUMN) is not None),
                     key=lambda r: (number(r, COLUMN), name_of(r)))
    if not printed:
        return None
    best = printed[0]
    text = f"{name_of(best)} {fmt(number(best, COLUMN), True)}"
    if len(printed) == 1:
        return text + " (paper, as printed)"
    second = printed[1]
    gap = 100 * (number(second, COLUMN) - number(best, COLUMN))
    if gap < CLOSE_POINTS:
        return (text + f" \u2248 {name_of(second)} {fmt(number(second, COLUMN), True)} "
                       "(paper, as printed; too close to call)")
    return text + f", then {name_of(second)} {fmt(number(second, COLUMN), True)} (paper, as printed)"


def reproduced_part(rows: Sequence[Row]) -> str | None:
    """The ranked leader(s) at one count among rows that may be ranked, with interval and source label."""
    ranked = [r for r in rows if rankable(r) and r.get(f"rank_{COLUMN}") is not None]
    if len(ranked) < 2:
        return None
    by_pool: dict[str, list[Row]] = {}
    for row in ranked:
        by_pool.setdefault(str(row.get("pool_name") or row.get("pool") or ""), []).append(row)
    texts = []
    for pool, group in sorted(by_pool.items()):
        leaders = sorted((r for r in group if r.get(f"rank_{COLUMN}") == 1), key=name_of)
        if not leaders or len(group) < 2:
            continue
        source = "closed API: not reproducible, dated" if all(is_closed_api(r) for r in leaders) else "reproduced"
        where = f", pool {pool}" if len(by_pool) > 1 and pool else ""
        if len(leaders) == 1:
            row = leaders[0]
            interval = fmt_interval(row.get(f"{COLUMN}_lo"), row.get(f"{COLUMN}_hi"), True)
            texts.append(f"{name_of(row)} {fmt(number(row, COLUMN), True)} {interval} ranked first ({source}{where})")
        else:
            texts.append(f"{joined([name_of(r) for r in leaders])} tied first ({source}{where})")
    return "; ".join(texts) or None


def worst_part(rows: Sequence[Row], n: int) -> Sentence | None:
    """How bad the largest count is: the range of SCR over every row shown there."""
    values = sorted((number(r, COLUMN), name_of(r)) for r in rows if number(r, COLUMN) is not None)
    if len(values) < 2:
        return None
    low, high = values[0][0], values[-1][0]
    text = f"At N = {n} every model shown loses {fmt(low, True)} to {fmt(high, True)} of the requested identities."
    return Sentence(None, (text,))


def answer(table: Sequence[Row]) -> list[Sentence]:
    """The sentences of the first screen: one per subject count of the summary, then the largest count's range."""
    rows = summary_rows(table)
    counts = sorted({r["n_subjects"] for r in rows})
    sentences = []
    for n in counts:
        at_n = [r for r in rows if r["n_subjects"] == n]
        parts = tuple(part for part in (reproduced_part(at_n), paper_part(at_n)) if part)
        if parts:
            sentences.append(Sentence(n, parts))
    last = worst_part([r for r in rows if r["n_subjects"] == counts[-1]], counts[-1]) if counts else None
    return sentences + ([last] if last else [])
