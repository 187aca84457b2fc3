"""Report outputs behind the site: per-scene rows, tie-group ranks, the threshold sweep with intervals."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_results import MODELS, PROMPTS, SEEDS, shared_results

from collapsebench.core.io import read_csv
from collapsebench.reporting.breakdown import add_tie_ranks, scene_seed

PAPER = Path(__file__).resolve().parents[1] / "results" / "reported" / "paper_table1.csv"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_results(tmp_path_factory, PAPER)


def test_per_scene_rows_split_each_cell_by_scene(results: Path) -> None:
    rows = read_csv(results / "per_scene.csv")
    cells = {(n, scene) for _, n, scene in PROMPTS}
    assert len(rows) == len(MODELS) * len(cells)
    for row in rows:
        prompts = sum(1 for _, n, scene in PROMPTS if (n, scene) == (int(row["n_subjects"]), row["scene"]))
        assert int(row["n_images"]) == prompts * len(SEEDS)
        assert int(row["n_pairs"]) == prompts * len(SEEDS) * int(row["n_subjects"])
        assert float(row["dinov2_lo"]) <= float(row["dinov2"]) <= float(row["dinov2_hi"])
    beta = [r for r in rows if r["model"] == "beta"]
    assert all(float(r["scr_0.4"]) == 1.0 for r in beta)  # cosines ~0.3: every subject collapsed


def test_table1_ranks_are_tie_groups_within_kind_backbones_and_count(results: Path) -> None:
    rows = read_csv(results / "table1.csv")
    for row in rows:
        if row["source"] == "reported" or row["kind"] == "calibration":
            # reported rows have no intervals; the one calibration model is alone in its group
            assert row["rank_scr_0.4"] == ("" if row["source"] == "reported" else "1")
    models = {(r["model"], r["n_subjects"]): r for r in rows if r["kind"] == "model"}
    for n in ("2", "4"):
        assert models[("alpha", n)]["rank_scr_0.4"] == models[("gamma", n)]["rank_scr_0.4"] == "1"
        assert models[("beta", n)]["rank_scr_0.4"] == "3"
        assert models[("beta", n)]["rank_dinov2"] == "3"


def test_sweep_has_intervals_consistent_with_table1(results: Path) -> None:
    sweep = read_csv(results / "plots" / "scr_sweep.csv")
    table = {(r["model"], r["n_subjects"]): r for r in read_csv(results / "table1.csv") if r["source"] == "reproduced"}
    taus = sorted({float(r["tau"]) for r in sweep})
    assert taus[0] == pytest.approx(0.2) and taus[-1] == pytest.approx(0.8) and len(taus) == 13
    for row in sweep:
        assert float(row["scr_lo"]) <= float(row["scr"]) <= float(row["scr_hi"])
        if float(row["tau"]) == pytest.approx(0.4):
            cell = table[(row["model"], row["n_subjects"])]
            # same prompts, same bootstrap seed: the same interval as Table 1's SCR@0.4
            assert (row["scr"], row["scr_lo"], row["scr_hi"]) == (cell["scr_0.4"], cell["scr_0.4_lo"],
                                                                     cell["scr_0.4_hi"])
    for model in MODELS:
        for n in ("2", "4"):
            curve = [float(r["scr"]) for r in sweep if r["model"] == model and r["n_subjects"] == n]
            assert curve == sorted(curve)  # more subjects fall below a higher threshold


def test_scene_seed_is_shared_by_models_and_distinct_per_cell() -> None:
    seeds = {(n, scene): scene_seed(5, n, scene) for n in (2, 4, 6, 8, 10)
             for scene in ("neutral", "occlusion", "interaction")}
    assert len(set(seeds.values())) == len(seeds)
    assert scene_seed(5, 4, "occlusion") == seeds[(4, "occlusion")]


def test_rows_without_usable_intervals_get_no_rank() -> None:
    rows = [{"model": "a", "kind": "model", "backbones": "real", "n_subjects": 2, "source": "reproduced",
             "dinov2_lo": 0.1, "dinov2_hi": 0.2},
            {"model": "b", "kind": "model", "backbones": "real", "n_subjects": 2, "source": "reproduced",
             "dinov2_lo": float("nan"), "dinov2_hi": float("nan")}]
    add_tie_ranks(rows)
    assert rows[0]["rank_dinov2"] == 1 and "rank_dinov2" not in rows[1]


def test_rows_made_on_different_pools_are_never_ranked_together() -> None:
    def row(model: str, pool: str, low: float) -> dict:
        return {"model": model, "kind": "model", "backbones": "real", "pool": pool, "n_subjects": 2,
                "source": "reproduced", **{f"{m}_{end}": low + (0.01 if end == "hi" else 0.0)
                                           for m in ("dinov2", "scr_0.4", "scr_0.5", "scr_0.6") for end in ("lo", "hi")}}

    rows = [row("a", "pool-demo", 0.5), row("b", "pool-demo", 0.2), row("c", "pool-paper", 0.9)]
    add_tie_ranks(rows)
    ranks = {r["model"]: r["rank_dinov2"] for r in rows}
    assert ranks == {"a": 1, "b": 2, "c": 1}  # c would beat a on one leaderboard; on its own pool it is alone
