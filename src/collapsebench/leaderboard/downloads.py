"""The data behind every page, published under `public/data/` as the report wrote it (byte for byte).

A reader who wants to re-plot, re-rank or check a number needs the files, not
a screenshot of a table. Every table of results/ (its CSV, JSON and Markdown
files at any depth: Table 1, per scene, coverage, metrics, the plot data, the
paper's transcribed table, the validity study) and each model's raw scores,
manifest and scoring record are copied unchanged, so a download is exactly
what the site was built from. Figures are published on their own page, model
folders only through the files above.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

TABLE_SUFFIXES = frozenset({".csv", ".json", ".md"})
NOT_TABLES = frozenset({"models", "figures"})  # top-level folders of results/ published otherwise
MODEL_FILES = ("scores.csv", "manifest.jsonl", "scoring.json", "refusals.jsonl")  # refusals: closed API rows


@dataclass(frozen=True)
class Download:
    """One published file: its name, path relative to the site root, and size."""

    name: str
    href: str
    size: int

    @property
    def size_text(self) -> str:
        return f"{self.size / 1e6:.1f} MB" if self.size >= 1e6 else f"{max(1, round(self.size / 1e3))} kB"


def publish(source: Path, out: Path, href: str) -> Download:
    (out / href).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out / href)
    return Download(Path(href).name, href, source.stat().st_size)


def publish_tables(results: Path, out: Path) -> dict[str, Download]:
    """Copy results/ tables to data/ (same relative paths); keyed by their path inside results/."""
    results = Path(results)
    found = sorted(path.relative_to(results) for path in results.rglob("*")
                   if path.suffix in TABLE_SUFFIXES and path.is_file()
                   and path.relative_to(results).parts[0] not in NOT_TABLES)
    return {path.as_posix(): publish(results / path, out, f"data/{path.as_posix()}") for path in found}


def publish_model_files(folder: Path, out: Path, slug: str) -> list[Download]:
    """Copy one model's scores, manifest and scoring record to data/models/<slug>/ (those that exist)."""
    return [publish(folder / name, out, f"data/models/{slug}/{name}") for name in MODEL_FILES
            if (folder / name).is_file()]
