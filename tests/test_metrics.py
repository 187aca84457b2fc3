"""Metric math against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from collapsebench.reporting.metrics import (
    bootstrap_intervals,
    image_scores,
    paired_difference_interval,
    paired_ranks,
    prompt_ratios,
    scr,
    summarize,
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


def shared_difficulty(offset: float, noise: float = 0.004, prompts: int = 15) -> list[dict]:
    """One model's rows on 15 prompts x 3 seeds x 2 subjects whose difficulty is shared by every model."""
    difficulty = np.random.default_rng(1).uniform(0.2, 0.8, prompts)  # the same for every model: pairing
    jitter = np.random.default_rng(int(offset * 1000) + 2).normal(0, noise, (prompts, 3, 2))
    return [row(p + 1, s, float(difficulty[p] + offset + jitter[p, s, k]))
            for p in range(prompts) for s in range(3) for k in range(2)]


def ratio(rows: list[dict], column: str = "dinov2") -> tuple[np.ndarray, np.ndarray]:
    numerators, denominators = prompt_ratios(rows, [column])
    return numerators[column], denominators[column]


def test_b_equal_to_a_plus_003_ranks_strictly_ahead_although_marginal_intervals_overlap() -> None:
    a, b = shared_difficulty(0.0), shared_difficulty(0.03)
    marginal_a = bootstrap_intervals(a, ["dinov2"], n_boot=1000, seed=3)["dinov2"]
    marginal_b = bootstrap_intervals(b, ["dinov2"], n_boot=1000, seed=3)["dinov2"]
    assert marginal_b[0] < marginal_a[1]  # the marginal intervals overlap: the old rule tied them
    low, high = paired_difference_interval(ratio(b), ratio(a), n_boot=1000, seed=3)
    assert 0.02 < low < 0.03 < high < 0.04
    assert paired_ranks({"A": ratio(a), "B": ratio(b)}, higher_is_better=True, n_boot=1000, seed=3) == {"B": 1, "A": 2}


def test_paired_ranks_count_the_models_ahead_beyond_doubt_whatever_the_order() -> None:
    # Shifts 0, .05, .11 on shared prompts; B is noisy per prompt: C beats A, neither is resolved against B.
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 15)
    cells = {}
    for name, shift, noise in (("A", 0.0, 0.01), ("B", 0.05, 0.25), ("C", 0.11, 0.01)):
        jitter = rng.normal(0, noise, 15)
        cells[name] = (base + shift + jitter - jitter.mean(), np.ones(15))  # point estimates exactly .05 apart
    ranks = paired_ranks(cells, higher_is_better=True, n_boot=1000, seed=5)
    assert ranks == {"C": 1, "B": 1, "A": 2}  # the old midpoint walk gave A = 3
    reordered = paired_ranks(dict(reversed(list(cells.items()))), higher_is_better=True, n_boot=1000, seed=5)
    assert reordered == ranks
    lower_is_better = paired_ranks(cells, higher_is_better=False, n_boot=1000, seed=5)
    assert lower_is_better == {"A": 1, "B": 1, "C": 2}


def test_identical_models_tie_even_when_bca_is_undefined() -> None:
    zeros = (np.zeros(15), np.full(15, 6.0))  # SCR 0 on every prompt: every resample differs by exactly 0
    assert paired_difference_interval(zeros, zeros, n_boot=200, seed=1) == (0.0, 0.0)
    assert paired_ranks({"x": zeros, "y": zeros}, True, n_boot=200, seed=1) == {"x": 1, "y": 1}
