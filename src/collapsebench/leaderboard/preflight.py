"""An entry's last preflight (`results/preflight/<model>.json`), as its model page and pending card show it.

`collapsebench preflight MODEL` runs the entry's real adapter and inference
code on a tiny random-weight twin of its architecture at N=2 and N=10 before
any weights are loaded. For a model nobody has run yet, that is the only
evidence its code works, so the page says when it ran, with which pins and
versions, and what each check found. A record that cannot be read is shown as
such, never as a pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapsebench.leaderboard.provenance import flatten


@dataclass(frozen=True)
class Check:
    n_subjects: str
    check: str
    passed: bool
    detail: str


@dataclass
class Preflight:
    """One preflight record; `problem` is set (and `passed` False) when the file could not be read."""

    date: str = "not recorded"
    passed: bool = False
    reason: str = ""
    pins: list[tuple[str, str]] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    problem: str = ""

    @property
    def status(self) -> str:
        """One line for a pending card."""
        if self.problem:
            return f"preflight record unreadable ({self.problem})"
        return f"preflight {'passed' if self.passed else 'failed'} on {self.date}" + (
            f": {self.reason}" if self.reason and not self.passed else "")


def _pairs(value: Any) -> list[tuple[str, str]]:
    return sorted(flatten(value).items()) if isinstance(value, dict) else []


def read_preflight(results: Path, name: str) -> Preflight | None:
    """The record of `name`, None when it has never been preflighted."""
    path = Path(results) / "preflight" / f"{name}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return Preflight(problem=f"{path.name}: {error}")
    if not isinstance(record, dict) or not isinstance(record.get("passed"), bool):
        return Preflight(problem=f"{path.name}: no boolean 'passed'")
    checks = [Check("all" if c.get("n_subjects") is None else str(c["n_subjects"]), str(c.get("check", "")),
                    c.get("passed") is True,
                    str(c.get("detail", ""))) for c in record.get("checks") or [] if isinstance(c, dict)]
    return Preflight(date=str(record.get("date") or "not recorded"), passed=record["passed"],
                     reason=str(record.get("reason") or ""), pins=_pairs(record.get("pins")),
                     versions=_pairs(record.get("versions")), checks=checks)
