"""The metric-validity study: prediction first, measured part generated from Table 1 rows, smoke said out loud."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

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


# ---------------------------------------------------------------- the known-truth study

def test_composites_hold_exactly_k_requested_subjects_and_same_kind_impostors(pool_dir: Path) -> None:
    from collapsebench.benchmark.pool import load_pool
    from collapsebench.scoring.validity_study import StudySettings, compose

    pool = load_pool(pool_dir)
    for n, k in ((2, 1), (6, 0), (10, 4)):
        picture = compose(pool, n, k, 0, StudySettings(size=512))
        assert picture.image.size == (512, 512) and len(picture.figures) == n
        present = [f for f in picture.figures if f.subject == f.stands_for]
        assert len(present) == k and {f.stands_for for f in picture.figures} == set(picture.requested)
        for figure in picture.figures:
            if figure.subject != figure.stands_for:
                assert figure.subject not in picture.requested  # an impostor is someone not asked for
                assert pool[figure.subject].kind == pool[figure.stands_for].kind
            x0, y0, x1, y1 = figure.box
            assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    widths = [f.box[2] - f.box[0] for f in compose(pool, 10, 10, 0, StudySettings()).figures]
    assert 90 <= np.median(widths) <= 150  # group-photo scale: about 100+ px at N = 10 in 1024 px
    boxes = sorted(f.box for f in compose(pool, 10, 10, 0, StudySettings()).figures)
    assert any(a[2] > b[0] for a, b in itertools.pairwise(boxes))  # neighbours overlap


def test_auroc_and_dose_response_of_a_perfect_and_a_blind_metric() -> None:
    from collapsebench.scoring.validity_study import analyse, auroc

    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0 and auroc([0.5], [0.5]) == 0.5 and auroc([], [0.1]) is None
    rows = []
    for n in (2, 4):
        for k in range(n + 1):
            for slot in range(n):
                present = slot < k
                rows.append({"key": f"{n}-{k}", "n": n, "k": k, "kind": "person", "present": int(present),
                             "dinov2": 0.5, "clip_i": 0.7, "matched_dinov2": 0.9 if present else None,
                             "face": 0.8 if present else 0.1, "face_status": "matched"})
    crops = [{"truth": "true", "cosine": 0.8}, {"truth": "impostor", "cosine": 0.2}]
    summary = analyse(rows, crops)
    matched, whole = summary["metrics"]["matched_scr"], summary["metrics"]["scr"]
    assert matched["slope"] == pytest.approx(1) and matched["intercept"] == pytest.approx(0, abs=1e-9)
    assert matched["auroc"] == 1.0 and whole["auroc"] == 0.5 and whole["slope"] == pytest.approx(0)
    assert summary["metrics"]["face_scr"]["auroc"] == 1.0
    assert summary["crops"]["impostor_p95"] == pytest.approx(0.2) and summary["crops"]["auroc"] == 1.0


def study_summary(profile: str) -> dict:
    levels = [{"n": n, "k": k, "collapsed_truth": 1 - k / n, "value": (1 - k / n) * 0.3 + 0.05 * n,
               "subjects": n} for n in (2, 10) for k in (0, n)]
    metric = {"levels": levels, "slope": 0.3, "intercept": 0.1, "auroc": 0.6, "present": {"p50": 0.5},
              "absent": {"p50": 0.45}, "tau": 0.4}
    return {"version": "1", "profile": profile, "composites": 4, "reused_impostors": 0,
            "settings": {"size": 1024, "counts": [2, 10], "repeats": 1, "backgrounds": None},
            "metrics": {"scr": {**metric, "label": "whole-image SCR"},
                        "matched_scr": {**metric, "label": "matched SCR", "slope": 0.95, "auroc": 0.9},
                        "clip_i": {**metric, "label": "CLIP-I", "tau": None, "auroc": 0.55},
                        "face_scr": {**metric, "label": "Face-SCR", "auroc": 0.97}},
            "crops": {"true": {"p5": 0.5, "p50": 0.7, "p95": 0.9}, "impostor": {"p5": 0.1, "p50": 0.2, "p95": 0.35},
                      "auroc": 0.95, "impostor_p95": 0.35, "youden_tau": 0.42, "impostors_present_at_tau": 0.03,
                      "true_collapsed_at_tau": 0.02}}


def test_the_study_section_predicts_first_then_measures_and_checks() -> None:
    from collapsebench.reporting import study_page

    text = study_page.render(study_summary("real"))
    assert text.index("## Known-truth study: prediction") < text.index("## Known-truth study: measured")
    assert "- matched SCR@0.4 slope within 0.25 of 1: **holds** (slope 0.95)" in text
    assert "whole-image SCR@0.4 with everyone present rises with N (dilution): **holds** (N=2: 0.10, N=10: 0.50)" \
        in text
    assert "- CLIP-I tells present from impostor worse than matched DINOv2: **holds**" in text
    assert "- impostor crops' 95th percentile below 0.4: **holds**" in text
    assert "smoke backbones" not in text.split("measured")[-1]
    smoke = study_page.render(study_summary("smoke"))
    assert "These numbers come from smoke backbones" in smoke and "measure nothing about identity" in smoke
    assert "Not run yet" in study_page.render(None)


def test_report_adds_the_study_and_its_figure_when_the_validity_stage_ran(tmp_path: Path) -> None:
    (tmp_path / "validity").mkdir()
    (tmp_path / "validity" / "summary.json").write_text(json.dumps(study_summary("smoke")))
    write_validity_study(tmp_path, study_rows("smoke"))
    text = (tmp_path / "validity.md").read_text()
    assert text.index("## Measured") < text.index("## Known-truth study: prediction")
    assert "face ID / Face-SCR (people)" in text and "clone rate (+ null)" in text  # what each metric sees
    stems = [entry["stem"] for entry in json.loads((tmp_path / "figures" / "figures.json").read_text())]
    assert stems == ["smoke_validity", "smoke_validity_study"]
    assert (tmp_path / "figures" / "smoke_validity_study.png").stat().st_size > 1000


def test_the_study_runs_end_to_end_on_smoke_backbones(pool_dir: Path, tmp_path: Path) -> None:
    from collapsebench.scoring.validity_study import run_validity_study

    params = {"suite": {"pool": str(pool_dir)},
              "scoring": {"profile": "smoke", "smoke_dir": str(tmp_path / "smoke"), "cache_dir": None,
                          "matched": {"enabled": True}, "face": {"enabled": True}},
              "report": {"validity": {"counts": [2, 3], "repeats": 1, "size": 256}}}
    summary = run_validity_study(params, tmp_path / "results")
    assert summary["profile"] == "smoke" and summary["composites"] == 3 + 4
    assert set(summary["metrics"]) == {"scr", "matched_scr", "clip_i", "face_scr"}
    rows = (tmp_path / "results" / "validity" / "study.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 + 4 * 3
    assert (tmp_path / "results" / "validity" / "crops.csv").is_file()
