"""What a preflight found: the checks, one table, and results/preflight/<model>.json (a stable shape the site
reads: {model, date, passed, reason, pins, versions, wall_s, checks: [{n_subjects, check, passed, detail}]})."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from collapsebench.core.io import atomic_write_json

PACKAGES = ("collapsebench", "torch", "torchvision", "diffusers", "transformers", "peft", "accelerate",
            "tokenizers", "huggingface_hub")


@dataclass
class Check:
    n_subjects: int | None  # None: a check of the whole run
    check: str
    passed: bool
    detail: str = ""


@dataclass
class PreflightResult:
    model: str
    pins: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    wall_s: float = 0.0
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    versions: dict[str, str | None] = field(default_factory=lambda: versions())

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        if not self.checks:
            return "no check ran"
        if not failed:
            return f"all {len(self.checks)} checks passed"
        return "; ".join(f"{c.check}{f' (N={c.n_subjects})' if c.n_subjects else ''}: {c.detail}" for c in failed)

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "date": self.date, "passed": self.passed, "reason": self.reason,
                "pins": self.pins, "versions": self.versions, "wall_s": round(self.wall_s, 2),
                "checks": [asdict(check) for check in self.checks]}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def table(result: PreflightResult, markdown: bool = False) -> str:
    """One table: a row per check, then the verdict (markdown for a GitHub job summary)."""
    return table_from_json(result.as_json(), markdown)


def table_from_json(result: dict[str, Any], markdown: bool = False) -> str:
    """The table of a result as written to results/preflight/<model>.json (also one a container wrote)."""
    rows = [("N", "check", "result", "detail")] + [
        (str(c.get("n_subjects") or "-"), str(c.get("check")), "pass" if c.get("passed") else "FAIL",
         str(c.get("detail", ""))) for c in result.get("checks", [])]
    verdict = (f"preflight {result.get('model')}: {'PASSED' if result.get('passed') else 'FAILED'} in "
               f"{float(result.get('wall_s') or 0):.1f} s")
    if markdown:
        lines = [f"### {verdict}", "", "| " + " | ".join(rows[0]) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows[1:]]
        return "\n".join(lines + ["", f"pins: `{json.dumps(result.get('pins'))}`", ""])
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    return "\n".join([*lines, verdict])


def write(result: PreflightResult, folder: Path) -> Path:
    path = Path(folder) / f"{result.model}.json"
    atomic_write_json(path, result.as_json())
    return path
