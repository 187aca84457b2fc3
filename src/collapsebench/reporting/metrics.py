"""The paper's metrics, as plain functions of `scores.csv` rows (raw cosines).

Definitions (DESIGN.md, the paper is the reference):
- an image's DINOv2 / CLIP-I / DINO score is the mean over its N subjects of
  the cosine between the whole image and that subject's reference;
- a Table 1 cell's score is the mean of its images' scores;
- SCR@tau of a cell pools all (image, subject) pairs of the cell:
  #pairs with DINOv2 cosine < tau / #pairs (a micro-average over subject
  instances, NOT the mean of per-image rates: a 10-subject image weighs 5x a
  2-subject one within mixed pools, and 44/90 at N=2 is the paper's 48.9%);
- uncertainty: a paired cluster bootstrap over prompts;
- ranks: from paired-bootstrap intervals of the DIFFERENCES between models
  (`paired_ranks`), never from overlapping marginal intervals. With 15 prompts
  per cell the bootstrap sees only 15 clusters: its intervals are somewhat too
  narrow (about sqrt(14/15) for a mean, more for skewed ratios), so BCa
  intervals (bias- and skew-corrected) are used, and a tie means "not resolved
  by 15 prompts", never "equal".
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean

import numpy as np
from scipy import stats

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
    numerators, denominators = prompt_ratios(rows, columns)
    return ratio_intervals(numerators, denominators, n_boot, seed, level)


def prompt_ratios(rows: Sequence[Row], columns: Sequence[str]) -> tuple[dict[str, np.ndarray],
                                                                        dict[str, np.ndarray]]:
    """Per prompt (sorted by id), the numerator and denominator of each column's cell statistic.

    SCR@tau: collapsed pairs / pairs; a similarity: the sum of image means / images.
    """
    by_prompt: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_prompt[int(row["prompt_id"])].append(row)
    prompts = [by_prompt[p] for p in sorted(by_prompt)]
    numerators, denominators = {}, {}
    for column in columns:
        tau = scr_threshold(column)
        if tau is not None:
            numerators[column] = np.array([sum(float(r[SCR_SOURCE]) < tau for r in rows_) for rows_ in prompts],
                                          dtype=float)
            denominators[column] = np.array([len(rows_) for rows_ in prompts], dtype=float)
        else:
            per_prompt = [image_scores(rows_, column) for rows_ in prompts]
            numerators[column] = np.array([sum(scores.values()) for scores in per_prompt])
            denominators[column] = np.array([len(scores) for scores in per_prompt], dtype=float)
    return numerators, denominators


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


Ratio = tuple[np.ndarray, np.ndarray]  # per-prompt numerators and denominators of one model's cell statistic


def paired_difference_interval(a: Ratio, b: Ratio, n_boot: int, seed: int,
                               level: float = 0.95) -> tuple[float, float]:
    """The interval of ratio(a) - ratio(b) when prompts are resampled together for both models.

    BCa (`scipy.stats.bootstrap`, paired); where BCa is undefined (every
    resample gives the same difference, e.g. two models at SCR 0 everywhere)
    the percentile interval of the same resamples, which is then that value.
    """
    def difference(na: np.ndarray, da: np.ndarray, nb: np.ndarray, db: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return na.sum(axis=axis) / da.sum(axis=axis) - nb.sum(axis=axis) / db.sum(axis=axis)

    data = (a[0], a[1], b[0], b[1])
    if len(a[0]) < 2:
        value = float(difference(*data))
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa's degenerate-data warning: handled below
        result = stats.bootstrap(data, difference, paired=True, vectorized=True, n_resamples=n_boot,
                                 confidence_level=level, method="BCa", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    if np.isfinite(low) and np.isfinite(high):
        return float(low), float(high)
    draws = result.bootstrap_distribution[np.isfinite(result.bootstrap_distribution)]
    if not len(draws):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def paired_ranks(cells: Mapping[str, Ratio], higher_is_better: bool, n_boot: int, seed: int,
                 level: float = 0.95) -> dict[str, int]:
    """Rank = 1 + the number of models that are ahead of this one beyond doubt.

    "Ahead beyond doubt" = the paired-bootstrap interval of their difference
    excludes 0 on the better side. Models whose differences are not resolved
    share a rank (a tie group). This does not depend on the order models are
    visited in, and a model that is ahead of another on every prompt by a small
    constant ranks strictly ahead even when their marginal intervals overlap.
    All `cells` must hold the same prompts in the same order (paired).
    """
    models = sorted(cells)
    behind = {model: 0 for model in models}
    for i, first in enumerate(models):
        for second in models[i + 1:]:
            low, high = paired_difference_interval(cells[first], cells[second], n_boot, seed, level)
            first_ahead, second_ahead = (low > 0, high < 0) if higher_is_better else (high < 0, low > 0)
            behind[second] += first_ahead
            behind[first] += second_ahead
    return {model: 1 + count for model, count in behind.items()}
