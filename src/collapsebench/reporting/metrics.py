"""The paper's metrics, as plain functions of `scores.csv` rows (raw cosines).

Definitions (DESIGN.md, the paper is the reference):
- an image's DINOv2 / CLIP-I / DINO score is the mean over its N subjects of
  the cosine between the whole image and that subject's reference;
- a Table 1 cell's score is the mean of its images' scores;
- SCR@tau of a cell pools all (image, subject) pairs of the cell:
  #pairs with DINOv2 cosine < tau / #pairs (a micro-average over subject
  instances, NOT the mean of per-image rates: a 10-subject image weighs 5x a
  2-subject one within mixed pools, and 44/90 at N=2 is the paper's 48.9%);
- uncertainty: a paired cluster bootstrap over prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean

import numpy as np

from collapsebench.core.metric_table import (
    BY_COLUMN,
    SCR_COLUMNS,
    SCR_SOURCE,
    SIMILARITY_COLUMNS,
    scr_threshold,
)

Row = Mapping[str, object]


def scr(cosines: Sequence[float], tau: float) -> float:
    """Fraction of subject instances whose cosine falls below tau (pooled over everything given)."""
    if not cosines:
        raise ValueError("SCR of an empty set of subject instances")
    return sum(1 for c in cosines if c < tau) / len(cosines)


def image_scores(rows: Iterable[Row], column: str) -> dict[tuple[int, int], float]:
    """Per image (prompt_id, seed): the mean of `column` over the image's subjects."""
    per_image: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        per_image[(int(row["prompt_id"]), int(row["seed"]))].append(float(row[column]))
    return {image: fmean(values) for image, values in per_image.items()}


def summarize(rows: Sequence[Row]) -> dict[str, float]:
    """One Table 1 cell: means over images of each similarity, SCR pooled over subject instances."""
    if not rows:
        raise ValueError("cannot summarize an empty cell")
    summary: dict[str, float] = {}
    for column in SIMILARITY_COLUMNS:
        if column in rows[0] and rows[0][column] not in ("", None):
            summary[column] = fmean(image_scores(rows, column).values())
    for column in SCR_COLUMNS:
        metric = BY_COLUMN[column]
        summary[column] = scr([float(row[metric.source]) for row in rows], metric.tau)
    summary["n_images"] = len({(row["prompt_id"], row["seed"]) for row in rows})
    summary["n_pairs"] = len(rows)
    return summary


def bootstrap_intervals(rows: Sequence[Row], columns: Sequence[str], n_boot: int, seed: int,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals from a cluster bootstrap over prompts.

    Prompt ids are resampled with replacement; all seeds and subjects of a drawn
    prompt come along. The draw depends only on `seed` and the number of
    prompts, so every model of a cell (same prompts) gets the same resamples:
    the bootstrap is paired across models, and reruns give the same numbers.
    Each statistic is a ratio of per-prompt sums, so a resample is a gather + sum.
    """
    by_prompt: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_prompt[int(row["prompt_id"])].append(row)
    prompts = [by_prompt[p] for p in sorted(by_prompt)]
    numerators, denominators = {}, {}
    for column in columns:
        tau = scr_threshold(column)
        if tau is not None:
            numerators[column] = np.array([sum(float(r[SCR_SOURCE]) < tau for r in rows_) for rows_ in prompts])
            denominators[column] = np.array([len(rows_) for rows_ in prompts], dtype=float)
        else:
            per_prompt = [image_scores(rows_, column) for rows_ in prompts]
            numerators[column] = np.array([sum(scores.values()) for scores in per_prompt])
            denominators[column] = np.array([len(scores) for scores in per_prompt], dtype=float)
    return ratio_intervals(numerators, denominators, n_boot, seed, level)


def ratio_intervals(numerators: Mapping[str, np.ndarray], denominators: Mapping[str, np.ndarray], n_boot: int,
                    seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of sum(numerator) / sum(denominator) under the prompt-cluster bootstrap.

    Arrays hold one entry per prompt, in sorted prompt-id order. The draws depend
    only on `seed` and the number of prompts, so any statistic written as a
    per-prompt ratio (ours or a later metric's) is resampled with the same,
    paired draws as the paper's columns.
    """
    n_prompts = len(next(iter(numerators.values()))) if numerators else 0
    draws = np.random.default_rng(seed).integers(0, n_prompts, size=(n_boot, n_prompts))
    alpha = (1 - level) / 2
    intervals = {}
    for column, numerator in numerators.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            values = numerator[draws].sum(axis=1) / denominators[column][draws].sum(axis=1)
        values = values[np.isfinite(values)]
        intervals[column] = ((float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
                             if len(values) else (float("nan"), float("nan")))
    return intervals


def tie_groups(intervals: Mapping[str, tuple[float, float]], higher_is_better: bool) -> dict[str, int]:
    """Rank models, giving one rank to each run of models whose intervals overlap the group leader's.

    Models are sorted by interval midpoint; a model joins the current group when
    its interval overlaps the interval of the group's first (best) model.
    """
    order = sorted(intervals, key=lambda m: sum(intervals[m]) / 2, reverse=higher_is_better)
    ranks: dict[str, int] = {}
    rank, leader = 0, None
    for position, model in enumerate(order, start=1):
        low, high = intervals[model]
        if leader is None or not _overlap(intervals[leader], (low, high)):
            rank, leader = position, model
        ranks[model] = rank
    return ranks


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
