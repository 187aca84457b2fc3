"""What every reader expects besides the numbers: downloads that are the report's files, the paper and the
repository, how to cite, when and from which commit the site was built, CONTRIBUTING as HTML, and figures whose
captions and alt text describe only what is drawn."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timezone
from pathlib import Path

import pytest
from conftest import make_pool
from synthetic_results import MODELS, shared_results
from test_site import BUILD, PAPER, REPO, build, check_links

from collapsebench.benchmark.pool import load_pool
from collapsebench.leaderboard.build_info import (
    PAPER_ARXIV,
    PAPER_TITLE,
    benchmark_bibtex,
    detect_build,
    paper_bibtex,
)
from collapsebench.leaderboard.markdown import render_markdown
from collapsebench.reporting.figures import draw_figures


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_results(tmp_path_factory, PAPER)


@pytest.fixture(scope="module")
def built(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("basics")
    (root / "CONTRIBUTING.md").write_text((REPO / "CONTRIBUTING.md").read_text(encoding="utf-8"), encoding="utf-8")
    return build(results, root / "public", pool=load_pool(make_pool(root / "data", count=16, size=64)),
                 contributing=root / "CONTRIBUTING.md")


def test_every_table_and_each_models_files_are_published_byte_for_byte(results: Path, built: Path) -> None:
    tables = [p for p in results.rglob("*") if p.suffix in (".csv", ".json", ".md")
              and p.relative_to(results).parts[0] not in ("models", "figures")]
    assert {p.name for p in tables} >= {"table1.csv", "per_scene.csv", "coverage.csv", "metrics.json",
                                        "scr_sweep.csv"}
    assert not (built / "data" / "figures").exists()  # figures have their own page
    for path in tables:
        assert (built / "data" / path.relative_to(results)).read_bytes() == path.read_bytes(), path
    index = (built / "index.html").read_text(encoding="utf-8")
    downloads = index.split('id="downloads"')[1].split("</section>")[0]
    assert all(f'href="data/{p.relative_to(results).as_posix()}"' in downloads for p in tables)
    for model in MODELS:
        card = (built / "models" / f"{model}.html").read_text(encoding="utf-8")
        for name in ("scores.csv", "manifest.jsonl", "scoring.json"):
            source = results / "models" / model / name
            assert (built / "data" / "models" / model / name).read_bytes() == source.read_bytes()
            assert f'href="../data/models/{model}/{name}"' in card


def table_note(html: str, table_id: str) -> str:
    return re.search(rf'<p class="table-note" id="{table_id}-note">(.*?)</p>', html, re.S).group(1)


def test_each_table_links_its_data(built: Path, results: Path, tmp_path: Path) -> None:
    index = (built / "index.html").read_text(encoding="utf-8")
    for table_id in ("t-reproduced", "t-smoke"):
        assert 'href="data/table1.csv"' in table_note(index, table_id), table_id
    legend = index.split('id="summary-legend"')[1].split("</p>")[0]
    assert 'href="data/table1.csv"' in legend  # the paper's rows are in table1.csv too
    shutil.copytree(results, tmp_path / "results")
    (tmp_path / "results" / "reported").mkdir()
    shutil.copyfile(PAPER, tmp_path / "results" / "reported" / "paper_table1.csv")
    with_paper = (build(tmp_path / "results", tmp_path / "public") / "index.html").read_text(encoding="utf-8")
    assert 'href="data/reported/paper_table1.csv"' in with_paper.split('id="summary-legend"')[1].split("</p>")[0]
    assert (tmp_path / "public" / "data" / "reported" / "paper_table1.csv").read_bytes() == PAPER.read_bytes()
    scenes = (built / "scenes.html").read_text(encoding="utf-8")
    assert 'id="t-scenes-note">' in scenes and 'href="data/per_scene.csv"' in scenes
    assert 'href="../data/table1.csv"' in (built / "models" / "alpha.html").read_text(encoding="utf-8")


def test_header_and_footer_name_the_paper_repository_build_date_and_commit(built: Path) -> None:
    for page in ("index.html", "gallery.html", "models/alpha.html", "submit.html"):
        html = (built / page).read_text(encoding="utf-8")
        header, footer = html.split("</header>")[0], html.split("<footer>")[1]
        assert f'<a href="https://arxiv.org/abs/{PAPER_ARXIV}">Paper (arXiv {PAPER_ARXIV})</a>' in header, page
        assert f'<a href="{BUILD.repository}">Repository</a>' in header, page
        assert "Built 2026-03-27 12:00 UTC by collapsebench 9.9.9" in footer, page
        assert f'<a href="{BUILD.repository}/commit/{"a" * 40}"><code>{"a" * 12}</code></a>' in footer, page
        assert html.index('<a class="skip" href="#main">') < html.index("<header") and 'id="main"' in html


def test_two_bibtex_boxes_one_for_the_paper_one_for_this_build(built: Path) -> None:
    cite = (built / "index.html").read_text(encoding="utf-8").split('<section id="cite"')[1].split("</section>")[0]
    boxes = re.findall(r'<pre class="bibtex" id="([^"]+)" tabindex="0">(.*?)</pre>', cite, re.S)
    assert [name for name, _ in boxes] == ["bibtex-paper", "bibtex-benchmark"]
    assert PAPER_TITLE in boxes[0][1] and f"eprint        = {{{PAPER_ARXIV}}}" in boxes[0][1]
    assert "author" not in boxes[0][1]  # the repository does not record the paper's authors: never guessed
    assert f"\\url{{{BUILD.repository}}}" in boxes[1][1] and f"commit {'a' * 12}" in boxes[1][1]
    assert boxes[0][1] == paper_bibtex().replace('"', "&#34;") and "Version 9.9.9" in benchmark_bibtex(BUILD)


def test_build_facts_come_from_ci_variables_then_git_never_guessed(tmp_path: Path) -> None:
    ci = detect_build(tmp_path, {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
                                 "GITHUB_SHA": "b" * 40, "SOURCE_DATE_EPOCH": "1774612800"})
    assert (ci.repository, ci.commit, ci.dirty) == ("https://github.com/o/r", "b" * 40, False)
    assert ci.built.tzinfo == timezone.utc and ci.built_text == "2026-03-27 12:00 UTC"
    assert ci.repository_file("CONTRIBUTING.md") == f"https://github.com/o/r/blob/{'b' * 40}/CONTRIBUTING.md"
    local = detect_build(tmp_path, {})  # not a checkout, no CI, no Project-URL in this environment's metadata
    assert local.commit is None and local.commit_url is None and local.repository_file("x") is None


def test_contributing_is_rendered_as_html_with_links_into_the_repository(built: Path) -> None:
    submit = (built / "submit.html").read_text(encoding="utf-8")
    section = submit.split('<section class="contributing"')[1].split("</section>")[0]
    assert "<h2>Contributing a model to the collapsebench leaderboard</h2>" in section  # one h1 per page
    assert "<table>" in section and "<pre><code" in section and "<strong>" in section
    assert "# Contributing" not in section and "**" not in section  # no raw Markdown left
    assert f'<a href="{BUILD.repository}/blob/{"a" * 40}/CONTRIBUTING.md"><code>CONTRIBUTING.md</code> in the ' \
           "repository</a>" in submit


def test_markdown_keeps_html_out_and_links_inside_the_repository() -> None:
    text = ("# Title\n\nSee [the README](README.md#set-up), [below](#title), [site](https://example.org) and "
            "![a diagram](docs/d.png). <script>alert(1)</script>\n")
    linked = str(render_markdown(text, lambda path: f"https://github.com/o/r/blob/HEAD/{path}"))
    assert '<a href="https://github.com/o/r/blob/HEAD/README.md#set-up">the README</a>' in linked
    assert "below" in linked and 'href="#title"' not in linked  # rendered headings carry no ids
    assert '<a href="https://example.org">site</a>' in linked
    assert "<img" not in linked and "a diagram" in linked  # nothing loaded from outside the site
    assert "<script>" not in linked and "&lt;script&gt;" in linked
    unlinked = str(render_markdown(text, lambda path: None))
    assert "README.md" not in unlinked and "the README" in unlinked and "<h2>Title</h2>" in unlinked


def test_captions_describe_only_what_each_figure_draws(results: Path, tmp_path: Path) -> None:
    paper_only = tmp_path / "results"
    (paper_only / "reported").mkdir(parents=True)
    table = (results / "table1.csv").read_text(encoding="utf-8").splitlines()
    (paper_only / "table1.csv").write_text("\n".join([table[0]] + [line for line in table[1:] if ",reported," in line])
                                           + "\n", encoding="utf-8")
    captions = {e["stem"]: e["caption"] for e in draw_figures(paper_only)}
    assert "Dashed lines, open markers: numbers printed in the paper" in captions["fig4_trends"]
    for caption in captions.values():  # no reproduced row, no interval: no solid line, no band, no stroke
        assert "Solid" not in caption and "Shaded" not in caption and "strokes" not in caption.lower(), caption
    full = {e["stem"]: e["caption"] for e in json.loads((results / "figures" / "figures.json").read_text())}
    assert "Solid lines: reproduced here." in full["fig4_trends"] and "Shaded bands" in full["fig4_trends"]
    assert "Curves: reproduced here." in full["scr_vs_threshold"] and "Diamonds" in full["scr_vs_threshold"]


def test_smoke_figures_have_their_own_alt_text_and_the_metrics_page_links_figures_that_exist(built: Path) -> None:
    figures = (built / "figures.html").read_text(encoding="utf-8")
    alts = dict(re.findall(r'<figure class="plot" id="([^"]+)">.*?alt="([^"]+)"', figures, re.S))
    assert alts["smoke_fig4_trends"] != alts["fig4_trends"]
    assert "pipeline check drawn from smoke-backbone rows" in alts["smoke_fig4_trends"]
    assert "smoke" not in alts["fig4_trends"]
    assert 'width="' in figures and "--min-width:" in figures  # readable on a phone: never squeezed below 55%
    metrics = (built / "metrics.html").read_text(encoding="utf-8")
    assert 'href="figures.html#scr_vs_threshold"' in metrics and 'href="figures.html#fig1_illusion"' in metrics
    assert check_links(built) > 100
