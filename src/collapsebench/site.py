"""The site stage: plain data in (results/, models/), static HTML out (public/).

Jinja2 with autoescape on, relative links only, no external assets, so the
site works from file:// and under a GitHub Pages sub-path.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .errors import BenchError
from .io import atomic_write_text, read_csv

def environment(templates: Path) -> Environment:
    env = Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda value, digits=3: "" if value in ("", None) else f"{float(value):.{digits}f}"
    env.filters["pct"] = lambda value: "" if value in ("", None) else f"{100 * float(value):.1f}%"
    return env


def build_site(results: Path, models_dir: Path, out: Path, site_dir: Path) -> None:
    table_path = Path(results) / "table1.csv"
    if not table_path.is_file():
        raise BenchError(f"{table_path}: not found; run `collapsebench report` first")
    rows: list[dict[str, Any]] = read_csv(table_path)
    env = environment(site_dir / "templates")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = Path(results) / "figures"
    if figures.is_dir():
        shutil.copytree(figures, out / "figures", dirs_exist_ok=True)
    context = {
        "reproduced": [r for r in rows if r["source"] == "reproduced" and r["backbones"] != "smoke"],
        "smoke": [r for r in rows if r["source"] == "reproduced" and r["backbones"] == "smoke"],
        "reported": [r for r in rows if r["source"] == "reported"],
        "figures": sorted(p.name for p in figures.glob("*.png")) if figures.is_dir() else [],
    }
    atomic_write_text(out / "index.html", env.get_template("index.html.j2").render(**context))
