"""The figures: drawn from results/ files only, PNG + SVG, deterministic, smoke rows kept apart and watermarked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from synthetic_results import shared_results, write_results

from collapsebench.reporting.figures import WATERMARK, draw_figures

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "results" / "reported" / "paper_table1.csv"
STEMS = ("fig4_trends", "fig5_radar", "fig1_illusion", "scr_vs_threshold", "per_scene_heatmap")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_results(tmp_path_factory, PAPER)


def test_every_figure_is_a_nonblank_png_and_an_svg(results: Path) -> None:
    folder = results / "figures"
    for stem in STEMS + tuple(f"smoke_{s}" for s in STEMS):
        png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
        assert png.stat().st_size > 5000 and svg.stat().st_size > 5000, stem
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200
            assert sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3 > 10, f"{stem}.png looks blank"
        assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_smoke_rows_only_in_watermarked_figures(results: Path) -> None:
    folder = results / "figures"
    for stem in STEMS:
        leaderboard = (folder / f"{stem}.svg").read_text(encoding="utf-8")
        smoke = (folder / f"smoke_{stem}.svg").read_text(encoding="utf-8")
        assert "collage" not in leaderboard and "SMOKE" not in leaderboard, stem
        assert "alpha" in leaderboard, stem  # a real-backbone model is drawn
        assert WATERMARK.split(" \u2014")[0] in smoke and "collage" in smoke, stem
        assert "alpha" not in smoke, stem


def test_paper_rows_are_dashed_companions_not_smoke(results: Path) -> None:
    trends = (results / "figures" / "fig4_trends.svg").read_text(encoding="utf-8")
    assert "MOSAIC (paper)" in trends and "alpha" in trends


def test_figures_index_captions_name_missing_radar_axes(results: Path) -> None:
    index = json.loads((results / "figures" / "figures.json").read_text(encoding="utf-8"))
    by_stem = {entry["stem"]: entry for entry in index}
    assert set(by_stem) == set(STEMS) | {f"smoke_{s}" for s in STEMS} | {"validity"}  # study: real rows only
    radar = by_stem["fig5_radar"]["caption"]
    assert "MOSAIC (paper) has no DINO" in radar and "alpha has no" not in radar
    assert all(entry["smoke"] == entry["stem"].startswith("smoke_") for entry in index)
    assert all(WATERMARK in entry["caption"] for entry in index if entry["smoke"])


def test_redrawing_gives_identical_bytes_and_drops_stale_files(results: Path, tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    (copy / "figures" / "old_figure.png").write_bytes(b"stale")
    draw_figures(copy)
    assert not (copy / "figures" / "old_figure.png").exists()
    for stem in STEMS:
        for fmt in ("png", "svg"):
            name = f"{stem}.{fmt}"
            assert (copy / "figures" / name).read_bytes() == (results / "figures" / name).read_bytes(), name


def test_only_smoke_rows_give_only_watermarked_model_figures(tmp_path: Path) -> None:
    empty_paper = tmp_path / "paper.csv"
    empty_paper.write_text("model,n_subjects,clip_t,clip_i,dinov2,scr_0.4\n", encoding="utf-8")
    results = tmp_path / "results"
    write_results(results, empty_paper, models=("collage",))
    index = json.loads((results / "figures" / "figures.json").read_text(encoding="utf-8"))
    assert index and all(entry["smoke"] for entry in index)
    assert not (results / "figures" / "fig4_trends.png").exists()


def test_dollar_signs_in_names_are_not_mathtext(tmp_path: Path) -> None:
    paper = tmp_path / "paper.csv"
    paper.write_text("model,n_subjects,clip_t,clip_i,dinov2,scr_0.4\n$x^2$ model,2,0.2,0.5,0.3,0.5\n"
                     "$x^2$ model,4,0.2,0.4,0.2,0.8\n", encoding="utf-8")
    results = tmp_path / "results"
    write_results(results, paper, models=("alpha",))
    assert "$x^2$ model (paper)" in (results / "figures" / "fig4_trends.svg").read_text(encoding="utf-8")


def test_a_later_report_step_can_add_its_figure_to_the_index(results: Path, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from collapsebench.reporting.figures import index_figure, save

    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    save(figure, copy / "figures", "extra", smoke=True)
    index_figure(copy / "figures", "extra", "Extra", "A later figure.", smoke=True)
    index_figure(copy / "figures", "extra", "Extra", "A later figure.", smoke=True)  # replaced, not duplicated
    entries = json.loads((copy / "figures" / "figures.json").read_text(encoding="utf-8"))
    extra = [entry for entry in entries if entry["stem"] == "extra"]
    assert len(extra) == 1 and extra[0]["smoke"] and extra[0]["caption"].startswith(WATERMARK)
    assert len(entries) == 2 * len(STEMS) + 2  # + the validity study's figure + this one
