"""Every entry of the leaderboard gets a page: what the pages are, and what each one shows.

An entry is any model a reader can meet on the site: a `models/<name>/` folder
(calibration, a model we run, a closed API, a results submission, a paper-only
row such as PSR), a results submission not imported yet, a model whose rows
are in table1.csv without a folder, or a paper row with no entry at all. Each
gets `models/<slug>.html`, so no name on the site is a dead end: a pending
model's page says what a run needs and how to make its row, a paper row links
to its entry, and a reproduced model's page keeps the full card (provenance,
cost, scoring record, worst images).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import NAME, ModelConfig, load_model_config
from collapsebench.benchmark.registry import model_names, waiting_submissions
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import SUBMITTED_LABEL, Manifest
from collapsebench.leaderboard.downloads import Download
from collapsebench.leaderboard.gallery import FinderPage, Gallery
from collapsebench.leaderboard.labels import ORIGINS, is_closed_api, origin, row_tags
from collapsebench.leaderboard.preflight import read_preflight
from collapsebench.leaderboard.provenance import (
    flatten,
    generation_cost,
    summarize_manifest,
)
from collapsebench.leaderboard.results_tables import (
    SAFE_COMPONENT,
    Table,
    results_table,
    slug,
)
from collapsebench.leaderboard.run_needs import JOBS, run_needs
from collapsebench.leaderboard.settings import GpuAnchor
from collapsebench.reporting.rows import Row, is_custom, is_smoke

PAPER_KEY = "paper:"  # cards[PAPER_KEY + casefolded paper name] is the page a paper row links to
CARD_CAPTIONS = {"smoke": " (smoke backbones)", "custom": " (custom backbones)"}
FENCED_NOTE = "Intervals in brackets (95%, paired bootstrap over prompts)."  # the fence is said once, above it


@dataclass(frozen=True)
class EntryRef:
    """One page of models/: which entry it is, and in one phrase where it stands."""

    name: str
    slug: str
    display_name: str
    kind: str
    status: str  # reproduced | pending | paper only | submitted | waiting submission | no entry
    config: ModelConfig | None
    paper_name: str | None  # the paper's name for it, when the paper prints its rows


def has_files(name: str) -> bool:
    """Whether `name` can be used as a folder name under results/models (never a path that leaves it)."""
    return bool(SAFE_COMPONENT.match(name)) and ".." not in name


def fence_of(rows: Sequence[Row]) -> str:
    """'smoke' or 'custom' when a model's rows may not be read as results, else ''."""
    return "smoke" if any(is_smoke(r) for r in rows) else "custom" if any(is_custom(r) for r in rows) else ""


def status_of(config: ModelConfig | None, has_rows: bool) -> str:
    if has_rows:
        return "reproduced"
    if config is None:
        return "waiting submission"
    if config.kind == "reported":
        return "paper only"
    return "submitted" if config.runner == "submitted" else "pending"


def list_entries(models_dir: Path, submissions_dir: Path | None, reproduced: Sequence[Row],
                 paper_names: Sequence[str]) -> list[EntryRef]:
    """Every page of models/, in name order: model folders, reproduced models without one, waiting results
    submissions, and paper rows that match no entry (by name or display name, ignoring case)."""
    configs = {name: load_model_config(models_dir, name) for name in model_names(models_dir)}
    shown = {str(r["model"]): str(r.get("display_name") or r["model"]) for r in reproduced}
    waiting = waiting_submissions(submissions_dir, models_dir) if submissions_dir else []
    names = sorted(set(configs) | set(shown) | set(waiting))
    papers = {name.casefold(): name for name in paper_names}
    refs = []
    for name in names:
        config = configs.get(name)
        display = config.display_name if config else shown.get(name, name)
        paper = next((papers[c.casefold()] for c in (name, display) if c.casefold() in papers), None)
        kind = config.kind if config else next((str(r.get("kind") or "model") for r in reproduced
                                                if r["model"] == name), "model")
        refs.append(EntryRef(name, slug(name), display, kind, status_of(config, name in shown), config, paper))
    matched = {ref.paper_name.casefold() for ref in refs if ref.paper_name}
    for key, name in sorted(papers.items()):
        if key not in matched:
            refs.append(EntryRef(name, slug(f"paper-{name}"), name, "reported", "no entry", None, name))
    return refs


def page_keys(refs: Sequence[EntryRef]) -> dict[str, str]:
    """What links resolve through: entry name -> slug, and PAPER_KEY + paper name -> the slug of its entry."""
    keys = {ref.name: ref.slug for ref in refs if ref.status != "no entry"}
    keys.update({PAPER_KEY + ref.paper_name.casefold(): ref.slug for ref in refs if ref.paper_name})
    return keys


def read_scoring(folder: Path) -> dict[str, Any] | None:
    if not (folder / "scoring.json").is_file():
        return None
    try:
        return json.loads((folder / "scoring.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BenchError(f"{folder / 'scoring.json'}: not valid JSON ({error})") from error


@dataclass(frozen=True)
class PageInputs:
    """What every entry page is built from besides its own rows."""

    results: Path
    repo_root: Path
    anchors: tuple[GpuAnchor, ...]
    cards: dict[str, str]
    gallery: Gallery
    finder: Sequence[FinderPage]
    table_href: str | None
    paper_href: str | None


def paper_table(ref: EntryRef, papers: Sequence[Row], inputs: PageInputs) -> Table | None:
    own = [r for r in papers if ref.paper_name and str(r["model"]).casefold() == ref.paper_name.casefold()]
    if not own:
        return None
    return results_table(own, "t-paper", f"The paper's Table 1 rows for {ref.paper_name}",
                         "As printed: no intervals, SCR at \u03c4 = 0.4 only, never ranked.", "../", inputs.cards,
                         ranked=False, model_column=False, grouped=False, download=inputs.paper_href)


def own_table(ref: EntryRef, rows: Sequence[Row], peers: Sequence[Row], inputs: PageInputs) -> Table | None:
    if not rows:
        return None
    fence = fence_of(rows)
    incomplete = rows[0].get("incomplete") or ""
    verified = origin(rows[0]) != "unverified"
    note = FENCED_NOTE if fence else (
        f"{incomplete}: not ranked." if incomplete else
        f"{ORIGINS['unverified']}." if not verified else
        "95% paired-bootstrap intervals in brackets; rank = tie group among all models at that N and pool.")
    return results_table(rows, "card", "This model's Table 1 rows" + CARD_CAPTIONS.get(fence, ""), note, "../",
                         inputs.cards, ranked=not fence and not incomplete and verified, model_column=False,
                         grouped=False, peers=peers, download=inputs.table_href)


def entry_page(ref: EntryRef, rows: Sequence[Row], peers: Sequence[Row], papers: Sequence[Row],
               downloads: list[Download], inputs: PageInputs) -> dict[str, Any]:
    """Everything one model page shows (see the module docstring)."""
    config, records, scoring = ref.config, [], None
    if has_files(ref.name) and NAME.match(ref.name):
        folder = Path(inputs.results) / "models" / ref.name
        records = Manifest(folder).records() if folder.is_dir() else []
        scoring = read_scoring(folder) if folder.is_dir() else None
    raw = dict(config.raw) if config else {}
    shown = ("name", "display_name", "kind", "description", "authors", "license", "adapter", "runner", "settings")
    fence = fence_of(rows)
    worst, scored = inputs.gallery.worst(ref.name)
    needs = run_needs(config, inputs.repo_root, inputs.anchors) if config else None
    images = sum(int(r.get("n_images") or 0) for r in rows)
    api_rows = any(is_closed_api(r) for r in rows) or raw.get("runner") == "api"
    return {
        "name": ref.name, "slug": ref.slug, "display_name": ref.display_name, "kind": ref.kind, "status": ref.status,
        "config": config, "raw": raw, "fence": fence, "paper_name": ref.paper_name,
        "paper_anchor": f"summary-paper-{slug(ref.paper_name)}" if ref.paper_name else None,
        "submitted": SUBMITTED_LABEL if rows and rows[0].get("generated_by") == "authors" else "",
        "incomplete": rows[0].get("incomplete") or "" if rows else "",
        "tags": row_tags(rows[0]) if rows else [], "closed_api": api_rows,
        "other_fields": list(flatten({k: v for k, v in raw.items() if k not in shown}).items()),
        "provenance": summarize_manifest(records) if records else None, "cost": generation_cost(records),
        "scoring": sorted(flatten(scoring).items()) if scoring else None,
        "scoring_profile": (scoring or {}).get("profile"), "downloads": downloads, "worst": worst,
        "worst_scored": scored, "table": own_table(ref, rows, peers, inputs),
        "paper_table": paper_table(ref, papers, inputs), "needs": needs,
        "preflight": read_preflight(inputs.results, ref.name) if has_files(ref.name) else None,
        "row_cost": needs.api.cost_of(images) if needs and needs.api and images else None, "images": images,
        "jobs": JOBS, "finder": [page for page in inputs.finder if page.model.name == ref.name],
    }
