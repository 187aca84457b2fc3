"""The metric-validity study: prediction first, measured part generated from Table 1 rows, smoke said out loud."""

from __future__ import annotations

import json
from pathlib import Path

from collapsebench.reporting.validity import render, write_validity_study


def study_rows(backbones: str, collage_matched: float = 0.0, with_matched: bool = True) -> list[dict]:
    """Calibration rows that behave as predicted (unless told otherwise), plus one real model."""
    rows = []
    for n in (2, 4, 6, 8, 10):
        per_model = {
            "collage": (0.05 * n, collage_matched, 0.9 - 0.03 * n, 1.0, 0.0),
            "clone": (0.5, (n - 1) / n, 0.7, 1.0, 1.0),
            "floor": (1.0, 1.0, 0.2, 0.0, 0.0),
            "model-x": (0.06 * n, 0.02 * n, 0.6, 0.8, 0.1),
        }
        for model, (scr, matched, clip_i, count, clone) in per_model.items():
            row = {"model": model, "n_subjects": n, "source": "reproduced", "backbones": backbones,
                   "kind": "model" if model == "model-x" else "calibration", "scr_0.4": scr, "clip_i": clip_i}
            if with_matched:
                row.update({"matched_scr_0.4": matched, "count_accuracy": count, "clone_rate": clone})
            rows.append(row)
    rows.append({"model": "MOSAIC", "n_subjects": 2, "source": "reported", "backbones": "paper", "scr_0.4": 0.489})
    return rows


def test_prediction_comes_before_the_measured_result_and_checks_are_computed() -> None:
    text = render(study_rows("real"))
    assert text.index("## Prediction") < text.index("## Measured")
    assert "smoke" not in text.split("## Measured")[1].lower()
    assert "collage, whole-image SCR@0.4 rises with N: **holds** (N=2: 0.10" in text
    assert "collage, matched SCR@0.4 near 0 at every N: **holds**" in text
    assert "clone, clone rate close to 1: **holds**" in text
    assert "floor, matched SCR@0.4 close to 1: **holds**" in text
    assert "- model-x: whole-image minus matched SCR@0.4: N=2: +0.08" in text
    assert "MOSAIC" not in text  # paper rows are not part of the measured study


def test_a_violated_prediction_is_reported_as_such() -> None:
    text = render(study_rows("real", collage_matched=0.4))
    assert "collage, matched SCR@0.4 near 0 at every N: **does not hold** (N=2: 0.40" in text


def test_smoke_numbers_are_labelled_meaningless() -> None:
    text = render(study_rows("smoke"))
    measured = text.split("## Measured")[1]
    assert "These numbers come from smoke backbones" in measured and "measure nothing about identity" in measured


def test_without_matched_scores_only_the_whole_image_metrics_are_checked() -> None:
    text = render(study_rows("real", with_matched=False))
    assert "Matched SCR was not computed" in text
    assert "matched SCR@0.4 near 0" not in text and "rises with N: **holds**" in text


def test_write_writes_the_markdown_and_figure_and_prefers_real_rows(tmp_path: Path) -> None:
    rows = study_rows("real") + [{**row, "model": f"{row['model']}-smoke", "backbones": "smoke"}
                                 for row in study_rows("smoke") if row["source"] == "reproduced"]
    write_validity_study(tmp_path, rows)
    text = (tmp_path / "validity.md").read_text()
    assert "-smoke" not in text and "These numbers come from smoke backbones" not in text
    for suffix in ("png", "svg"):
        assert (tmp_path / "figures" / f"validity.{suffix}").stat().st_size > 1000
    index = json.loads((tmp_path / "figures" / "figures.json").read_text())
    assert [(entry["stem"], entry["smoke"]) for entry in index] == [("validity", False)]  # the site lists it
