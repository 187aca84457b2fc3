"""The metric table: every number the benchmark reports, declared once.

`score` writes the raw cosines of `RAW_SCORES`; the report aggregates each
`Metric` into Table 1 columns (with `_lo/_hi` intervals and, where `ranked`,
tie-group ranks); figures and the site take labels, direction and formatting
from here. Adding a metric is one entry below plus, for a new kind of
aggregation, the code that computes it (reporting/metrics.py or
reporting/matched_cells.py). Definitions follow DESIGN.md and the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

THRESHOLDS = (0.4, 0.5, 0.6)  # the paper's SCR thresholds; 0.4 is its headline
HEADLINE_TAU = 0.4
FACE_TAU = 0.363  # SFace's published cosine threshold for "same person" (OpenCV zoo, LFW-calibrated)
SCR_SOURCE = "dinov2"  # SCR counts subjects by their DINOv2 cosine (the paper's definition)


@dataclass(frozen=True)
class RawScore:
    """One column of scores.csv: a cosine per (image, subject)."""

    column: str
    backbone: str  # the embedding backbone that produces it (scoring/backbones.py)
    description: str


# scores.csv column order (after the identity columns); matched columns follow them.
RAW_SCORES = (
    RawScore("dinov2", "dinov2", "whole image vs the subject's reference, DINOv2 pooled output"),
    RawScore("dino", "dino", "whole image vs the subject's reference, DINO v1 CLS token"),
    RawScore("clip_i", "clip", "whole image vs the subject's reference, CLIP image embeddings"),
    RawScore("clip_t", "clip", "whole image vs the rendered prompt, CLIP (the same value on every subject row)"),
)
MATCHED_RAW = ("matched_dinov2", "n_detections", "best_crop")  # empty when matched SCR is disabled
# Added after MATCHED_RAW (older scores.csv files lack them and are still read; see reporting/matched_cells.py):
# the subject's kind; the cosine of its best same-kind crop; 1/0 when it shares that crop with another subject
# and both clear the clone floor; the chance of that under the permutation null; the face-recognition cosine of
# its assigned face (people only) and face_status: matched | missing (no face left for it) | no_reference (no
# face found in its reference: not counted) | empty (an animal, or face scoring off).
INSTANCE_RAW = ("kind", "best_cosine", "clone", "clone_null", "face", "face_status")
FACE_STATUSES = ("matched", "missing", "no_reference")


@dataclass(frozen=True)
class Metric:
    """One Table 1 column.

    aggregation:
      - `image_mean`: mean over the cell's images of the mean over each image's subjects of `source`;
      - `pooled_below`: share of the cell's (image, subject) pairs whose `source` cosine is below `tau`
        (a micro-average over subject instances: the paper's SCR);
      - `matched`: computed by reporting/matched_cells.py from the matched columns of scores.csv;
      - `face`: computed by reporting/matched_cells.py from `face` / `face_status` (person subjects only).
    """

    column: str
    label: str
    aggregation: str
    source: str
    higher_is_better: bool
    percent: bool
    description: str
    tau: float | None = None
    paper: bool = False  # a column of the paper's Table 1 (the others are ours)
    ranked: bool = False  # models get tie-group ranks on it
    headline: bool = False  # in metrics.json (what `dvc metrics show` prints)


METRICS: tuple[Metric, ...] = (
    Metric("clip_t", "CLIP-T", "image_mean", "clip_t", True, False,
           "text-image cosine (CLIP), higher = closer to the prompt", paper=True, headline=True),
    Metric("clip_i", "CLIP-I", "image_mean", "clip_i", True, False,
           "image-reference cosine (CLIP), mean over subjects", paper=True, headline=True),
    Metric("dinov2", "DINOv2", "image_mean", "dinov2", True, False,
           "image-reference cosine (DINOv2), mean over subjects; higher is better", paper=True, ranked=True,
           headline=True),
    # Face identity sits beside DINOv2 (its column order is the site's); people only, empty for animal-only cells.
    Metric("face", "face ID", "face", "face", True, False,
           "face-recognition cosine (YuNet + SFace) of each person's assigned face to the face in its reference, "
           "mean over the people whose face was found; animals have none"),
    Metric("face_scr", f"Face-SCR@{FACE_TAU:g}", "face", "face", False, True,
           f"share of people whose assigned face's cosine is below {FACE_TAU:g} (SFace's same-identity threshold) "
           "or who have no face; lower is better", tau=FACE_TAU),
    Metric("face_missing", "faces missing", "face", "face_status", False, True,
           "share of people left without a detected face (part of Face-SCR, shown apart)"),
    Metric("dino", "DINO", "image_mean", "dino", True, False,
           "image-reference cosine (DINO v1 ViT-S/16), mean over subjects"),
    *(Metric(f"scr_{tau:g}", f"SCR@{tau:g}", "pooled_below", SCR_SOURCE, False, True,
             f"share of subjects whose DINOv2 cosine is below {tau:g}; lower is better", tau=tau,
             paper=tau == HEADLINE_TAU, ranked=True, headline=tau == HEADLINE_TAU)
      for tau in THRESHOLDS),
    *(Metric(f"matched_scr_{tau:g}", f"matched SCR@{tau:g}", "matched", "matched_dinov2", False, True,
             f"share of subjects whose matched crop's DINOv2 cosine is below {tau:g} (a subject the detector "
             "missed counts as collapsed); lower is better", tau=tau)
      for tau in THRESHOLDS),
    Metric("missing_rate", "missing", "matched", "matched_dinov2", False, True,
           "share of subjects left without a detected person/animal of their kind (part of matched SCR, shown "
           "apart: detection failure, not identity failure)"),
    Metric("count_accuracy", "count accuracy", "matched", "n_detections", True, True,
           "share of images with exactly N detected people/animals"),
    Metric("clone_rate", "clone rate", "matched", "clone", False, True,
           "share of subjects whose best same-kind crop is also another subject's, both above the clone floor; "
           "lower is better; compare with its null"),
    Metric("clone_null", "clone rate (null)", "matched", "clone_null", False, True,
           "the clone rate expected if each subject's best crop were drawn at random among its image's crops of "
           "its kind (permutation null; 1-(1-1/k)^(m-1) per subject)"),
)
BY_COLUMN = {metric.column: metric for metric in METRICS}


def columns(aggregation: str | None = None) -> tuple[str, ...]:
    """Table 1 metric columns, in table order, optionally of one aggregation kind."""
    return tuple(m.column for m in METRICS if aggregation is None or m.aggregation == aggregation)


SIMILARITY_COLUMNS = columns("image_mean")
SCR_COLUMNS = columns("pooled_below")
INTERVAL_COLUMNS = SIMILARITY_COLUMNS + SCR_COLUMNS  # the paper-style columns, each with _lo/_hi
MATCHED_COLUMNS = columns("matched")
FACE_COLUMNS = columns("face")
INSTANCE_COLUMNS = MATCHED_COLUMNS + FACE_COLUMNS  # filled by reporting/matched_cells.py, empty when not scored
RANKED = {m.column: m.higher_is_better for m in METRICS if m.ranked}
RANK_NOTE = "rank_note"  # why a reproduced row has no rank (incomplete scores, broken pairing); the site shows it
RANK_COLUMNS = tuple(f"rank_{column}" for column in RANKED) + (RANK_NOTE,)
HEADLINE_COLUMNS = tuple(m.column for m in METRICS if m.headline)
SCORE_KEYS = ("model", "prompt_id", "seed", "n_subjects", "scene", "slot", "subject_id")  # one row per (image, subject)
SCORE_COLUMNS = SCORE_KEYS + tuple(raw.column for raw in RAW_SCORES) + MATCHED_RAW + INSTANCE_RAW


def scr_threshold(column: str) -> float | None:
    """The τ of an SCR column, the report's sweep thresholds (`scr_0.25`) included; None for other columns."""
    return float(column[4:]) if column.startswith("scr_") else None


def interval_columns(metric_columns: tuple[str, ...]) -> tuple[str, ...]:
    """`<column>_lo`, `<column>_hi` for each column, in order."""
    return tuple(f"{column}_{end}" for column in metric_columns for end in ("lo", "hi"))
