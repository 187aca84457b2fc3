"""The static site: built from results/ alone, escaped, self-contained (every link resolves), smoke kept apart."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from conftest import make_pool
from synthetic_results import shared_results

from collapsebench.benchmark.pool import load_pool
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.leaderboard.build_info import PAPER_URL, BuildInfo
from collapsebench.leaderboard.site import build_site, environment

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "results" / "reported" / "paper_table1.csv"
SITE_DIR = REPO / "site"
EVIL = "<script>alert(1)</script>"
QUOTES = "\"double\" & 'single' quotes"
UNICODE = "Ünïcødé 模型 \U0001F680"


class Parsed(HTMLParser):
    """Every link of a page (tag, attribute, url) and every id it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [(tag, name, value) for name, value in attrs if name in ("href", "src") and value is not None]
        self.ids += [value for name, value in attrs if name == "id" and value is not None]


def parse_page(page: Path) -> Parsed:
    parsed = Parsed()
    parsed.feed(page.read_text(encoding="utf-8"))
    return parsed


BUILD = BuildInfo(version="9.9.9", built=datetime(2026, 3, 27, 12, 0, tzinfo=timezone.utc), commit="a" * 40,
                  repository="https://github.com/example/collapsebench")


def check_links(public: Path, outside: tuple[str, ...] = (PAPER_URL, str(BUILD.repository))) -> int:
    """Assert every href/src in every page resolves inside `public`, anchors included (the target page defines
    that id), and that the only absolute URLs are links (never assets) starting with one of `outside`; return how
    many internal links were checked."""
    checked = 0
    root = public.resolve()
    pages = {page.resolve(): parse_page(page) for page in public.rglob("*.html")}
    for page, parsed in pages.items():
        for tag, attribute, url in parsed.links:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                assert tag == "a" and url.startswith(outside), f"{page}: external {tag} {attribute}={url}"
                continue
            assert not url.startswith("/"), f"{page}: root-absolute link {url} breaks under a sub-path"
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            assert target.is_relative_to(root), f"{page}: {url} leaves the site folder"
            assert target.is_file(), f"{page}: broken link {url}"
            if parts.fragment:
                assert target in pages and unquote(parts.fragment) in pages[target].ids, f"{page}: dead anchor {url}"
            checked += 1
    return checked


def duplicate_ids(public: Path) -> dict[str, list[str]]:
    """Ids used more than once on a page, per page."""
    found = {}
    for page in public.rglob("*.html"):
        counts = Counter(parse_page(page).ids)
        if any(count > 1 for count in counts.values()):
            found[str(page)] = [i for i, count in counts.items() if count > 1]
    return found


def table_html(html: str, table_id: str) -> str:
    match = re.search(rf'<table class="results sortable" id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert match, f"no table {table_id}"
    return match.group(1)


def cells_of(row_html: str) -> list[str]:
    """The text of a row's cells (th and td), tags stripped."""
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row_html, re.S)]


def header_labels(table: str) -> list[str]:
    """The labels of a table's column headers (without the arrow and the definition link)."""
    return [label.split(" ")[0] for label in re.findall(r'<span class="label">([^<]*)</span>',
                                                        table.split("</thead>")[0])]


def data_rows(table: str) -> list[str]:
    """The rows of a results table's bodies, group headings left out."""
    return [row for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("</thead>", 1)[-1], re.S)
            if 'scope="rowgroup"' not in row]


def build(results: Path, out: Path, **kwargs: Any) -> Path:
    """build_site with the repository's templates and fixed build facts (no git, no clock)."""
    build_site(results, kwargs.pop("models_dir", out.parent / "no-models-folder"), out, SITE_DIR,
               build=kwargs.pop("build", BUILD), **kwargs)
    return out


def synthetic_site(tmp_path_factory: pytest.TempPathFactory, name: str, entries: tuple[str, ...] = ()) -> Path:
    """results/ written by the report stage over synthetic models, then the site built from it, with a models/
    folder holding only `entries` (copies of this repository's model folders: pending on this site)."""
    root = tmp_path_factory.mktemp(name)
    pool = load_pool(make_pool(root / "data", count=16, size=64))
    for entry in entries:
        shutil.copytree(REPO / "models" / entry, root / "models" / entry)
    return build(shared_results(tmp_path_factory, PAPER), root / "public", pool=pool, models_dir=root / "models")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_site(tmp_path_factory, "site")


def test_site_builds_from_results_alone_with_every_page(built: Path) -> None:
    for page in ("index.html", "figures.html", "scenes.html", "gallery.html", "gallery-n2.html", "gallery-n4.html",
                 "models.html", "metrics.html", "submit.html", "models/alpha.html", "models/collage.html"):
        assert (built / page).is_file(), page
    assert (built / "static" / "style.css").is_file()


def test_every_link_and_anchor_resolves_inside_public_and_ids_are_unique(built: Path) -> None:
    assert check_links(built) > 100
    assert duplicate_ids(built) == {}


def test_smoke_rows_never_reach_a_leaderboard_table(built: Path) -> None:
    html = (built / "index.html").read_text(encoding="utf-8")
    reproduced, smoke = table_html(html, "t-reproduced"), table_html(html, "t-smoke")
    assert "Alpha model" in reproduced and "Beta model" in reproduced
    assert "Collage" not in reproduced and "Collage" in smoke
    assert "Alpha" not in smoke
    smoke_section = html.split('<section id="smoke" class="smoke-section">')[1].split("</section>")[0]
    assert smoke_section.count("not results") == 1  # one "not results" statement per fence
    assert '<section id="calibration">' not in html  # no section that says it is empty and then shows rows


def test_intervals_and_tie_groups_are_shown_scr_first(built: Path) -> None:
    reproduced = table_html((built / "index.html").read_text(encoding="utf-8"), "t-reproduced")
    assert re.search(r'\d\.\d{3} <span class="ci">\[\d\.\d\d, \d\.\d\d\]</span>', reproduced)
    assert re.search(r'\d+\.\d% <span class="ci">\[\d+\.\d, \d+\.\d\]</span>', reproduced)
    assert header_labels(reproduced)[:5] == ["model", "SCR@0.4", "SCR@0.5", "SCR@0.6", "rank"]  # SCR after the name
    ranks = {}
    for row in data_rows(reproduced):
        cells = cells_of(row)
        ranks.setdefault(cells[0].removesuffix(" #").removesuffix(" local run"), set()).add(cells[4])  # SCR@0.4
    # alpha and gamma never collapse (both SCR intervals [0, 0]): a shared rank; beta always collapses: rank 3.
    assert ranks == {"Alpha model": {"=1"}, "Gamma model": {"=1"}, "Beta model": {"3"}}


def test_rows_are_grouped_by_subject_count_with_permalinks(built: Path) -> None:
    reproduced = table_html((built / "index.html").read_text(encoding="utf-8"), "t-reproduced")
    bodies = re.findall(r"<tbody>(.*?)</tbody>", reproduced, re.S)
    assert [re.search(r'id="(t-reproduced-n\d+)"', body).group(1) for body in bodies] == ["t-reproduced-n2",
                                                                                        "t-reproduced-n4"]
    assert all(len(data_rows(f"</thead>{body}")) == 3 for body in bodies)  # one row per model in each count
    assert 'id="t-reproduced-alpha-n2"' in reproduced and 'href="#t-reproduced-alpha-n2"' in reproduced


def test_paper_rows_are_shown_once_as_printed_and_each_links_to_a_page(built: Path) -> None:
    index = (built / "index.html").read_text(encoding="utf-8")
    assert 'id="t-reported"' not in index  # one paper table: the summary (its CLIP columns behind a switch)
    summary = index.split('id="t-summary"')[1].split("</table>")[0]
    mosaic = re.search(r'<tr id="summary-paper-MOSAIC"[^>]*>(.*?)</tr>', summary, re.S).group(1)
    assert "48.9%" in mosaic and 'class="ci"' not in mosaic  # the paper gives no intervals
    assert 'class="num detail"' in mosaic and "0.695" in mosaic  # CLIP-I as printed, shown by the switch
    href = re.search(r'<th scope="row" class="name"><a href="(models/[^"]+\.html)">MOSAIC</a>', mosaic).group(1)
    page = (built / href).read_text(encoding="utf-8")  # no models/ folder here: a page for the paper row alone
    reported = table_html(page, "t-paper")
    assert "48.9%" in reported and 'class="ci"' not in reported
    headers = header_labels(reported)
    assert "SCR@0.4" in headers and "DINOv2" in headers
    for empty in ("DINO", "SCR@0.5", "SCR@0.6", "images", "rank"):  # never filled for paper rows
        assert empty not in headers, empty
    assert "tau-04" not in reported  # the paper's only SCR column stays visible whatever \u03c4 is picked
    assert "rank @" not in page and "Only the paper's printed numbers exist" in page


def test_model_card_shows_provenance_cost_and_downloads(built: Path) -> None:
    card = (built / "models" / "beta.html").read_text(encoding="utf-8")
    for expected in ("sha256:betadigest", "NVIDIA A100-SXM4-80GB", "beta@0123abcd", "2026-03-01T10:00:00+00:00",
                     "2026-03-02T10:00:00+00:00", "torch 2.13.0", "diffusers 0.42.1", "docker"):
        assert expected in card, expected
    assert "No <code>models/&lt;name&gt;/model.yaml</code> was found" in card
    # 16 images of 1.5 s each, on one A100: the cost line the manifests support
    assert ("1.5 s at N=2, 1.5 s at N=4 per image; 0.00667 GPU-hours for 16 images on NVIDIA A100-SXM4-80GB"
            in card)
    for name in ("scores.csv", "manifest.jsonl", "scoring.json"):
        assert f'href="../data/models/beta/{name}"' in card
    alpha = table_html((built / "models" / "alpha.html").read_text(encoding="utf-8"), "card")
    assert alpha.count(">=1</td>") == 2 * 3  # tied with gamma at N = 2 and 4 for each tau, gamma not on the card
    smoke_card = (built / "models" / "collage.html").read_text(encoding="utf-8")
    assert "pipeline check, not a result" in smoke_card


def test_tau_switch_is_pure_css_and_every_script_is_local(built: Path) -> None:
    html = (built / "index.html").read_text(encoding="utf-8")
    assert 'id="tau-05"' in html and "body:has(#tau-05:checked)" in html
    assert re.findall(r"<script[^>]*src=\"([^\"]+)\"", html) == ["static/site.js"]
    assert (built / "static" / "site.js").is_file()
    assert "http://" not in html


def test_long_provenance_lists_are_folded(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    results = tmp_path / "results"
    shutil.copytree(shared_results(tmp_path_factory, PAPER), results)
    manifest = results / "models" / "alpha" / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    manifest.write_text("".join(json.dumps({**line, "inputs": f"{i:016x}"}) + "\n" for i, line in enumerate(lines)),
                        encoding="utf-8")
    card = (build(results, tmp_path / "public") / "models" / "alpha.html").read_text(encoding="utf-8")
    assert f"<details><summary>{len(lines)} distinct values (one per image)</summary>" in card
    assert "<th scope=\"row\">device</th><td><code>NVIDIA H100 80GB HBM3</code></td>" in card  # short lists stay open


@pytest.fixture
def evil_results(tmp_path: Path) -> Path:
    """A hand-written table1.csv whose names try to break out of the HTML."""
    results = tmp_path / "results"
    results.mkdir()
    columns = ["model", "display_name", "kind", "n_subjects", "dinov2", "scr_0.4", "dinov2_lo", "dinov2_hi",
               "n_images", "source", "backbones", "clone_rate", "matched_scr_0.4"]
    rows = [
        [EVIL, QUOTES, "model", "2", "0.5", "0.4", "0.45", "0.55", "45", "reproduced", "real", "0.25", "0.5"],
        [UNICODE, UNICODE, "model", "2", "0.6", "0.3", "0.5", "0.7", "45", "reproduced", "real", "", ""],
        [EVIL, "", "reported", "2", "0.4", "0.5", "", "", "", "reported", "paper", "", ""],
    ]
    with open(results / "table1.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return results


def test_adversarial_names_are_escaped_everywhere(evil_results: Path, tmp_path: Path) -> None:
    public = build(evil_results, tmp_path / "public")
    pages = {page: page.read_text(encoding="utf-8") for page in public.rglob("*.html")}
    assert len(pages) >= 8
    for page, html in pages.items():
        assert EVIL not in html, page
        assert "alert(1)</script>" not in html, page
    index = pages[public / "index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&#34;double&#34; &amp; &#39;single&#39; quotes" in index
    assert UNICODE in index
    cards = sorted((public / "models").glob("*.html"))
    assert len(cards) == 2 and all(re.fullmatch(r"[A-Za-z0-9_.-]+\.html", card.name) for card in cards)
    assert check_links(public) > 10
    assert duplicate_ids(public) == {}


def test_extra_metric_columns_from_later_stages_are_shown(evil_results: Path, tmp_path: Path) -> None:
    build(evil_results, tmp_path / "public")
    reproduced = table_html((tmp_path / "public" / "index.html").read_text(encoding="utf-8"), "t-reproduced")
    assert "matched SCR@0.4" in reproduced and "clone rate" in reproduced and "25.0%" in reproduced


def test_template_environment_autoescapes(tmp_path: Path) -> None:
    (tmp_path / "t.html.j2").write_text("<p title=\"{{ x }}\">{{ x }}</p>", encoding="utf-8")
    html = environment(tmp_path).get_template("t.html.j2").render(x=EVIL + QUOTES)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&#34;double&#34;" in html


def test_rebuild_replaces_the_site_but_never_a_foreign_folder(evil_results: Path, tmp_path: Path) -> None:
    public = tmp_path / "public"
    build(evil_results, public)
    (public / "stale.html").write_text("old", encoding="utf-8")
    build(evil_results, public)
    assert not (public / "stale.html").exists() and (public / "index.html").is_file()
    foreign = tmp_path / "important"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(BenchError, match="refusing to replace"):
        build(evil_results, foreign)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert not list(tmp_path.glob(".important*")), "staging folder left behind"


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"table1\.csv: not found"):
        build_site(tmp_path / "results", tmp_path / "models", tmp_path / "public", SITE_DIR)


def test_cli_site_uses_the_pool_and_contributing(built: Path, tmp_path: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    results = shared_results(tmp_path_factory, PAPER)
    (tmp_path / "params.yaml").write_text(f"suite:\n  pool: {built.parent / 'data'}\n", encoding="utf-8")
    (tmp_path / "CONTRIBUTING.md").write_text("# How to contribute\nOpen a <pull request>.\n", encoding="utf-8")
    code = main(["--params", str(tmp_path / "params.yaml"), "--results", str(results), "--models-dir",
                 str(REPO / "models"), "site", "--out", str(tmp_path / "public"), "--site-dir", str(SITE_DIR),
                 "--contributing", str(tmp_path / "CONTRIBUTING.md")])
    assert code == 0
    submit = (tmp_path / "public" / "submit.html").read_text(encoding="utf-8")
    assert "<h2>How to contribute</h2>" in submit and "Open a &lt;pull request&gt;." in submit
    gallery = (tmp_path / "public" / "gallery.html").read_text(encoding="utf-8")
    assert "reference S001: subject number 1" in gallery
    assert check_links(tmp_path / "public", (PAPER_URL,)) > 100  # no repository known: the paper is the only way out


def test_provenance_lists_every_distinct_value_with_its_count() -> None:
    from collapsebench.leaderboard.provenance import NOT_RECORDED, summarize_manifest

    base = {"key": "p01_s0", "prompt_id": 1, "seed": 0, "width": 8, "height": 8, "wall_s": 2.0, "runner": "docker",
            "container_digest": "sha256:aa", "packages": {"torch": "2.13.0"}}
    records = [{**base, "device": "NVIDIA H100", "created_utc": "2026-03-02T00:00:00+00:00"},
               {**base, "device": "NVIDIA H100", "created_utc": "2026-03-01T00:00:00+00:00"},
               {**base, "device": "NVIDIA A100", "container_digest": None, "created_utc": "2026-03-03T00:00:00+00:00"}]
    summary = summarize_manifest(records)
    fields = dict(summary.fields)
    assert fields["device"] == [("NVIDIA H100", 2), ("NVIDIA A100", 1)]
    assert fields["container_digest"] == [("sha256:aa", 2), (NOT_RECORDED, 1)]
    assert fields["packages.torch"] == [("2.13.0", 3)]
    assert "seed" not in fields and "created_utc" not in fields
    assert (summary.first_utc, summary.last_utc) == ("2026-03-01T00:00:00+00:00", "2026-03-03T00:00:00+00:00")
    assert summary.wall_s_total == 6.0 and summary.sizes == [("8\u00d78", 3)]


def test_a_results_submission_is_labelled_submitted_by_the_authors(tmp_path: Path) -> None:
    from synthetic_results import write_model, write_results

    from collapsebench.core.io import atomic_write_json
    from collapsebench.intake.submission import SUBMITTED_LABEL

    results = tmp_path / "results"
    write_model(results, "beta")
    atomic_write_json(results / "models" / "beta" / "provenance.json", {"source": "submitted"})
    table = write_results(results, PAPER, models=("alpha", "beta"))
    assert {(r["model"], r["generated_by"]) for r in table if r["source"] == "reproduced"} == {
        ("alpha", "collapsebench"), ("beta", "authors")}
    build(results, tmp_path / "public")
    index = (tmp_path / "public" / "index.html").read_text(encoding="utf-8")
    reproduced = table_html(index, "t-reproduced")
    labelled = [row for row in data_rows(reproduced) if SUBMITTED_LABEL in row]
    assert len(labelled) == sum(r["model"] == "beta" and r["source"] == "reproduced" for r in table)
    assert all("beta" in row and "alpha" not in row for row in labelled)
    card = (tmp_path / "public" / "models" / "beta.html").read_text(encoding="utf-8")
    assert SUBMITTED_LABEL in card
    assert SUBMITTED_LABEL not in (tmp_path / "public" / "models" / "alpha.html").read_text(encoding="utf-8")
