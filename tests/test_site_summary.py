"""The home page's per-N summary (paper rows and ours side by side, best per N marked, ties said) and the fences
that keep smoke, custom and incomplete rows from ever carrying a rank, on every page."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
from synthetic_results import shared_results
from test_site import PAPER, REPO, build, cells_of, data_rows, table_html

COLUMNS = ["model", "display_name", "kind", "n_subjects", "source", "backbones", "pool", "generated_by", "dinov2",
           "dinov2_lo", "dinov2_hi", "scr_0.4", "scr_0.4_lo", "scr_0.4_hi", "scr_0.5", "scr_0.5_lo", "scr_0.5_hi",
           "scr_0.6", "scr_0.6_lo", "scr_0.6_hi", "rank_dinov2", "rank_scr_0.4", "rank_scr_0.5", "rank_scr_0.6",
           "n_images"]


def row(model: str, source: str = "reproduced", backbones: str = "real", n: int = 2, dinov2: str = "",
        scr: str = "", interval: tuple[str, str] = ("", ""), rank: str = "",
        dinov2_interval: tuple[str, str] = ("", ""), dinov2_rank: str = "", display: str = "",
        kind: str = "model") -> dict[str, str]:
    """One table1.csv row; reproduced rows get the same numbers at every tau (enough for these tests)."""
    values = {"model": model, "display_name": display or model, "kind": kind if source == "reproduced" else "reported",
              "n_subjects": str(n), "source": source, "backbones": backbones if source == "reproduced" else "paper",
              "pool": "pool-demo" if source == "reproduced" else "", "generated_by": "collapsebench", "dinov2": dinov2,
              "dinov2_lo": dinov2_interval[0], "dinov2_hi": dinov2_interval[1], "rank_dinov2": dinov2_rank,
              "n_images": "45" if source == "reproduced" else ""}
    for tau in ("0.4", "0.5", "0.6"):
        printed = source == "reproduced" or tau == "0.4"
        values |= {f"scr_{tau}": scr if printed else "", f"scr_{tau}_lo": interval[0], f"scr_{tau}_hi": interval[1],
                   f"rank_scr_{tau}": rank}
    return values


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Paper rows for MOSAIC and XVerse; our MOSAIC (tied first on SCR with flux, alone first on DINOv2); smoke,
    custom and incomplete rows that carry ranks in table1.csv and must never show one."""
    results = tmp_path_factory.mktemp("summary") / "results"
    results.mkdir()
    rows = [
        row("MOSAIC", "reported", dinov2="0.425", scr="0.489"),
        row("XVerse", "reported", dinov2="0.355", scr="0.589"),
        row("MOSAIC", "reported", n=4, dinov2="0.235", scr="0.817"),
        row("XVerse", "reported", n=4, dinov2="0.211", scr="0.800"),
        row("mosaic", display="MOSAIC", dinov2="0.430", dinov2_interval=("0.428", "0.440"), dinov2_rank="1",
            scr="0.450", interval=("0.400", "0.520"), rank="1"),
        row("flux", display="FLUX", dinov2="0.300", dinov2_interval=("0.280", "0.320"), dinov2_rank="2",
            scr="0.470", interval=("0.410", "0.550"), rank="1"),
        row("late", display="Late model", dinov2="0.900", dinov2_interval=("0.890", "0.910"), dinov2_rank="1",
            scr="0.010", interval=("0.0", "0.02"), rank="1"),
        row("smokey", backbones="smoke", display="Smokey", dinov2="0.990", scr="0.0", interval=("0.0", "0.0"),
            rank="1"),
        row("tailored", backbones="custom", display="Tailored", dinov2="0.990", scr="0.0", interval=("0.0", "0.0"),
            rank="1"),
    ]
    with open(results / "table1.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with open(results / "coverage.csv", "w", newline="", encoding="utf-8") as handle:
        handle.write("model,n_subjects,n_images,n_expected,complete,missing\nlate,2,44,45,false,p03_s1\n"
                     "mosaic,2,45,45,true,\nflux,2,45,45,true,\n")
    return build(results, results.parent / "public")


def summary_line(html: str, line_id: str) -> str:
    match = re.search(rf'<tr id="{line_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, line_id
    return match.group(1)


def test_models_down_counts_across_with_scr_and_dinov2(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    summary = html.split('id="t-summary"')[1].split("</table>")[0]
    assert re.findall(r'class="count plain">N = (\d+)</th>', summary) == ["2", "4"]
    assert re.findall(r'class="count detail">N = (\d+)</th>', summary) == ["2", "4"]  # with CLIP-I and CLIP-T
    assert summary.count("DINOv2 &uarr;") == 2 and summary.count("SCR@") >= 2
    labels = re.findall(r'<tr id="(summary-[^"]+)"', summary)
    # MOSAIC's paper line and ours share one group (tbody), paper first; smoke and custom rows never enter
    assert labels == ["summary-ours-flux-pool-demo", "summary-ours-late-pool-demo", "summary-paper-MOSAIC",
                      "summary-ours-mosaic-pool-demo", "summary-paper-XVerse"]
    groups = re.findall(r"<tbody>(.*?)</tbody>", summary, re.S)
    assert any("summary-paper-MOSAIC" in g and "summary-ours-mosaic-pool-demo" in g for g in groups)
    assert "Smokey" not in summary and "Tailored" not in summary


def test_best_per_count_is_marked_and_a_shared_lead_says_so(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    ours, flux = summary_line(html, "summary-ours-mosaic-pool-demo"), summary_line(html, "summary-ours-flux-pool-demo")
    assert re.search(r'class="mark tau tau-04 tied" title="tied for first with FLUX[^"]*">45\.0% '
                     r'<span class="badge">=1</span>', ours)
    assert re.search(r'class="mark tau tau-04 tied" title="tied for first with MOSAIC', flux)
    assert re.search(r'class="mark lead"[^>]*>0\.430 <span class="badge">\u2605</span>', ours)  # alone first
    assert '<span class="badge">' not in summary_line(html, "summary-ours-late-pool-demo")  # incomplete: unmarked


def test_paper_values_are_marked_as_printed_never_ranked_and_not_printed_at_other_taus(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    paper = summary_line(html, "summary-paper-MOSAIC")
    assert re.search(r'class="mark tau tau-04 printed-best" title="best printed value at this count; the paper '
                     r'gives no interval, so it is not a rank">48\.9% <span class="badge">\u25c7</span>', paper)
    assert paper.count("not printed") == 2 * 2  # SCR@0.5 and @0.6 at both counts
    xverse = summary_line(html, "summary-paper-XVerse")
    assert "80.0% <span class=\"badge\">\u25c7</span>" in xverse and "58.9% <span" not in xverse
    legend = html.split('id="summary-legend"')[1].split("</p>")[0]
    assert "best value the paper printed at that N (no interval, so not a rank)" in legend
    answer = html.split('<ul class="answer">')[1].split("</ul>")[0]
    assert "<strong>N = 4:</strong> XVerse 80.0% \u2248 MOSAIC 81.7% (paper, as printed; too close to call)" in answer


def test_ours_shows_the_gap_to_the_paper_and_whether_the_paper_is_inside_our_interval(site: Path) -> None:
    ours = summary_line((site / "index.html").read_text(encoding="utf-8"), "summary-ours-mosaic-pool-demo")
    assert '<span class="delta inside">\u0394 -3.9 pts vs paper: inside our interval</span>' in ours
    assert '<span class="delta outside">\u0394 +0.005 vs paper: outside our interval</span>' in ours
    assert "delta" not in summary_line((site / "index.html").read_text(encoding="utf-8"),
                                       "summary-ours-flux-pool-demo")  # no paper twin


def test_smoke_custom_and_incomplete_rows_carry_no_rank_on_any_page(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    for table_id in ("t-smoke", "t-custom"):
        table = table_html(index, table_id)
        assert "rank @" not in table, table_id
    reproduced = table_html(index, "t-reproduced")
    late = next(r for r in data_rows(reproduced) if "Late model" in r)
    headers = cells_of(reproduced.split("</thead>")[0])
    ranks = [cells_of(late)[i] for i, h in enumerate(headers) if h.startswith("rank @")]
    assert ranks == ["", "", ""] and "incomplete: 44 of 45 images (N=2: 44 of 45); not ranked" in late
    for card in ("smokey", "tailored", "late"):
        html = (site / "models" / f"{card}.html").read_text(encoding="utf-8")
        assert "rank @" not in html and ">=1<" not in html and "\u2605" not in html, card
    assert "rank @0.4" in (site / "models" / "mosaic.html").read_text(encoding="utf-8")


def test_the_synthetic_smoke_model_is_fenced_on_its_card(tmp_path: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    results = tmp_path / "results"
    shutil.copytree(shared_results(tmp_path_factory, PAPER), results)
    public = build(results, tmp_path / "public", models_dir=REPO / "models")  # collage's real model.yaml
    card = (public / "models" / "collage.html").read_text(encoding="utf-8")
    results_section = card.split('<section id="results"')[1].split("</section>")[0]
    assert 'class="smoke-section"' in results_section and "none of them is ranked" in results_section
    assert "rank @" not in results_section
    assert "<strong>What it is meant to show (with the pinned backbones):</strong> The subject references" in card
