"""The site stage: plain data in (results/, models/, the subject pool), static HTML out (public/).

Jinja2 with autoescape on, relative links only, no external assets, and every
file a page shows copied into the output folder, so the site works from
file:// and under a GitHub Pages sub-path; the only absolute links are to the
paper and the repository. JavaScript only sorts, filters and keeps those
choices in the URL: without it every page shows everything, in static order.

Smoke-backbone rows never enter a leaderboard table: they get their own
"pipeline check" sections; rows scored with custom backbones (not verified to
be the pinned checkpoints) are listed apart and drawn in no figure; rows of
incomplete models and rows present without provenance are labelled. None of
these ever shows a rank, on any page. Every entry has a page
(leaderboard/entry.py), the home page opens with the answer per N
(leaderboard/answer.py), and the gallery's finder is paged by model and N.
The site is built in a staging folder and swapped in at the end, so a failed
build leaves the previous site intact and no stale file survives.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_text, make_temp_folder, replace_folder
from collapsebench.core.metric_table import METRICS
from collapsebench.leaderboard.answer import answer
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
from collapsebench.leaderboard.entry import (
    EntryRef,
    PageInputs,
    entry_page,
    fence_of,
    has_files,
    list_entries,
    page_keys,
)
from collapsebench.leaderboard.gallery import (
    GalleryModel,
    build_gallery,
    publish_references,
)
from collapsebench.leaderboard.labels import CLOSED_API_LABEL, ORIGINS
from collapsebench.leaderboard.markdown import render_markdown
from collapsebench.leaderboard.preflight import read_preflight
from collapsebench.leaderboard.results_tables import (
    REFUSAL,
    REFUSAL_TEXT,
    TAUS,
    results_table,
    split,
)
from collapsebench.leaderboard.run_needs import api_cost
from collapsebench.leaderboard.settings import SiteSettings
from collapsebench.leaderboard.store import ImageStore
from collapsebench.leaderboard.summary import build_summary
from collapsebench.reporting.rows import Row, is_result, is_smoke, load

MARKER = ".collapsebench-site"  # marks a folder this builder made, so only such a folder is ever replaced
PAGES = (("index.html", "Leaderboard"), ("figures.html", "Figures"), ("scenes.html", "Per scene"),
         ("gallery.html", "Gallery"), ("models.html", "Models"), ("metrics.html", "Metrics"),
         ("submit.html", "Submit a model"))
FIGURE_MIN_SHARE = 0.55  # on a phone a figure is never drawn below 55% of its size: it scrolls sideways instead
SECTION_NOTES = {
    "reproduced": "Generated and scored by collapsebench with the pinned backbones; 95% paired-bootstrap "
                  "intervals in brackets.",
    "calibration": "Calibration baselines that need no GPU: they bound what the metrics can say. Ranked among "
                   "themselves only.",
    "smoke": "Intervals in brackets (95%, paired bootstrap over prompts).",  # the fence is said once, above it
    "custom": "Comparable with each other at most, never with the leaderboard.",
}
SECTION_CAPTIONS = {"reproduced": "Reproduced here", "calibration": "Calibration baselines",
                    "smoke": "Pipeline check (smoke backbones)", "custom": "Custom backbones (unverified)"}
RANKED_SECTIONS = frozenset({"reproduced", "calibration"})
EXTRA_COLUMNS = (  # columns of the tables that are not metrics of the metric table, for the Metrics page
    (REFUSAL, "refused", REFUSAL_TEXT),
    ("n_images", "images", "images scored in the cell (45 per subject count when complete)"),
    ("pool", "pool", "the subject pool the prompts were cast from; rows of different pools are never ranked together"),
)
RESULTS_PATH = re.compile(r"\bresults/([A-Za-z0-9_./-]*[A-Za-z0-9_-])")


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
    settings: SiteSettings


def environment(templates: Path) -> Environment:
    return Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


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


def figure_order(entry: dict[str, Any]) -> tuple[int, int, str]:
    """Leaderboard figures before pipeline checks; numbered figures (fig1, fig4, ...) first, by number."""
    stem = str(entry["stem"]).removeprefix("smoke_")
    number = re.match(r"fig(\d+)", stem)
    return (bool(entry.get("smoke")), int(number.group(1)) if number else 1000, stem)


def link_results_paths(text: str, tables: dict[str, Download], root: str) -> Markup:
    """Escaped `text` in which every `results/<file>` the site publishes links to its copy under data/."""
    parts, last = [], 0
    for match in RESULTS_PATH.finditer(text):
        path = match.group(1).rstrip(".")
        if path in tables:
            parts += [escape(text[last:match.start()]),
                      Markup('<a href="{}"><code>results/{}</code></a>').format(root + tables[path].href, path)]
            last = match.start() + len("results/") + len(path)
    return Markup("").join([*parts, escape(text[last:])])


def copy_figures(results: Path, out: Path) -> list[dict[str, Any]]:
    """Copy results/figures into the site and return its figures.json entries (only figures that exist), in
    figure_order."""
    folder = Path(results) / "figures"
    if not folder.is_dir():
        return []
    index_path = folder / "figures.json"
    entries = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else [
        {"stem": p.stem, "title": p.stem.replace("_", " "), "caption": "", "smoke": p.stem.startswith("smoke_"),
         "png": p.name, "svg": f"{p.stem}.svg"} for p in sorted(folder.glob("*.png"))]
    return sorted((kept for kept in (figure_entry(entry, folder, out) for entry in entries) if kept),
                  key=figure_order)


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


def data_href(tables: dict[str, Download], name: str, root: str = "") -> str | None:
    """The published copy of results/<name>, as a link from a page at `root`; None when the report wrote none."""
    return f"{root}{tables[name].href}" if name in tables else None


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
               build: BuildInfo | None = None, submissions_dir: Path | None = None,
               settings: SiteSettings | None = None) -> Path:
    """Build the whole site from results/ (+ model.yaml files, the pool, CONTRIBUTING.md and params.yaml's `site`
    block when given)."""
    results, out = Path(results), Path(out)
    table = load(results, "table1.csv")
    if not table:
        raise BenchError(f"{results / 'table1.csv'}: not found or empty; run `collapsebench report` first")
    missing = {"model", "n_subjects", "source"} - set(table[0])
    if missing:
        raise BenchError(f"{results / 'table1.csv'}: missing columns {sorted(missing)}")
    settings = settings or SiteSettings()
    inputs = SiteInputs(Path(models_dir), Path(site_dir), submissions_dir, pool, pool_info or {}, contributing,
                        build or detect_build(repository=settings.repository), settings)
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


def pending_cards(refs: Sequence[EntryRef], results: Path) -> list[dict[str, Any]]:
    """Entries with no reproduced rows yet that the pipeline will score (not paper-only rows), each linked to its
    page, with its preflight and, for a closed API, what a run would cost."""
    statuses = {"pending": "merged; waits for its GPU run (generate, then score)",
                "submitted": "results submitted, not scored yet",
                "waiting submission": "results submitted, not imported yet"}
    cards = []
    for ref in refs:
        if ref.status not in statuses:
            continue
        raw = ref.config.raw if ref.config else {}
        api = api_cost(raw)
        status = statuses[ref.status] if not api else "closed API: waits for a run with the provider's key"
        preflight = read_preflight(results, ref.name) if has_files(ref.name) else None
        cards.append({"name": ref.name, "slug": ref.slug, "display_name": ref.display_name, "kind": ref.kind,
                      "status": status, "preflight": preflight.status if preflight else "no preflight yet",
                      "preflight_ok": bool(preflight and preflight.passed),
                      "api": f"a full run costs about ${api.run_cost:,.2f} at ${api.price:g} per image "
                             f"(list price of {api.price_date})" if api else "",
                      "gpu": raw.get("gpu_memory_gb"), "has_needs": ref.config is not None})
    return cards


def gallery_models(names: Sequence[str], reproduced: Sequence[Row], cards: dict[str, str],
                   results: Path) -> list[GalleryModel]:
    """Models with images to show (models first, calibration baselines after), each with its fence."""
    rows = {name: [r for r in reproduced if r["model"] == name] for name in names}
    return [GalleryModel(name, cards[name], rows[name][0].get("display_name") or name, fence_of(rows[name]))
            for name in sorted(names, key=lambda n: (rows[n][0].get("kind") == "calibration", n))
            if has_files(name) and (results / "models" / name / "manifest.jsonl").is_file()]


def index_tables(sections: dict[str, list[Row]], cards: dict[str, str],
                 tables: dict[str, Download]) -> dict[str, Any]:
    """The home page's full tables, one per section except the paper's (its rows are the summary's, shown once);
    ranks only in sections whose rows may be ranked."""
    return {key: results_table(rows, f"t-{key}", SECTION_CAPTIONS[key], SECTION_NOTES[key], "", cards,
                               ranked=key in RANKED_SECTIONS, download=data_href(tables, "table1.csv"))
            for key, rows in sections.items() if key != "reported"}


def column_glossary() -> list[dict[str, str]]:
    """Every column a table can show, with its definition, for the Metrics page (one anchor each)."""
    found = [{"key": m.column, "label": m.label, "text": m.description,
              "better": "higher is better" if m.higher_is_better else "lower is better",
              "paper": "a column of the paper's Table 1" if m.paper else "beyond the paper"} for m in METRICS]
    known = {m.column for m in METRICS}
    return found + [{"key": key, "label": label, "text": text, "better": "lower is better" if key == REFUSAL else "",
                     "paper": "beyond the paper"} for key, label, text in EXTRA_COLUMNS if key not in known]


def _render(env: Environment, results: Path, out: Path, table: list[Row], inputs: SiteInputs) -> None:
    (out / MARKER).write_text("made by collapsebench site; replaced on every build\n", encoding="utf-8")
    if (inputs.site_dir / "static").is_dir():
        shutil.copytree(inputs.site_dir / "static", out / "static")
    sections = split(table)
    reproduced = [r for r in table if r["source"] == "reproduced"]
    names = list(dict.fromkeys(r["model"] for r in reproduced))
    refs = list_entries(inputs.models_dir, inputs.submissions_dir, reproduced,
                        list(dict.fromkeys(str(r["model"]) for r in sections["reported"])))
    cards = page_keys(refs)
    scenes = load(results, "per_scene.csv")
    figures = copy_figures(results, out)
    store = ImageStore(out)
    subjects = publish_references(inputs.pool, store)
    models = gallery_models(names, reproduced, cards, results)
    gallery = build_gallery(results, models, subjects, store, inputs.pool_info.get("id"))
    finder = gallery.finder_pages(models)
    tables = publish_tables(results, out)
    build = inputs.build
    common = {"pages": PAGES, "taus": TAUS, "version": build.version, "pool_info": inputs.pool_info,
              "build": build, "origins": ORIGINS, "closed_api_label": CLOSED_API_LABEL,
              "paper": {"title": PAPER_TITLE, "url": PAPER_URL, "arxiv": PAPER_ARXIV, "venue": PAPER_VENUE}}

    def page(template: str, path: str, **context: Any) -> None:
        html = env.get_template(template).render(root="../" * path.count("/"), current=path, **common, **context)
        atomic_write_text(out / path, html)

    pending = pending_cards(refs, results)
    page("index.html.j2", "index.html", sections=sections, tables=index_tables(sections, cards, tables),
         pending=pending, answer=answer(table), summary=build_summary(table, "", cards), downloads=tables,
         paper_download=data_href(tables, "reported/paper_table1.csv") or data_href(tables, "table1.csv"),
         bibtex={"paper": paper_bibtex(), "benchmark": benchmark_bibtex(build)})
    page("figures.html.j2", "figures.html", figures=figures,
         captions={f["stem"]: link_results_paths(f.get("caption") or "", tables, "") for f in figures},
         sources=[(name, data_href(tables, name)) for name in ("table1.csv", "plots/scr_sweep.csv", "per_scene.csv")])
    page("scenes.html.j2", "scenes.html",
         real=results_table([r for r in scenes if is_result(r)], "t-scenes", "Per scene type",
                            "Per scene type, with 95% intervals over the cell's 5 prompts (wide: few prompts).", "",
                            cards, ranked=False, scene=True, download=data_href(tables, "per_scene.csv")),
         smoke=results_table([r for r in scenes if is_smoke(r)], "t-scenes-smoke", "Pipeline check per scene",
                             "Smoke backbones, random weights.", "", cards,
                             ranked=False, scene=True, download=data_href(tables, "per_scene.csv")),
         heatmaps=[f for f in figures if f["stem"].endswith("per_scene_heatmap")], has_scenes=bool(scenes),
         captions={f["stem"]: link_results_paths(f.get("caption") or "", tables, "") for f in figures})
    pages = gallery.pages()
    page("gallery.html.j2", "gallery.html", gallery=gallery, gallery_pages=pages, subjects=list(subjects.values()),
         models=models, finder=finder)
    counts = list(pages)
    for position, (n, prompts) in enumerate(pages.items()):
        page("gallery_page.html.j2", f"gallery-n{n}.html", n=n, prompts=prompts, counts=counts,
             prev_n=counts[position - 1] if position else None,
             next_n=counts[position + 1] if position + 1 < len(counts) else None)
    for finder_page in finder:
        page("finder_page.html.j2", finder_page.path, finder=finder_page,
             siblings=[f for f in finder if f.model.name == finder_page.model.name],
             others=[f for f in finder if f.n_subjects == finder_page.n_subjects])
    inputs_of_pages = PageInputs(results, Path(inputs.models_dir).resolve().parent, inputs.settings.gpu_anchors,
                                 cards, gallery, finder, data_href(tables, "table1.csv", "../"),
                                 data_href(tables, "reported/paper_table1.csv", "../"))
    model_list = []
    for ref in refs:
        rows = [r for r in reproduced if r["model"] == ref.name]
        files = publish_model_files(results / "models" / ref.name, out, ref.slug) if rows and has_files(
            ref.name) else []
        card = entry_page(ref, rows, reproduced, sections["reported"], files, inputs_of_pages)
        page("model.html.j2", f"models/{ref.slug}.html", card=card)
        model_list.append(card)
    page("models.html.j2", "models.html", models=model_list)
    page("metrics.html.j2", "metrics.html", scoring=_scoring_summary(model_list), figure_links=figure_links(figures),
         columns=column_glossary())
    text = Path(inputs.contributing).read_text(encoding="utf-8") if inputs.contributing and Path(
        inputs.contributing).is_file() else None
    page("submit.html.j2", "submit.html", contributing=render_markdown(text, build.repository_file) if text else None,
         contributing_url=build.repository_file("CONTRIBUTING.md"))


SCORING_KEYS = ("profile", "clip_max_tokens")
SCORING_GROUPS = ("backbones.", "resolved_revisions.")


def _scoring_summary(cards: Sequence[dict[str, Any]]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Which backbones (and revisions) scored the rows, with how many models used each: for the metrics page."""
    counts: dict[str, Counter[str]] = {}
    for card in cards:
        for key, value in card["scoring"] or []:
            if key in SCORING_KEYS or key.startswith(SCORING_GROUPS):
                counts.setdefault(key, Counter())[value] += 1
    return [(key, sorted(values.items())) for key, values in counts.items()]
