"""Report outputs behind the site: per-scene rows, tie-group ranks, the threshold sweep with intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_results import MODELS, PROMPTS, SEEDS, shared_results

from collapsebench.core.io import atomic_write_csv, read_csv
from collapsebench.reporting.breakdown import add_tie_ranks, cell_summary, scene_seed

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


def cell_rows(model: str, offset: float, pool: str = "pool-demo", drop: tuple[int, int] | None = None,
              n: int = 2) -> dict:
    """A Table 1 row (as report builds it) of a model at 15 prompts x 3 seeds on shared prompt difficulty."""
    difficulty = np.random.default_rng(3).uniform(0.3, 0.7, 15)
    rows = [{"prompt_id": p + 1, "seed": s, "dinov2": float(difficulty[p] + offset + 0.002 * ((p + s + k) % 3)),
             "clip_i": 0.5, "clip_t": 0.3} for p in range(15) for s in range(3) for k in range(n)
            if (p + 1, s) != drop]
    return {"model": model, "kind": "model", "backbones": "real", "pool": pool, "n_subjects": n,
            "source": "reproduced", **cell_summary(rows, ("dinov2", "scr_0.4"), n_boot=400, seed=9)}


def test_b_a_little_ahead_of_a_on_every_prompt_ranks_strictly_ahead() -> None:
    table = [cell_rows("a", 0.0), cell_rows("b", 0.03)]
    add_tie_ranks(table)
    ranks = {row["model"]: row["rank_dinov2"] for row in table}
    assert ranks == {"b": 1, "a": 2}
    assert table[0]["dinov2_lo"] < table[1]["dinov2_hi"] and table[1]["dinov2_lo"] < table[0]["dinov2_hi"]


def test_a_cell_with_a_missing_prompt_is_not_ranked_and_says_why(tmp_path: Path) -> None:
    table = [cell_rows("a", 0.0), cell_rows("b", 0.03), cell_rows("c", 0.2, drop=(7, 1))]
    add_tie_ranks(table, unranked={"d"})
    by_model = {row["model"]: row for row in table}
    assert "rank_dinov2" not in by_model["c"] and "rank_scr_0.4" not in by_model["c"]
    assert by_model["c"]["rank_note"] == ("not ranked: pairing broken: it lacks prompt 7 seed 1 that the other "
                                          "models of this cell have")
    assert by_model["b"]["rank_dinov2"] == 1 and by_model["a"]["rank_dinov2"] == 2  # the others are still ranked
    atomic_write_csv(tmp_path / "table1.csv", ("model", "rank_dinov2", "rank_note"), table)
    assert read_csv(tmp_path / "table1.csv")[2]["rank_note"].startswith("not ranked: pairing broken")


def test_incomplete_models_get_a_note_instead_of_a_rank() -> None:
    table = [cell_rows("a", 0.0), cell_rows("b", 0.03)]
    add_tie_ranks(table, unranked={"b"})
    assert table[0]["rank_dinov2"] == 1 and "rank_dinov2" not in table[1]
    assert "do not cover the benchmark" in table[1]["rank_note"]


def test_rows_made_on_different_pools_are_never_ranked_together() -> None:
    table = [cell_rows("a", 0.0, "pool-demo"), cell_rows("b", -0.2, "pool-demo"), cell_rows("c", 0.3, "pool-paper")]
    add_tie_ranks(table)
    ranks = {r["model"]: r["rank_dinov2"] for r in table}
    assert ranks == {"a": 1, "b": 2, "c": 1}  # c would beat a on one leaderboard; on its own pool it is alone


def test_a_row_without_provenance_is_shown_but_never_ranked(tmp_path: Path) -> None:
    """Defect: a results/models/<x>/ added by hand showed on the site as an ordinary, ranked card."""
    from synthetic_results import config, report_prompts, write_model

    from collapsebench.core.runlog import RUNLOG
    from collapsebench.reporting.report import run_report

    for name in ("alpha", "gamma"):
        write_model(tmp_path, name)
    (tmp_path / "models/gamma" / RUNLOG).unlink()  # gamma's scores: no run log of this checkout, no published.json
    run_report(tmp_path, [config("alpha"), config("gamma")], PAPER, report_prompts(), SEEDS, n_boot=50, seed=7)
    rows = [r for r in read_csv(tmp_path / "table1.csv") if r["source"] == "reproduced"]
    assert {r["origin"] for r in rows if r["model"] == "alpha"} == {"local"}
    gamma = [r for r in rows if r["model"] == "gamma"]
    assert gamma and all(r["origin"] == "unverified" and r["rank_scr_0.4"] == "" and "no provenance" in r["rank_note"]
                         for r in gamma)
    assert all(r["rank_scr_0.4"] == "1" for r in rows if r["model"] == "alpha")  # alone in its groups now
