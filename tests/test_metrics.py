"""Metric math against hand-computed values."""

from __future__ import annotations

import pytest

from collapsebench.reporting.metrics import (
    bootstrap_intervals,
    image_scores,
    scr,
    summarize,
    tie_groups,
)


def row(prompt_id: int, seed: int, dinov2: float, clip_i: float = 0.5, clip_t: float = 0.3) -> dict:
    return {"prompt_id": prompt_id, "seed": seed, "dinov2": dinov2, "dino": dinov2, "clip_i": clip_i, "clip_t": clip_t}


def test_scr_counts_strictly_below_tau() -> None:
    assert scr([0.39, 0.4, 0.41, 0.1], 0.4) == 0.5  # 0.4 itself is not collapsed


def test_scr_pools_subject_instances_not_images() -> None:
    # Image A: 2 subjects, both collapsed. Image B: 10 subjects, 1 collapsed.
    rows = [row(1, 0, 0.1), row(1, 0, 0.2)] + [row(2, 0, 0.9)] * 9 + [row(2, 0, 0.3)]
    cell = summarize(rows)
    assert cell["scr_0.4"] == pytest.approx(3 / 12)  # pooled: 3 collapsed of 12 instances
    assert cell["scr_0.4"] != pytest.approx((1.0 + 0.1) / 2)  # not the mean of per-image rates (0.55)
    assert cell["n_images"] == 2 and cell["n_pairs"] == 12


def test_similarity_means_are_over_images() -> None:
    rows = [row(1, 0, 0.2), row(1, 0, 0.4)] + [row(2, 0, 0.9)] * 4
    # Image means: 0.3 and 0.9 -> 0.6 (a mean over the 6 pairs would be 0.7).
    assert summarize(rows)["dinov2"] == pytest.approx(0.6)
    assert image_scores(rows, "dinov2") == {(1, 0): pytest.approx(0.3), (2, 0): pytest.approx(0.9)}


def test_papers_two_subject_cell_is_44_of_90() -> None:
    rows = [row(p, s, 0.3 if (p * 3 + s) * 2 + k < 44 else 0.7) for p in range(15) for s in range(3) for k in range(2)]
    assert summarize(rows)["scr_0.4"] == pytest.approx(0.489, abs=5e-4)


def test_bootstrap_is_seeded_paired_and_brackets_the_estimate() -> None:
    rows = [row(p, s, 0.1 * (p % 7) + 0.02 * s) for p in range(15) for s in range(3) for _ in range(2)]
    first = bootstrap_intervals(rows, ["dinov2", "scr_0.4"], n_boot=300, seed=5)
    again = bootstrap_intervals(rows, ["dinov2", "scr_0.4"], n_boot=300, seed=5)
    assert first == again
    estimate = summarize(rows)
    for column in ("dinov2", "scr_0.4"):
        low, high = first[column]
        assert low <= estimate[column] <= high and low < high
    # Paired: a model whose every cosine is shifted by +0.05 gets an interval shifted by exactly that.
    shifted = [{**r, "dinov2": r["dinov2"] + 0.05} for r in rows]
    low, high = bootstrap_intervals(shifted, ["dinov2"], n_boot=300, seed=5)["dinov2"]
    assert (low, high) == pytest.approx((first["dinov2"][0] + 0.05, first["dinov2"][1] + 0.05))


def test_tie_groups_share_a_rank_when_intervals_overlap() -> None:
    ranks = tie_groups({"a": (0.5, 0.6), "b": (0.55, 0.65), "c": (0.1, 0.2)}, higher_is_better=True)
    assert ranks == {"b": 1, "a": 1, "c": 3}
