"""The site stage: plain data in (results/, models/, the subject pool), static HTML out (public/).

Jinja2 with autoescape on, relative links only, no external assets, and every
file a page shows copied into the output folder, so the site works from
file:// and under a GitHub Pages sub-path. Smoke-backbone rows never enter a
leaderboard table: they get their own "pipeline check" sections; rows scored
with custom backbones (not verified to be the pinned checkpoints) are listed
in a section of their own on the index page and drawn in no figure. The site is
built in a staging folder and swapped in at the end, so a failed build leaves
the previous site intact and no stale file survives a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from collapsebench.benchmark.model_config import NAME, load_model_config
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import SCENES
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_text, make_temp_folder
from collapsebench.core.manifest import SUBMITTED_LABEL, Manifest
from collapsebench.core.metric_table import METRICS, THRESHOLDS
from collapsebench.leaderboard.gallery import (
    GalleryPrompt,
    build_gallery,
    copy_references,
)
from collapsebench.leaderboard.provenance import NOT_RECORDED, summarize_manifest
from collapsebench.reporting.tables import Row, is_custom, is_result, is_smoke, load

TAUS = tuple(f"{t:g}" for t in THRESHOLDS)
MARKER = ".collapsebench-site"  # marks a folder this builder made, so only such a folder is ever replaced
SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
IDENTITY = frozenset({"model", "display_name", "kind", "n_subjects", "scene", "source", "backbones", "n_images",
                      "n_pairs"})
PAGES = (("index.html", "Leaderboard"), ("figures.html", "Figures"), ("scenes.html", "Per scene"),
         ("gallery.html", "Gallery"), ("models.html", "Models"), ("metrics.html", "Metrics"),
         ("submit.html", "Submit a model"))


@dataclass
class Column:
    key: str
    label: str
    percent: bool = False
    title: str = ""
    tau: str | None = None  # only shown while this SCR threshold is selected

    @property
    def css(self) -> str:
        return f"tau tau-{self.tau.replace('.', '')}" if self.tau else ""


@dataclass
class Table:
    """A table ready for the template: header cells and rows of cells (all text escaped by Jinja)."""

    id: str
    caption: str
    headers: list[dict[str, Any]]
    rows: list[list[dict[str, Any]]] = field(default_factory=list)


def environment(templates: Path) -> Environment:
    return Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def slug(name: str) -> str:
    """A file name for a model's pages: the name itself when it is safe, else a hash of it."""
    if SAFE_COMPONENT.match(name) and ".." not in name:
        return name
    return "m-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]


def has_files(name: str) -> bool:
    """Whether `name` can be used as a folder name under results/models (never a path that leaves it)."""
    return bool(SAFE_COMPONENT.match(name)) and ".." not in name


def fmt(value: float | None, percent: bool) -> str:
    if value is None:
        return "\u2014"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def fmt_interval(low: float | None, high: float | None, percent: bool) -> str:
    if low is None or high is None:
        return ""
    return f"[{100 * low:.1f}, {100 * high:.1f}]" if percent else f"[{low:.2f}, {high:.2f}]"


def metric_columns(rows: Sequence[Row]) -> list[Column]:
    """The metric table's columns: the paper-style ones always (an empty cell says "not reported"), the others
    (e.g. matched SCR) when some row holds a value."""
    return [Column(m.column, m.label, m.percent, m.description, None if m.tau is None else f"{m.tau:g}")
            for m in METRICS
            if m.aggregation != "matched" or any(isinstance(row.get(m.column), float) for row in rows)]


def cell(text: str, sort: str = "", css: str = "", title: str = "", href: str | None = None,
         ci: str = "") -> dict[str, Any]:
    """One table cell; `sort` is what the column sorter compares (numbers as text, '' sorts last)."""
    return {"text": text, "sort": sort, "css": css, "title": title, "href": href, "ci": ci}


def metric_cell(row: Row, column: Column) -> dict[str, Any]:
    value = row.get(column.key)
    value = value if isinstance(value, float) else None
    return cell(fmt(value, column.percent), "" if value is None else f"{value:.6f}", "num " + column.css,
                "" if value is not None else "not reported / not computed",
                ci=fmt_interval(row.get(f"{column.key}_lo"), row.get(f"{column.key}_hi"), column.percent))


def model_cell(row: Row, root: str, cards: dict[str, str], short: bool = False) -> dict[str, Any]:
    """The model's display name (or its short id when `short`), linked to its card when it has one."""
    name = row["model"]
    text = f"{name} (paper)" if row["source"] == "reported" else name if short else row.get("display_name") or name
    if row.get("generated_by") == "authors":
        text += f" ({SUBMITTED_LABEL})"
    if row.get("incomplete"):
        text += f" ({row['incomplete']}; not ranked)"
    href = f"{root}models/{cards[name]}.html" if row["source"] == "reproduced" and name in cards else None
    return cell(text, text.lower(), "name", name, href)


def rank_cells(row: Row, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Rank by SCR@tau as a tie group; '=' marks a rank shared with an overlapping model."""
    cells = []
    for tau in TAUS:
        rank = row.get(f"rank_scr_{tau}")
        css = f"num tau tau-{tau.replace('.', '')}"
        if rank is None:
            cells.append(cell("", css=css, title="not ranked: incomplete" if row.get("incomplete")
                              else "no interval, no rank"))
            continue
        group = (row["kind"], row["backbones"], row.get("pool"), row["n_subjects"], rank)
        shared = sum((r["kind"], r["backbones"], r.get("pool"), r["n_subjects"], r.get(f"rank_scr_{tau}")) == group
                     for r in rows) > 1
        cells.append(cell(f"{'=' if shared else ''}{int(rank)}", f"{rank:.0f}", css,
                          "tied: 95% intervals overlap" if shared else "alone in its tie group"))
    return cells


def results_table(rows: Sequence[Row], table_id: str, caption: str, root: str, cards: dict[str, str],
                  scene: bool = False, model_column: bool = True, peers: Sequence[Row] | None = None) -> Table:
    """Table 1 (or the per-scene table when `scene`): values with their 95% intervals, ranks as tie groups.

    `model_column=False` drops the model name (a model card's own table needs no name in every row);
    `peers` are the rows a shared rank is looked up in (default: `rows`; a card passes every model's rows).
    """
    columns = metric_columns(rows)
    ranked = not scene and any(r.get("rank_scr_0.4") is not None for r in rows)
    headers = ([{"label": f"rank @{tau}", "css": f"tau tau-{tau.replace('.', '')}",
                 "title": f"tie group by SCR@{tau} within the subject count"} for tau in TAUS] if ranked else [])
    headers += [{"label": "model", "css": "", "title": ""}] if model_column else []
    headers += [{"label": "N", "css": "num", "title": "subjects per prompt"}]
    headers += [{"label": "scene", "css": "", "title": "scene type"}] if scene else []
    headers += [{"label": c.label, "css": "num " + c.css, "title": c.title} for c in columns]
    headers += [{"label": "images", "css": "num", "title": "images in the cell"}]
    headers += [{"label": "pool", "css": "", "title": "the subject pool the prompts were cast from"}]
    table = Table(table_id, caption, headers)
    order = sorted(rows, key=lambda r: (r["n_subjects"], scene_order(r.get("scene")), r.get("rank_scr_0.4") or 1e9,
                                        str(r.get("display_name") or r["model"])))
    for row in order:
        cells = rank_cells(row, peers or rows) if ranked else []
        cells += [model_cell(row, root, cards, short=scene)] if model_column else []
        cells.append(cell(str(row["n_subjects"]), str(row["n_subjects"]), "num"))
        cells += [cell(row.get("scene") or "", row.get("scene") or "")] if scene else []
        cells += [metric_cell(row, column) for column in columns]
        images = "" if row.get("n_images") is None else str(row["n_images"])
        cells.append(cell(images, images, "num"))
        cells.append(cell(row.get("pool_name") or "", row.get("pool_name") or "", "", row.get("pool") or ""))
        table.rows.append(cells)
    return table


def scene_order(scene: str | None) -> tuple[int, str]:
    """The benchmark's scene order (neutral, occlusion, interaction), unknown scenes after it."""
    return (SCENES.index(scene), "") if scene in SCENES else (len(SCENES), scene or "")


def split(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Leaderboard sections: paper rows, reproduced models, calibration baselines, the smoke pipeline check, and
    rows scored with custom (unverified) backbones."""
    sections: dict[str, list[Row]] = {"reported": [], "reproduced": [], "calibration": [], "smoke": [], "custom": []}
    for row in rows:
        if row.get("source") == "reported":
            sections["reported"].append(row)
        elif is_smoke(row):
            sections["smoke"].append(row)
        elif is_custom(row):
            sections["custom"].append(row)
        elif row.get("kind") == "calibration":
            sections["calibration"].append(row)
        else:
            sections["reproduced"].append(row)
    return sections


def model_card(name: str, rows: Sequence[Row], peers: Sequence[Row], results: Path, models_dir: Path,
               cards: dict[str, str]) -> dict[str, Any]:
    """Everything a model card shows: model.yaml, the manifest's provenance, the scoring record, its rows."""
    config, records, scoring = None, [], None
    if has_files(name):
        if NAME.match(name) and (Path(models_dir) / name / "model.yaml").is_file():
            config = load_model_config(models_dir, name)
        folder = Path(results) / "models" / name
        records = Manifest(folder).records()
        if (folder / "scoring.json").is_file():
            try:
                scoring = json.loads((folder / "scoring.json").read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise BenchError(f"{folder / 'scoring.json'}: not valid JSON ({error})") from error
    raw = dict(config.raw) if config else {}
    shown = ("name", "display_name", "kind", "description", "authors", "license", "adapter", "runner", "settings")
    smoke = any(is_smoke(r) for r in rows)
    note = "."
    if smoke:
        note = " (smoke backbones: pipeline check, not a result)."
    elif any(is_custom(r) for r in rows):
        note = " (custom backbones, not verified to be the pinned checkpoints: not on the leaderboard)."
    return {
        "name": name, "slug": cards[name], "display_name": rows[0].get("display_name") or name,
        "kind": rows[0].get("kind"), "config": config, "raw": raw, "smoke": smoke,
        "submitted": SUBMITTED_LABEL if rows[0].get("generated_by") == "authors" else "",
        "incomplete": rows[0].get("incomplete") or "",
        "other_fields": {k: v for k, v in raw.items() if k not in shown},
        "provenance": summarize_manifest(records) if records else None, "scoring": scoring,
        "table": results_table(rows, "card", "This model's Table 1 rows, one per subject count"
                               + note,
                               "../", cards, model_column=False, peers=peers),
    }


def copy_figures(results: Path, out: Path) -> list[dict[str, Any]]:
    """Copy results/figures into the site and return its figures.json entries (only files that exist)."""
    folder = Path(results) / "figures"
    if not folder.is_dir():
        return []
    index_path = folder / "figures.json"
    entries = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else [
        {"stem": p.stem, "title": p.stem.replace("_", " "), "caption": "", "smoke": p.stem.startswith("smoke_"),
         "png": p.name, "svg": f"{p.stem}.svg"} for p in sorted(folder.glob("*.png"))]
    kept = []
    for entry in entries:
        if not (folder / entry["png"]).is_file():
            continue
        for key in ("png", "svg"):
            if (folder / entry[key]).is_file():
                (out / "figures").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / entry[key], out / "figures" / entry[key])
            else:
                entry = {**entry, key: None}
        kept.append(entry)
    return kept


def by_count(gallery: Sequence[GalleryPrompt]) -> dict[int, list[GalleryPrompt]]:
    pages: dict[int, list[GalleryPrompt]] = {}
    for entry in gallery:
        pages.setdefault(entry.n_subjects, []).append(entry)
    return dict(sorted(pages.items()))


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
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise BenchError(f"{out}: exists and was not made by `collapsebench site`; refusing to replace it")
        old = make_temp_folder(out.parent, f".{out.name}.old-")
        out.rename(old / out.name)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        staging.rename(out)


def build_site(results: Path, models_dir: Path, out: Path, site_dir: Path, pool: dict[str, Subject] | None = None,
               contributing: Path | None = None, pool_info: dict[str, str] | None = None) -> Path:
    """Build the whole site from results/ (+ model.yaml files, the pool and CONTRIBUTING.md when given)."""
    results, out, site_dir = Path(results), Path(out), Path(site_dir)
    table = load(results, "table1.csv")
    if not table:
        raise BenchError(f"{results / 'table1.csv'}: not found or empty; run `collapsebench report` first")
    missing = {"model", "n_subjects", "source"} - set(table[0])
    if missing:
        raise BenchError(f"{results / 'table1.csv'}: missing columns {sorted(missing)}")
    incomplete = incomplete_models(results)
    pool_info = pool_info or {}
    for row in table:
        row["pool_name"] = pool_info.get("name") if row.get("pool") == pool_info.get("id") else row.get("pool")
        row.setdefault("kind", "reported" if row["source"] == "reported" else "model")
        row.setdefault("backbones", "paper" if row["source"] == "reported" else "unknown")
        if row["source"] == "reproduced":
            row["incomplete"] = incomplete.get(row["model"], "")
    env = environment(site_dir / "templates")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out)
    staging = make_temp_folder(out.parent, f".{out.name}.new-")
    try:
        _render(env, results, Path(models_dir), staging, site_dir, table, pool, contributing, pool_info)
        swap_in(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / "index.html"


def _render(env: Environment, results: Path, models_dir: Path, out: Path, site_dir: Path, table: list[Row],
            pool: dict[str, Subject] | None, contributing: Path | None, pool_info: dict[str, str]) -> None:
    (out / MARKER).write_text("made by collapsebench site; replaced on every build\n", encoding="utf-8")
    if (site_dir / "static").is_dir():
        shutil.copytree(site_dir / "static", out / "static")
    sections = split(table)
    reproduced = [r for r in table if r["source"] == "reproduced"]
    names = list(dict.fromkeys(r["model"] for r in reproduced))
    cards = {name: slug(name) for name in names}
    scenes = load(results, "per_scene.csv")
    scene_sections = {"real": [r for r in scenes if is_result(r)], "smoke": [r for r in scenes if is_smoke(r)]}
    figures = copy_figures(results, out)
    subjects = copy_references(pool, out)
    kinds = {name: next(r for r in reproduced if r["model"] == name) for name in names}
    gallery_models = [(name, cards[name], kinds[name].get("display_name") or name, is_smoke(kinds[name]))
                      for name in sorted(names, key=lambda n: (kinds[n].get("kind") == "calibration", n))
                      if has_files(name) and (results / "models" / name / "manifest.jsonl").is_file()]
    gallery = by_count(build_gallery(results, gallery_models, subjects, out))
    version = _version()
    common = {"pages": PAGES, "taus": TAUS, "version": version, "pool_info": pool_info}

    def page(template: str, path: str, **context: Any) -> None:
        depth = path.count("/")
        html = env.get_template(template).render(root="../" * depth, current=path, **common, **context)
        atomic_write_text(out / path, html)

    page("index.html.j2", "index.html", sections=sections, tables={
        "reported": results_table(sections["reported"], "reported", "The paper gives no intervals, no SCR@0.5/0.6 "
                                  "and no DINO column: those cells are empty, not zero.", "", cards),
        "reproduced": results_table(sections["reproduced"], "reproduced", "Generated and scored by collapsebench "
                                    "with real backbones; 95% paired-bootstrap intervals in brackets.", "", cards),
        "calibration": results_table(sections["calibration"], "calibration", "Calibration baselines that need no "
                                     "GPU: they bound what the metrics can say.", "", cards),
        "smoke": results_table(sections["smoke"], "smoke", "Pipeline check: scored with tiny random-weight "
                               "backbones. These numbers mean nothing about identity.", "", cards),
        "custom": results_table(sections["custom"], "custom", "Scored with checkpoints other than the pinned ones: "
                                "comparable with each other at most, never with the leaderboard.", "", cards),
    })
    page("figures.html.j2", "figures.html", figures=figures)
    page("scenes.html.j2", "scenes.html",
         real=results_table(scene_sections["real"], "scenes", "Per scene type, with 95% intervals over the cell's "
                            "5 prompts (wide: few prompts).", "", cards, scene=True),
         smoke=results_table(scene_sections["smoke"], "scenes-smoke", "Pipeline check (smoke backbones, random "
                             "weights): not results.", "", cards, scene=True),
         heatmaps=[f for f in figures if f["stem"].endswith("per_scene_heatmap")], has_scenes=bool(scenes))
    page("gallery.html.j2", "gallery.html", counts={n: len(entries) for n, entries in gallery.items()},
         subjects=list(subjects.values()), models=gallery_models)
    for n, entries in gallery.items():
        page("gallery_page.html.j2", f"gallery-n{n}.html", n=n, entries=entries,
             counts={k: len(v) for k, v in gallery.items()})
    model_list = []
    for name in names:
        card = model_card(name, [r for r in reproduced if r["model"] == name], reproduced, results, models_dir, cards)
        page("model.html.j2", f"models/{cards[name]}.html", card=card, gallery_counts=list(gallery))
        model_list.append(card)
    page("models.html.j2", "models.html", models=model_list)
    page("metrics.html.j2", "metrics.html", scoring=_scoring_summary(model_list))
    text = Path(contributing).read_text(encoding="utf-8") if contributing and Path(contributing).is_file() else None
    page("submit.html.j2", "submit.html", contributing=text)


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


def _version() -> str:
    try:
        return metadata.version("collapsebench")
    except metadata.PackageNotFoundError:
        return "unknown"
