"""The static site: built from results/ alone, escaped, self-contained (every link resolves), smoke kept apart."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import make_pool
from PIL import Image, ImageStat
from synthetic_results import shared_results

from collapsebench.benchmark.pool import load_pool
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.leaderboard.site import build_site, environment

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "results" / "reported" / "paper_table1.csv"
SITE_DIR = REPO / "site"
EVIL = "<script>alert(1)</script>"
QUOTES = "\"double\" & 'single' quotes"
UNICODE = "Ünïcødé 模型 \U0001F680"


class Links(HTMLParser):
    """Collects every href/src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("href", "src") and value is not None]


def check_links(public: Path) -> int:
    """Assert every href/src in every page is relative and resolves to a file inside `public`; return the count."""
    checked = 0
    root = public.resolve()
    for page in public.rglob("*.html"):
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for url in parser.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{page}: external link {url}"
            assert not url.startswith("/"), f"{page}: root-absolute link {url} breaks under a sub-path"
            if not parts.path:
                continue  # a fragment on the same page
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_relative_to(root), f"{page}: {url} leaves the site folder"
            assert target.is_file(), f"{page}: broken link {url}"
            checked += 1
    return checked


def table_html(html: str, table_id: str) -> str:
    match = re.search(rf'<table class="results sortable" id="{table_id}">(.*?)</table>', html, re.S)
    assert match, f"no table {table_id}"
    return match.group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/ written by the report stage over synthetic models, then the site built from it (no models/ folder)."""
    root = tmp_path_factory.mktemp("site")
    pool = load_pool(make_pool(root / "data", count=16, size=64))
    build_site(shared_results(tmp_path_factory, PAPER), root / "no-models-folder", root / "public", SITE_DIR, pool=pool)
    return root / "public"


def test_site_builds_from_results_alone_with_every_page(built: Path) -> None:
    for page in ("index.html", "figures.html", "scenes.html", "gallery.html", "gallery-n2.html", "gallery-n4.html",
                 "models.html", "metrics.html", "submit.html", "models/alpha.html", "models/collage.html"):
        assert (built / page).is_file(), page
    assert (built / "static" / "style.css").is_file()


def test_every_link_and_image_resolves_inside_public(built: Path) -> None:
    assert check_links(built) > 100


def test_smoke_rows_never_reach_a_leaderboard_table(built: Path) -> None:
    html = (built / "index.html").read_text(encoding="utf-8")
    reproduced, smoke = table_html(html, "reproduced"), table_html(html, "smoke")
    assert "Alpha model" in reproduced and "Beta model" in reproduced
    assert "Collage" not in reproduced and "Collage" in smoke
    assert "Alpha" not in smoke
    assert "Pipeline check (smoke backbones, random weights)" in html
    assert 'id="calibration"' not in html.split('<section id="calibration">')[1].split("</section>")[0]  # no table


def test_intervals_and_tie_groups_are_shown(built: Path) -> None:
    reproduced = table_html((built / "index.html").read_text(encoding="utf-8"), "reproduced")
    assert re.search(r'\d\.\d{3} <span class="ci">\[\d\.\d\d, \d\.\d\d\]</span>', reproduced)
    assert re.search(r'\d+\.\d% <span class="ci">\[\d+\.\d, \d+\.\d\]</span>', reproduced)
    rows = re.findall(r"<tr>(.*?)</tr>", reproduced, re.S)
    ranks = {}
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if not cells:
            continue  # the header row
        name = re.sub(r"<[^>]+>", "", cells[3])
        ranks.setdefault(name, set()).add(cells[0])  # first cell: rank by SCR@0.4
    # alpha and gamma never collapse (both SCR intervals [0, 0]): a shared rank; beta always collapses: rank 3.
    assert ranks == {"Alpha model": {"=1"}, "Gamma model": {"=1"}, "Beta model": {"3"}}


def test_paper_rows_have_no_invented_values(built: Path) -> None:
    reported = table_html((built / "index.html").read_text(encoding="utf-8"), "reported")
    assert "MOSAIC (paper)" in reported and "48.9%" in reported
    assert 'class="ci"' not in reported  # the paper gives no intervals
    assert "\u2014" in reported  # empty DINO / SCR@0.5 cells are shown as missing, not zero


def test_gallery_has_lazy_thumbnails_references_and_scores_only_for_real_backbones(built: Path) -> None:
    page = (built / "gallery-n2.html").read_text(encoding="utf-8")
    assert page.count('loading="lazy"') >= 4 * 4  # 4 prompts x (2 references + 4 models)
    assert 'src="thumbs/references/S002.jpg"' in page
    assert "collapsed @0.4" in page and "scored with smoke backbones: no score shown" in page
    with Image.open(built / "thumbs" / "alpha" / "p01_s0.jpg") as thumb:
        assert thumb.format == "JPEG"
    assert (built / "images" / "alpha" / "p01_s0.png").read_bytes()


def test_model_card_shows_provenance(built: Path) -> None:
    card = (built / "models" / "beta.html").read_text(encoding="utf-8")
    for expected in ("sha256:betadigest", "NVIDIA A100-SXM4-80GB", "beta@0123abcd", "2026-03-01T10:00:00+00:00",
                     "2026-03-02T10:00:00+00:00", "torch 2.13.0", "diffusers 0.42.1", "docker"):
        assert expected in card, expected
    assert "No <code>models/&lt;name&gt;/model.yaml</code> was found" in card
    alpha = table_html((built / "models" / "alpha.html").read_text(encoding="utf-8"), "card")
    assert alpha.count(">=1</td>") == 2 * 3  # tied with gamma at N = 2 and 4 for each tau, gamma not on the card
    smoke_card = (built / "models" / "collage.html").read_text(encoding="utf-8")
    assert "pipeline check, not a result" in smoke_card


def test_tau_switch_and_sorting_work_without_external_files(built: Path) -> None:
    html = (built / "index.html").read_text(encoding="utf-8")
    assert 'id="tau-05"' in html and "body:has(#tau-05:checked)" in html
    assert "table.sortable" in html and "<script src" not in html
    assert "http://" not in html and "https://" not in html


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
    public = tmp_path / "public"
    build_site(evil_results, tmp_path / "models", public, SITE_DIR)
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


def test_extra_metric_columns_from_later_stages_are_shown(evil_results: Path, tmp_path: Path) -> None:
    build_site(evil_results, tmp_path / "models", tmp_path / "public", SITE_DIR)
    reproduced = table_html((tmp_path / "public" / "index.html").read_text(encoding="utf-8"), "reproduced")
    assert "matched SCR@0.4" in reproduced and "clone rate" in reproduced and "25.0%" in reproduced


def test_template_environment_autoescapes(tmp_path: Path) -> None:
    (tmp_path / "t.html.j2").write_text("<p title=\"{{ x }}\">{{ x }}</p>", encoding="utf-8")
    html = environment(tmp_path).get_template("t.html.j2").render(x=EVIL + QUOTES)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&#34;double&#34;" in html


def test_rebuild_replaces_the_site_but_never_a_foreign_folder(evil_results: Path, tmp_path: Path) -> None:
    public = tmp_path / "public"
    build_site(evil_results, tmp_path / "models", public, SITE_DIR)
    (public / "stale.html").write_text("old", encoding="utf-8")
    build_site(evil_results, tmp_path / "models", public, SITE_DIR)
    assert not (public / "stale.html").exists() and (public / "index.html").is_file()
    foreign = tmp_path / "important"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(BenchError, match="refusing to replace"):
        build_site(evil_results, tmp_path / "models", foreign, SITE_DIR)
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
    assert "Open a &lt;pull request&gt;." in submit
    assert (tmp_path / "public" / "references" / "S001.png").is_file()


def screenshot_script():  # noqa: ANN201 - the scripts/screenshot.py module
    """scripts/screenshot.py as a module; skips the calling test (saying why) when no Chromium is installed."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import screenshot
    finally:
        sys.path.remove(str(REPO / "scripts"))
    if screenshot.find_browser() is None:
        reason = f"no Chromium binary found (looked for {', '.join(screenshot.BROWSERS)})"
        print(f"SKIP reason: {reason}")
        pytest.skip(reason)
    return screenshot


def test_headless_chromium_screenshots_are_not_blank(built: Path, tmp_path: Path) -> None:
    screenshot = screenshot_script()
    shutil.copytree(built, tmp_path / "public")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "screenshot.py"), str(tmp_path / "public"),
                             "--out", str(tmp_path / "shots")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("index.png", "model_card.png"):
        with Image.open(tmp_path / "shots" / name) as image:
            assert image.size == (1280, 2000)
            assert sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3 > screenshot.MIN_STDDEV, name


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


def test_clicking_a_header_sorts_the_table_in_chromium(built: Path, tmp_path: Path) -> None:
    browser = screenshot_script().find_browser()
    shutil.copytree(built, tmp_path / "public")
    page = tmp_path / "public" / "sorted.html"
    click = ('<script>Array.from(document.querySelectorAll("#reproduced thead th"))'
             '.find(function (th) { return th.textContent.trim().startsWith("DINOv2"); })'
             '.querySelector("button").click();</script></body>')
    page.write_text((tmp_path / "public" / "index.html").read_text(encoding="utf-8").replace("</body>", click),
                    encoding="utf-8")
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    table = table_html(result.stdout, "reproduced")
    assert 'aria-sort="ascending"' in table
    headers = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
    column = next(i for i, h in enumerate(headers) if h.startswith("DINOv2"))
    values = [float(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[column].split()[0])
              for row in re.findall(r"<tr>(.*?)</tr>", table, re.S) if "<td" in row]
    assert len(values) == 6 and values == sorted(values)


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
    build_site(results, tmp_path / "models", tmp_path / "public", SITE_DIR)
    index = (tmp_path / "public" / "index.html").read_text(encoding="utf-8")
    reproduced = table_html(index, "reproduced")
    labelled = [row for row in reproduced.split("<tr>") if SUBMITTED_LABEL in row]
    assert len(labelled) == sum(r["model"] == "beta" and r["source"] == "reproduced" for r in table)
    assert all("beta" in row and "alpha" not in row for row in labelled)
    card = (tmp_path / "public" / "models" / "beta.html").read_text(encoding="utf-8")
    assert SUBMITTED_LABEL in card
    assert SUBMITTED_LABEL not in (tmp_path / "public" / "models" / "alpha.html").read_text(encoding="utf-8")
