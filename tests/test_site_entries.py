"""Every entry has a page (pending, paper-only, closed API, waiting submission, rows without a folder), the home page
answers per N first, rows carry their origin (unverified ones never ranked) and the closed-API label beside their
rank, a page says what a run needs (estimate labelled, API cost, pinned code and weights, preflight, the commands),
and the repository comes from params.yaml or git."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_results import shared_results
from test_site import (
    BUILD,
    PAPER,
    REPO,
    build,
    cells_of,
    check_links,
    data_rows,
    header_labels,
    table_html,
)
from test_site_summary import COLUMNS, row

from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.core.metric_table import METRICS
from collapsebench.leaderboard.answer import answer
from collapsebench.leaderboard.build_info import detect_build, https_remote
from collapsebench.leaderboard.settings import GpuAnchor, SiteSettings, site_settings
from collapsebench.leaderboard.site import figure_order, link_results_paths
from collapsebench.leaderboard.store import ImageStore
from collapsebench.reporting.rows import parse

ANCHORS = (GpuAnchor("Test GPU 80GB", 80, 0.5), GpuAnchor("Small GPU 16GB", 16, 0.1))
COMMIT = "c5cc7c6909e8bacbfcd0c6c42fd3e6e67a17d119"
API_YAML = """schema_version: 1
name: {name}
display_name: "{display}"
kind: model
authors: [Test Provider]
license: proprietary
description: A closed model behind a paid API.
code: https://example.org/docs
adapter: api
runner: api
api:
  provider: openai
  model: test-image-1
  price_usd_per_image: {price}
  price_date: "2026-12-01"
  docs: https://example.org/docs/api
reference_limit: 4
settings:
  size: 1024x1024
gpu_memory_gb: 0
"""
EXTRA = ["origin", "access", "refusal_rate"]


def reproduced(model: str, display: str, n: int, scr: str, rank: str, origin: str, access: str = "open",
               refusal: str = "") -> dict[str, str]:
    values = row(model, display=display, n=n, dinov2="0.400", dinov2_interval=("0.38", "0.42"), scr=scr,
                 interval=(f"{float(scr) - 0.05:.3f}", f"{float(scr) + 0.05:.3f}"), rank=rank, dinov2_rank=rank)
    return values | {"origin": origin, "access": access, "refusal_rate": refusal}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("entries")
    results, models = root / "results", root / "models"
    results.mkdir()
    for entry in ("mosaic", "flux2-klein-4b", "psr", "collage"):
        shutil.copytree(REPO / "models" / entry, models / entry)
    for name, display, price in (("apix", "API X", "0.1"), ("apiy", "API Y", "0.2")):
        (models / name).mkdir()
        (models / name / "model.yaml").write_text(API_YAML.format(name=name, display=display, price=price),
                                                   encoding="utf-8")
    (root / "docker" / "mosaic").mkdir(parents=True)
    (root / "docker" / "mosaic" / "Dockerfile").write_text(
        f"FROM base\nARG UPSTREAM_REPO=https://example.org/MOSAIC.git\nARG UPSTREAM_COMMIT={COMMIT}\n",
        encoding="utf-8")
    (root / "submissions" / "latecomer").mkdir(parents=True)
    rows = [row("MOSAIC", "reported", dinov2="0.425", scr="0.489"),
            row("XVerse", "reported", dinov2="0.355", scr="0.589"),
            row("MOSAIC", "reported", n=4, dinov2="0.235", scr="0.817"),
            row("XVerse", "reported", n=4, dinov2="0.211", scr="0.800"),
            reproduced("mosaic", "MOSAIC", 2, "0.450", "1", "workflow"),
            reproduced("flux", "FLUX", 2, "0.700", "2", "submitted"),
            reproduced("apix", "API X", 2, "0.690", "2", "workflow", "closed-api", "0.1"),
            reproduced("ghost", "Ghost", 2, "0.010", "1", "unverified"),
            reproduced("mosaic", "MOSAIC", 4, "0.800", "2", "workflow"),
            reproduced("flux", "FLUX", 4, "0.810", "2", "submitted"),
            reproduced("apix", "API X", 4, "0.500", "1", "workflow", "closed-api", "0.2"),
            reproduced("ghost", "Ghost", 4, "0.020", "1", "unverified")]
    with open(results / "table1.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS + EXTRA)
        writer.writeheader()
        writer.writerows({key: value for key, value in r.items()} | {k: r.get(k, "") for k in EXTRA} for r in rows)
    (results / "preflight").mkdir()
    (results / "preflight" / "flux2-klein-4b.json").write_text(json.dumps({
        "model": "flux2-klein-4b", "date": "2026-12-02", "passed": True, "reason": "",
        "pins": {"pipeline": {"repo": "black-forest-labs/FLUX.2-klein-4B", "revision": "e7b7dc2"}},
        "versions": {"diffusers": "0.42.1"},
        "checks": [{"n_subjects": 2, "check": "references received", "passed": True, "detail": "2 of 2"},
                   {"n_subjects": 10, "check": "image size", "passed": True, "detail": "32x32"}]}),
        encoding="utf-8")
    (results / "preflight" / "apiy.json").write_text("{not json", encoding="utf-8")
    return build(results, root / "public", models_dir=models, submissions_dir=root / "submissions",
                 settings=SiteSettings(gpu_anchors=ANCHORS))


def read(site: Path, page: str) -> str:
    return (site / page).read_text(encoding="utf-8")


def test_every_entry_has_a_page_and_every_name_links_to_one(site: Path) -> None:
    pages = {p.name for p in (site / "models").glob("*.html")}
    assert pages == {f"{name}.html" for name in ("mosaic", "flux2-klein-4b", "psr", "collage", "apix", "apiy",
                                                  "latecomer", "flux", "ghost", "paper-XVerse")}
    index = read(site, "index.html")
    pending = index.split('<ul class="pending">')[1].split("</ul>")[0]
    for name in ("flux2-klein-4b", "apiy", "latecomer", "collage"):
        assert f'<a href="models/{name}.html"><strong>' in pending, name
    assert "psr" not in pending and "mosaic" not in pending  # paper-only and reproduced: not pending
    summary = index.split('id="t-summary"')[1].split("</table>")[0]
    assert '<a href="models/mosaic.html">MOSAIC</a> <span class="tag paper">paper</span>' in summary
    assert '<a href="models/paper-XVerse.html">XVerse</a>' in summary  # no entry: a page for the paper row
    psr = read(site, "models/psr.html")
    assert "Only the paper's printed numbers exist: no public weights or inference code" in psr
    assert "has not been imported yet" in read(site, "models/latecomer.html")
    assert check_links(site) > 100


def test_a_pending_page_says_what_a_run_needs_and_how_to_make_the_row(site: Path) -> None:
    page = read(site, "models/flux2-klein-4b.html")
    run = page.split('<section id="run"')[1].split("</section>")[0]
    assert "20 GB for one generation" in run and "docker/diffusers/Dockerfile" in run
    assert "black-forest-labs/FLUX.2-klein-4B @ e7b7dc27f91deacad38e78976d1f2b499d76a294" in run
    # 4 steps x 1.048576 MP x 0.5 s = 2.1 s per image; x 225 = 0.13 hours; the 16 GB class cannot hold it
    assert "estimated:</span> 0.13 GPU-hours on one Test GPU 80GB (2.1 s per image)" in run
    assert "Small GPU" not in run and "Estimate: 225 images" in run
    yourself = page.split('<section id="yourself"')[1].split("</section>")[0]
    assert ("dvc exp run -S suite.pool=data-xversebench -S scoring.profile=real -S scoring.runner=docker "
            "-S report.runner=docker -S &#39;models=[flux2-klein-4b]&#39;") in yourself
    assert "collapsebench weights pull flux2-klein-4b --scoring" in yourself
    assert "<code>submissions/flux2-klein-4b/</code>" in yourself
    assert f'<a href="{BUILD.repository}/blob/{"a" * 40}/CONTRIBUTING.md">' in yourself
    assert f'<a href="{BUILD.repository}">repository</a>' in yourself
    preflight = page.split('<section id="preflight"')[1].split("</section>")[0]
    assert "passed</span> on 2026-12-02" in preflight and "references received" in preflight
    assert "<th scope=\"row\">pipeline.repo</th><td><code>black-forest-labs/FLUX.2-klein-4B</code>" in preflight
    assert "preflight passed on 2026-12-02" in read(site, "index.html")


def test_a_model_page_shows_the_papers_rows_and_the_pinned_upstream_commit(site: Path) -> None:
    page = read(site, "models/mosaic.html")
    paper = table_html(page, "t-paper")
    assert "48.9%" in paper and "81.7%" in paper and 'class="ci"' not in paper
    assert f"https://example.org/MOSAIC.git @ {COMMIT}" in page
    assert "ByteDance-FanQie/MOSAIC @ not pinned: the commit loaded is recorded" in page
    assert 'href="../index.html#summary-paper-MOSAIC"' in page


def test_rows_carry_their_origin_and_an_unverified_row_is_never_ranked(site: Path) -> None:
    index = read(site, "index.html")
    table = table_html(index, "t-reproduced")
    assert 'title="scored by our GPU workflow">our GPU run</a>' in table
    assert 'title="submitted images, re-scored by our workflow">submitted, re-scored</a>' in table
    assert 'title="present without provenance: not ranked">no provenance</a>' in table
    headers = header_labels(table)
    ghost = [cells_of(r) for r in data_rows(table) if "Ghost" in r]
    ranks = [i for i, h in enumerate(headers) if h == "rank"]
    assert ghost and all(cells[i] == "" for cells in ghost for i in ranks)  # rank 1 in the csv, none shown
    summary = re.search(r'<tr id="summary-ours-ghost[^"]*"[^>]*>(.*?)</tr>', index, re.S).group(1)
    assert '<span class="badge">' not in summary
    card = read(site, "models/ghost.html")
    assert "rank @" not in card and "present without provenance: not ranked." in card
    assert "Ghost" not in index.split('<ul class="answer">')[1].split("</ul>")[0].split("At N =")[0]  # never a leader


def test_the_site_labels_every_origin_the_report_writes() -> None:
    from collapsebench.leaderboard.labels import ORIGINS as LABELLED
    from collapsebench.reporting.origin import ORIGINS as WRITTEN

    assert set(LABELLED) == set(WRITTEN)


def test_a_closed_api_row_is_ranked_with_the_label_beside_its_rank_and_its_cost(site: Path) -> None:
    table = table_html(read(site, "index.html"), "t-reproduced")
    api = [r for r in data_rows(table) if "API X" in r]
    assert api and all('closed API: not reproducible, dated</a>' in r for r in api)  # beside the name
    assert all(re.search(r'data-sort="[12]"[^>]*>=?[12] <a class="tag api"', r) for r in api)  # beside the rank
    assert "refused" in header_labels(table) and "20.0%" in table  # the refusal rate column
    page = read(site, "models/apix.html")
    assert "API cost of these rows: about <strong>$9.00</strong> (90 images" in page
    pending = read(site, "models/apiy.html")
    assert "about $45.00</strong>: 225 images" in pending and "GPU memory</dt><dd>none: the provider runs it" in pending
    assert "could not be read" in pending and "treated as not passed" in pending
    card = read(site, "index.html").split('<li id="pending-apiy">')[1].split("</li>")[0]
    assert "a full run costs about $45.00" in card and "closed API: not reproducible, dated</a>" in card


def test_the_answer_names_the_leader_per_n_with_its_source(site: Path) -> None:
    text = (site.parent / "results" / "table1.csv").read_text(encoding="utf-8")
    sentences = answer(parse(list(csv.DictReader(text.splitlines()))))
    texts = {s.n: "; ".join(s.parts) for s in sentences}
    assert texts[2] == ("MOSAIC 45.0% [40.0, 50.0] ranked first (reproduced); MOSAIC 48.9%, then XVerse 58.9% "
                        "(paper, as printed)")
    assert texts[4].startswith("API X 50.0% [45.0, 55.0] ranked first (closed API: not reproducible, dated); "
                               "XVerse 80.0% \u2248 MOSAIC 81.7% (paper, as printed; too close to call)")
    assert texts[None] == "At N = 4 every model shown loses 2.0% to 81.7% of the requested identities."
    html = read(site, "index.html")
    assert html.index('<ul class="answer">') < html.index('id="t-summary"') < html.index('id="glossary"')


def test_every_column_is_defined_on_the_metrics_page_and_headers_say_which_way_is_better(site: Path) -> None:
    metrics = read(site, "metrics.html")
    for metric in METRICS:
        assert f'<dt id="col-{metric.column}">{metric.label}' in metrics, metric.column
    for key in ("refusal_rate", "n_images", "pool"):
        assert f'id="col-{key}"' in metrics
    table = table_html(read(site, "index.html"), "t-reproduced")
    for label in re.findall(r'<span class="label">([^<]*)</span>', table.split("</thead>")[0]):
        if label.split(" ")[0] not in ("model", "rank", "images", "pool"):
            assert label.endswith(("\u2191", "\u2193")), label
    assert 'href="metrics.html#col-scr_0.4" aria-label="What SCR@0.4 \u2193 means">?</a>' in table
    assert 'class="allcols-box"' in read(site, "index.html") and 'class="num extra"' in table
    glossary = read(site, "index.html").split('id="glossary"')[1].split("</section>")[0]
    for term in ("g-scr", "g-dinov2", "g-pinned", "g-smoke", "g-custom", "g-calibration", "g-interval", "g-ranked",
                 "g-incomplete", "g-origin", "g-closed-api", "g-pool"):
        assert f'id="{term}"' in glossary, term


def test_the_repository_comes_from_params_or_the_git_remote_never_with_credentials(tmp_path: Path) -> None:
    settings = site_settings({"site": {"repository": "https://example.org/o/r/", "gpu_anchors": [
        {"gpu": "G", "memory_gb": 24, "seconds_per_step_megapixel": 0.7}]}})
    assert settings == SiteSettings("https://example.org/o/r", (GpuAnchor("G", 24.0, 0.7),))
    for bad in ({"repository": "git@host:o/r"}, {"gpu_anchors": [{"gpu": "G"}]},
                {"gpu_anchors": [{"gpu": "G", "memory_gb": 0, "seconds_per_step_megapixel": 1}]}):
        with pytest.raises(BenchError, match="params.yaml site"):
            site_settings({"site": bad})
    ci = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "ci/repo"}
    assert detect_build(tmp_path, ci, repository="https://example.org/o/r").repository == "https://example.org/o/r"
    assert detect_build(tmp_path, ci).repository == "https://github.com/ci/repo"
    assert https_remote("git@github.com:o/r.git") == "https://github.com/o/r"
    assert https_remote("https://user:ghp_secret@github.com/o/r.git") == "https://github.com/o/r"
    assert https_remote("ssh://git@example.org/o/r") == "https://example.org/o/r"
    assert https_remote("/some/local/path") is None and https_remote("") is None


def test_cli_site_links_the_repository_of_params_yaml(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    (tmp_path / "params.yaml").write_text("suite:\n  pool: no-pool\nsite:\n  repository: https://example.org/o/r\n",
                                          encoding="utf-8")
    code = main(["--params", str(tmp_path / "params.yaml"), "--results", str(shared_results(tmp_path_factory, PAPER)),
                 "--models-dir", str(tmp_path / "models"), "site", "--out", str(tmp_path / "public"),
                 "--site-dir", str(REPO / "site"), "--contributing", str(tmp_path / "none.md")])
    assert code == 0
    for page in ("index.html", "submit.html", "models/alpha.html"):
        html = read(tmp_path / "public", page)
        assert '<a href="https://example.org/o/r">Repository</a>' in html.split("</header>")[0], page
        assert "Repository: <a href=\"https://example.org/o/r\">" in html.split("<footer>")[1], page
    assert 'in <a href="https://example.org/o/r">the repository</a>' in read(tmp_path / "public", "submit.html")


def test_resized_variants_feed_srcset_and_the_full_image_keeps_its_resolution(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    wide = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 1024, 3), dtype=np.uint8)).save(wide)
    published = ImageStore(tmp_path / "site").publish(wide)
    assert [width for _, width in published.variants] == [240, 480, 1024]
    assert published.variants[-1][0] == published.full and (published.width, published.height) == (240, 120)
    with Image.open(tmp_path / "site" / published.full) as full:
        assert full.size == (1024, 512)
    results = tmp_path / "results"
    shutil.copytree(shared_results(tmp_path_factory, PAPER), results)
    shutil.copyfile(wide, results / "models" / "alpha" / "images" / "p01_s0.png")
    page = read(build(results, tmp_path / "public"), "gallery-n2.html")
    assert re.search(r'srcset="thumbs/\w+-240\.webp 240w, thumbs/\w+-480\.webp 480w, images/\w+\.webp 1024w" '
                     r'sizes="\(max-width: 48rem\) 44vw, 240px" alt="Alpha model: prompt 1, seed 0"', page)


def test_figures_come_in_order_and_captions_link_the_published_data() -> None:
    stems = [{"stem": s, "smoke": s.startswith("smoke_")} for s in
             ("fig4_trends", "smoke_fig1_illusion", "scr_vs_threshold", "fig5_radar", "fig1_illusion")]
    assert [e["stem"] for e in sorted(stems, key=figure_order)] == [
        "fig1_illusion", "fig4_trends", "fig5_radar", "scr_vs_threshold", "smoke_fig1_illusion"]
    from collapsebench.leaderboard.downloads import Download

    linked = str(link_results_paths("Values: results/validity.md. Raw: results/missing.csv <b>", {
        "validity.md": Download("validity.md", "data/validity.md", 1)}, "../"))
    assert linked == ('Values: <a href="../data/validity.md"><code>results/validity.md</code></a>. Raw: '
                      "results/missing.csv &lt;b&gt;")


def test_cosmetics_favicon_and_a_flat_scoring_record(tmp_path_factory: pytest.TempPathFactory) -> None:
    from test_site import synthetic_site

    public = synthetic_site(tmp_path_factory, "cosmetics")
    assert '<link rel="icon" href="static/favicon.svg" type="image/svg+xml">' in read(public, "index.html")
    assert (public / "static" / "favicon.svg").is_file()
    assert 'title="made by this checkout&#39;s own run">local run</a>' in table_html(read(public, "index.html"),
                                                                                   "t-reproduced")  # no origin column
    scoring = read(public, "models/alpha.html").split('id="scoring"')[1].split("</table>")[0]
    assert '<th scope="row">backbones.dinov2</th><td><code>real-dinov2</code>' in scoring and "{" not in scoring
