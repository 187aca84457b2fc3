"""The site stage: plain data in (results/, models/, the subject pool), static HTML out (public/).

Jinja2 with autoescape on, relative links only, no external assets, and every
file a page shows copied into the output folder, so the site works from
file:// and under a GitHub Pages sub-path; the only absolute links are to the
paper and the repository. JavaScript only sorts, filters and keeps those
choices in the URL: without it every page shows everything, in static order.

Smoke-backbone rows never enter a leaderboard table: they get their own
"pipeline check" sections; rows scored with custom backbones (not verified to
be the pinned checkpoints) are listed apart and drawn in no figure; rows of
incomplete models are labelled. None of these three ever shows a rank, on any
page. The site is built in a staging folder and swapped in at the end, so a
failed build leaves the previous site intact and no stale file survives.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from PIL import Image

from collapsebench.benchmark.model_config import NAME, load_model_config
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.registry import entries, waiting_submissions
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_text, make_temp_folder, replace_folder
from collapsebench.core.manifest import SUBMITTED_LABEL, Manifest
from collapsebench.leaderboard.build_info import (
    PAPER_ARXIV,
    PAPER_TITLE,
    PAPER_URL,
    PAPER_VENUE,
    BuildInfo,
    benchmark_bibtex,
    detect_build,
    paper_bibtex,
)
from collapsebench.leaderboard.downloads import (
    Download,
    publish_model_files,
    publish_tables,
)
from collapsebench.leaderboard.gallery import (
    Gallery,
    GalleryModel,
    build_gallery,
    publish_references,
)
from collapsebench.leaderboard.markdown import render_markdown
from collapsebench.leaderboard.provenance import (
    NOT_RECORDED,
    generation_cost,
    summarize_manifest,
)
from collapsebench.leaderboard.results_tables import (
    SAFE_COMPONENT,
    TAUS,
    results_table,
    slug,
    split,
)
from collapsebench.leaderboard.store import ImageStore
from collapsebench.leaderboard.summary import build_summary
from collapsebench.reporting.rows import Row, is_custom, is_result, is_smoke, load

MARKER = ".collapsebench-site"  # marks a folder this builder made, so only such a folder is ever replaced
PAGES = (("index.html", "Leaderboard"), ("figures.html", "Figures"), ("scenes.html", "Per scene"),
         ("gallery.html", "Gallery"), ("models.html", "Models"), ("metrics.html", "Metrics"),
         ("submit.html", "Submit a model"))
FIGURE_MIN_SHARE = 0.55  # on a phone a figure is never drawn below 55% of its size: it scrolls sideways instead
SECTION_NOTES = {
    "reproduced": "Generated and scored by collapsebench with the pinned backbones; 95% paired-bootstrap "
                  "intervals in brackets.",
    "reported": "The paper's Table 1 as printed: no intervals and only SCR@0.4, so the \u03c4 switch does not "
                "apply here and no row is ranked.",
    "calibration": "Calibration baselines that need no GPU: they bound what the metrics can say. Ranked among "
                   "themselves only.",
    "smoke": "Pipeline check: scored with tiny random-weight backbones. These numbers mean nothing about identity "
             "and are never ranked.",
    "custom": "Scored with checkpoints other than the pinned ones: comparable with each other at most, never with "
              "the leaderboard, and never ranked.",
}
SECTION_CAPTIONS = {"reproduced": "Reproduced here", "reported": "Reported in the paper",
                    "calibration": "Calibration baselines", "smoke": "Pipeline check (smoke backbones)",
                    "custom": "Custom backbones (unverified)"}
RANKED_SECTIONS = frozenset({"reproduced", "calibration"})
CARD_CAPTIONS = {"smoke": " (pipeline check, not a result)", "custom": " (custom backbones, not on the leaderboard)"}


@dataclass(frozen=True)
class SiteInputs:
    """Everything a build reads besides results/: model.yaml files, the pool, CONTRIBUTING.md, the build facts."""

    models_dir: Path
    site_dir: Path
    submissions_dir: Path | None
    pool: dict[str, Subject] | None
    pool_info: dict[str, str]
    contributing: Path | None
    build: BuildInfo


def environment(templates: Path) -> Environment:
    return Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def has_files(name: str) -> bool:
    """Whether `name` can be used as a folder name under results/models (never a path that leaves it)."""
    return bool(SAFE_COMPONENT.match(name)) and ".." not in name


def fence_of(rows: Sequence[Row]) -> str:
    """'smoke' or 'custom' when a model's rows may not be read as results, else ''."""
    return "smoke" if any(is_smoke(r) for r in rows) else "custom" if any(is_custom(r) for r in rows) else ""


def figure_entry(entry: dict[str, Any], folder: Path, out: Path) -> dict[str, Any] | None:
    """Copy one figure (PNG, and SVG when drawn) into the site; None when its PNG is missing."""
    if not (folder / entry["png"]).is_file():
        return None
    (out / "figures").mkdir(parents=True, exist_ok=True)
    with Image.open(folder / entry["png"]) as image:
        width, height = image.size
    entry = {**entry, "width": width, "height": height, "min_width": round(FIGURE_MIN_SHARE * width),
             "alt": entry["title"] + (" \u2014 pipeline check drawn from smoke-backbone rows (random weights), "
                                      "not a result" if entry.get("smoke") else "")}
    for key in ("png", "svg"):
        if entry.get(key) and (folder / entry[key]).is_file():
            shutil.copyfile(folder / entry[key], out / "figures" / entry[key])
        else:
            entry[key] = None
    return entry


def copy_figures(results: Path, out: Path) -> list[dict[str, Any]]:
    """Copy results/figures into the site and return its figures.json entries (only figures that exist)."""
    folder = Path(results) / "figures"
    if not folder.is_dir():
        return []
    index_path = folder / "figures.json"
    entries = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else [
        {"stem": p.stem, "title": p.stem.replace("_", " "), "caption": "", "smoke": p.stem.startswith("smoke_"),
         "png": p.name, "svg": f"{p.stem}.svg"} for p in sorted(folder.glob("*.png"))]
    return [kept for kept in (figure_entry(entry, folder, out) for entry in entries) if kept]


def figure_links(figures: Sequence[dict[str, Any]]) -> dict[str, str]:
    """For each figure kind (stem without `smoke_`), the anchor that exists on figures.html: the leaderboard
    figure when drawn, else its pipeline-check version; the page itself when neither was drawn."""
    stems = {f["stem"] for f in figures}
    kinds = {stem.removeprefix("smoke_") for stem in stems}
    return {kind: f"figures.html#{kind}" if kind in stems else f"figures.html#smoke_{kind}" for kind in kinds}


def incomplete_models(results: Path) -> dict[str, str]:
    """Model -> "incomplete: 224 of 225 images (N=4: 44 of 45)" for every model results/coverage.csv marks
    incomplete. Such a model's rows are shown with that note and never ranked."""
    by_model: dict[str, list[Row]] = {}
    for row in load(results, "coverage.csv"):
        by_model.setdefault(str(row["model"]), []).append(row)
    notes = {}
    for model, rows in by_model.items():
        if any(row.get("complete") != "true" for row in rows):
            done, wanted = sum(int(r["n_images"]) for r in rows), sum(int(r["n_expected"]) for r in rows)
            short = "; ".join(f"N={r['n_subjects']}: {int(r['n_images'])} of {int(r['n_expected'])}"
                              for r in rows if r["n_images"] != r["n_expected"])
            notes[model] = f"incomplete: {done} of {wanted} images ({short})"
    return notes


def remove_stale_builds(out: Path) -> list[Path]:
    """Delete the staging folders (`.public.new-*`, `.public.old-*`) of builds that were killed.

    Only folders this builder made are removed: empty ones (killed before the marker was written) or ones
    holding the marker. Returns what was removed.
    """
    removed = []
    for prefix in (f".{out.name}.new-", f".{out.name}.old-"):
        for folder in out.parent.glob(f"{prefix}*"):
            inner = folder / out.name if (folder / out.name).is_dir() else folder  # .old-* holds the old site
            if folder.is_dir() and (not any(folder.iterdir()) or (inner / MARKER).is_file()):
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def swap_in(staging: Path, out: Path) -> None:
    """Replace `out` with the finished `staging` folder; refuse to delete a folder this builder did not make."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise BenchError(f"{out}: exists and was not made by `collapsebench site`; refusing to replace it")
    replace_folder(staging, out)


def read_scoring(folder: Path) -> dict[str, Any] | None:
    if not (folder / "scoring.json").is_file():
        return None
    try:
        return json.loads((folder / "scoring.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BenchError(f"{folder / 'scoring.json'}: not valid JSON ({error})") from error


def data_href(tables: dict[str, Download], name: str, root: str = "") -> str | None:
    """The published copy of results/<name>, as a link from a page at `root`; None when the report wrote none."""
    return f"{root}{tables[name].href}" if name in tables else None


def model_card(name: str, rows: Sequence[Row], peers: Sequence[Row], results: Path, inputs: SiteInputs,
               cards: dict[str, str], gallery: Gallery, downloads: list[Download],
               table_href: str | None) -> dict[str, Any]:
    """Everything a model card shows: model.yaml, provenance and cost from the manifest, the scoring record, its
    rows (fenced and unranked when smoke, custom or incomplete), its worst images and its downloads."""
    config, records, scoring = None, [], None
    if has_files(name):
        if NAME.match(name) and (Path(inputs.models_dir) / name / "model.yaml").is_file():
            config = load_model_config(inputs.models_dir, name)
        folder = Path(results) / "models" / name
        records = Manifest(folder).records()
        scoring = read_scoring(folder)
    raw = dict(config.raw) if config else {}
    shown = ("name", "display_name", "kind", "description", "authors", "license", "adapter", "runner", "settings")
    fence = fence_of(rows)
    incomplete = rows[0].get("incomplete") or ""
    worst, scored = gallery.worst(name)
    note = SECTION_NOTES.get(fence) or (f"{incomplete}: not ranked." if incomplete else
                                        "95% paired-bootstrap intervals in brackets; rank = tie group among all "
                                        "models at that N and pool.")
    return {
        "name": name, "slug": cards[name], "display_name": rows[0].get("display_name") or name,
        "kind": rows[0].get("kind"), "config": config, "raw": raw, "fence": fence,
        "submitted": SUBMITTED_LABEL if rows[0].get("generated_by") == "authors" else "", "incomplete": incomplete,
        "other_fields": {k: v for k, v in raw.items() if k not in shown},
        "provenance": summarize_manifest(records) if records else None, "cost": generation_cost(records),
        "scoring": scoring, "downloads": downloads, "worst": worst, "worst_scored": scored,
        "table": results_table(rows, "card", "This model's Table 1 rows" + CARD_CAPTIONS.get(fence, ""), note, "../",
                               cards, ranked=not fence and not incomplete,
                               model_column=False, grouped=False, peers=peers, download=table_href),
    }


def annotate(table: list[Row], results: Path, pool_info: dict[str, str]) -> None:
    """Fill what every page needs on each row: the pool's name, kind/backbones defaults, the incomplete note."""
    incomplete = incomplete_models(results)
    for row in table:
        row["pool_name"] = pool_info.get("name") if row.get("pool") and row.get("pool") == pool_info.get("id") \
            else row.get("pool")
        row.setdefault("kind", "reported" if row["source"] == "reported" else "model")
        row.setdefault("backbones", "paper" if row["source"] == "reported" else "unknown")
        if row["source"] == "reproduced":
            row["incomplete"] = incomplete.get(row["model"], "")


def build_site(results: Path, models_dir: Path, out: Path, site_dir: Path, pool: dict[str, Subject] | None = None,
               contributing: Path | None = None, pool_info: dict[str, str] | None = None,
               build: BuildInfo | None = None, submissions_dir: Path | None = None) -> Path:
    """Build the whole site from results/ (+ model.yaml files, the pool and CONTRIBUTING.md when given)."""
    results, out = Path(results), Path(out)
    table = load(results, "table1.csv")
    if not table:
        raise BenchError(f"{results / 'table1.csv'}: not found or empty; run `collapsebench report` first")
    missing = {"model", "n_subjects", "source"} - set(table[0])
    if missing:
        raise BenchError(f"{results / 'table1.csv'}: missing columns {sorted(missing)}")
    inputs = SiteInputs(Path(models_dir), Path(site_dir), submissions_dir, pool, pool_info or {}, contributing,
                        build or detect_build())
    annotate(table, results, inputs.pool_info)
    env = environment(inputs.site_dir / "templates")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out)
    staging = make_temp_folder(out.parent, f".{out.name}.new-")
    try:
        _render(env, results, staging, table, inputs)
        swap_in(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / "index.html"


def pending_models(inputs: SiteInputs, scored: Sequence[str]) -> list[dict[str, str]]:
    """Entries of models/ and submissions/ that have no reproduced rows yet, for the reader to see what is coming:
    a merged model waits for its GPU run, a merged results submission for its import and scoring."""
    pending = [{"name": config.name, "display_name": config.display_name, "kind": config.kind,
                "status": "results submitted, not scored yet" if config.runner == "submitted" else
                "merged; waits for its GPU run (generate, then score)"}
               for config in entries(inputs.models_dir) if config.name not in scored]
    for name in waiting_submissions(inputs.submissions_dir, inputs.models_dir) if inputs.submissions_dir else []:
        pending.append({"name": name, "display_name": name, "kind": "model",
                        "status": "results submitted, not imported yet"})
    return pending


def gallery_models(names: Sequence[str], reproduced: Sequence[Row], cards: dict[str, str],
                   results: Path) -> list[GalleryModel]:
    """Models with images to show (models first, calibration baselines after), each with its fence."""
    rows = {name: [r for r in reproduced if r["model"] == name] for name in names}
    return [GalleryModel(name, cards[name], rows[name][0].get("display_name") or name, fence_of(rows[name]))
            for name in sorted(names, key=lambda n: (rows[n][0].get("kind") == "calibration", n))
            if has_files(name) and (results / "models" / name / "manifest.jsonl").is_file()]


def index_tables(sections: dict[str, list[Row]], cards: dict[str, str],
                 tables: dict[str, Download]) -> dict[str, Any]:
    """The home page's full tables, one per section; ranks only in sections whose rows may be ranked."""
    return {key: results_table(rows, f"t-{key}", SECTION_CAPTIONS[key], SECTION_NOTES[key], "", cards,
                               ranked=key in RANKED_SECTIONS,
                               download=data_href(tables, "reported/paper_table1.csv") if key == "reported"
                               and "reported/paper_table1.csv" in tables else data_href(tables, "table1.csv"))
            for key, rows in sections.items()}


def _render(env: Environment, results: Path, out: Path, table: list[Row], inputs: SiteInputs) -> None:
    (out / MARKER).write_text("made by collapsebench site; replaced on every build\n", encoding="utf-8")
    if (inputs.site_dir / "static").is_dir():
        shutil.copytree(inputs.site_dir / "static", out / "static")
    sections = split(table)
    reproduced = [r for r in table if r["source"] == "reproduced"]
    names = list(dict.fromkeys(r["model"] for r in reproduced))
    cards = {name: slug(name) for name in names}
    scenes = load(results, "per_scene.csv")
    figures = copy_figures(results, out)
    store = ImageStore(out)
    subjects = publish_references(inputs.pool, store)
    models = gallery_models(names, reproduced, cards, results)
    gallery = build_gallery(results, models, subjects, store, inputs.pool_info.get("id"))
    tables = publish_tables(results, out)
    build = inputs.build
    common = {"pages": PAGES, "taus": TAUS, "version": build.version, "pool_info": inputs.pool_info,
              "build": build, "paper": {"title": PAPER_TITLE, "url": PAPER_URL, "arxiv": PAPER_ARXIV,
                                        "venue": PAPER_VENUE}}

    def page(template: str, path: str, **context: Any) -> None:
        html = env.get_template(template).render(root="../" * path.count("/"), current=path, **common, **context)
        atomic_write_text(out / path, html)

    pending = pending_models(inputs, names)
    page("index.html.j2", "index.html", sections=sections, tables=index_tables(sections, cards, tables),
         pending=pending,
         summary=build_summary(table, "", cards), downloads=tables,
         bibtex={"paper": paper_bibtex(), "benchmark": benchmark_bibtex(build)})
    page("figures.html.j2", "figures.html", figures=figures)
    page("scenes.html.j2", "scenes.html",
         real=results_table([r for r in scenes if is_result(r)], "t-scenes", "Per scene type",
                            "Per scene type, with 95% intervals over the cell's 5 prompts (wide: few prompts).", "",
                            cards, ranked=False, scene=True, download=data_href(tables, "per_scene.csv")),
         smoke=results_table([r for r in scenes if is_smoke(r)], "t-scenes-smoke", "Pipeline check per scene",
                             "Pipeline check (smoke backbones, random weights): not results.", "", cards,
                             ranked=False, scene=True, download=data_href(tables, "per_scene.csv")),
         heatmaps=[f for f in figures if f["stem"].endswith("per_scene_heatmap")], has_scenes=bool(scenes))
    pages = gallery.pages()
    page("gallery.html.j2", "gallery.html", gallery=gallery, gallery_pages=pages, subjects=list(subjects.values()),
         models=models)
    counts = list(pages)
    for position, (n, prompts) in enumerate(pages.items()):
        page("gallery_page.html.j2", f"gallery-n{n}.html", n=n, prompts=prompts, counts=counts,
             prev_n=counts[position - 1] if position else None,
             next_n=counts[position + 1] if position + 1 < len(counts) else None)
    model_list = []
    for name in names:
        files = publish_model_files(results / "models" / name, out, cards[name]) if has_files(name) else []
        card = model_card(name, [r for r in reproduced if r["model"] == name], reproduced, results, inputs, cards,
                          gallery, files, data_href(tables, "table1.csv", "../"))
        page("model.html.j2", f"models/{cards[name]}.html", card=card)
        model_list.append(card)
    page("models.html.j2", "models.html", models=model_list, pending=pending)
    page("metrics.html.j2", "metrics.html", scoring=_scoring_summary(model_list), figure_links=figure_links(figures))
    text = Path(inputs.contributing).read_text(encoding="utf-8") if inputs.contributing and Path(
        inputs.contributing).is_file() else None
    page("submit.html.j2", "submit.html", contributing=render_markdown(text, build.repository_file) if text else None,
         contributing_url=build.repository_file("CONTRIBUTING.md"))


def _scoring_summary(cards: Sequence[dict[str, Any]]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Which backbones (and revisions) scored the rows, with how many models used each: for the metrics page."""
    counts: dict[str, Counter[str]] = {}
    for card in cards:
        scoring = card["scoring"] or {}
        for key in ("profile", "clip_max_tokens"):
            if key in scoring:
                counts.setdefault(key, Counter())[str(scoring[key])] += 1
        for group in ("backbones", "resolved_revisions"):
            for name, value in (scoring.get(group) or {}).items():
                counts.setdefault(f"{group}.{name}", Counter())[NOT_RECORDED if value is None else str(value)] += 1
    return [(key, sorted(values.items())) for key, values in counts.items()]
