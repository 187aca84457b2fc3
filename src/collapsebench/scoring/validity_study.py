"""The metric-validity study with known truth: group pictures where exactly k of the N requested identities appear.

Why: the calibration models (collage, clone, floor) have no overlap, no small
scale, no occlusion and no impostor people, so they cannot test what matters:
does a metric fall as identities are replaced by OTHER people or animals of the
same kind, and does it stay high for a generic group (the paper's claim about
CLIP-I)? Here each composite is built from the pool's own photos:

- N subjects are "requested" (drawn from the pool); k of them are placed, and
  the other N - k slots hold same-kind impostors from the rest of the pool (the
  same impostor twice only when the pool runs out; counted in the summary);
- figures are the reference photos with a feathered oval cut-out, at group-photo
  scale (about 130 px wide at N = 10 in a 1024 px image), overlapping their
  neighbours by up to `overlap` of their width, in a staggered front and back row
  (the front row occludes the back), on a background photo (a folder given in
  params, or a blurred photograph of a pool subject that is not in the picture);
- every metric is computed exactly as `score` computes it (same engines, same
  detector, same face models, same cache), per requested subject, and compared
  with the truth: dose-response against the true collapsed fraction (N - k) / N,
  AUROC for "this subject is present", and the cosine distributions of present
  subjects and of impostors, with ground-truth crops for the crop thresholds.

`collapsebench validity` (or `python -m collapsebench.scoring.validity_study`) writes
results/validity/study.csv, crops.csv and summary.json; `report` turns them into
results/validity.md and its figure. With smoke backbones the numbers are a
pipeline check and are labelled so.
"""

from __future__ import annotations

import argparse
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from collapsebench.benchmark.pool import IMAGE_SUFFIXES, KINDS, Subject, load_pool
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_csv, atomic_write_json
from collapsebench.core.metric_table import FACE_TAU, HEADLINE_TAU
from collapsebench.scoring.backbones import BACKBONE_NAMES, pick_device
from collapsebench.scoring.checkpoints import scoring_label, weights_record
from collapsebench.scoring.config import ScoringConfig
from collapsebench.scoring.cosine import cosines
from collapsebench.scoring.detection import (
    Detector,
    crop,
    reference_embeddings,
    score_matched,
)
from collapsebench.scoring.embed_cache import (
    EmbeddingCache,
    EmbeddingEngine,
    file_source,
    pil_source,
)
from collapsebench.scoring.face import FaceModels, score_faces

STUDY_VERSION = "1"
TAU = HEADLINE_TAU
# metric -> (label, per-subject cosine column, collapse threshold or None for a mean): the dose-response panels.
METRICS = {
    "scr": ("whole-image SCR", "dinov2", TAU),
    "matched_scr": ("matched SCR", "matched_dinov2", TAU),
    "clip_i": ("CLIP-I", "clip_i", None),
    "face_scr": ("Face-SCR", "face", FACE_TAU),
}
STUDY_COLUMNS = ("key", "n", "k", "slot", "subject_id", "kind", "present", "stand_in", "dinov2", "clip_i",
                 "matched_dinov2", "face", "face_status")
CROP_COLUMNS = ("key", "figure", "figure_subject", "reference", "truth", "cosine")


@dataclass(frozen=True)
class StudySettings:
    """params.yaml `report.validity`."""

    counts: tuple[int, ...] = (2, 4, 6, 8, 10)
    repeats: int = 2  # composites per (N, k)
    size: int = 1024
    overlap: float = 0.25  # neighbours overlap by up to this share of a figure's width
    seed: int = 20260327
    backgrounds: str | None = None  # a folder of scene photographs; None: blurred photos of absent pool subjects

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StudySettings:
        block = dict((params.get("report") or {}).get("validity") or {})
        if "counts" in block:
            block["counts"] = tuple(int(n) for n in block["counts"])
        settings = cls(**block)
        if settings.repeats < 1 or settings.size < 256 or not 0 <= settings.overlap < 0.9 or min(settings.counts) < 1:
            raise BenchError("params.yaml: report.validity: repeats >= 1, size >= 256, 0 <= overlap < 0.9, counts >= 1")
        return settings


@dataclass(frozen=True)
class Figure:
    """One placed individual: who it is, whose slot it fills, and where it was pasted."""

    subject: str
    stands_for: str  # the requested subject whose slot it fills (itself when present)
    box: tuple[int, int, int, int]


@dataclass
class Composite:
    key: str
    n: int
    k: int
    requested: list[str]
    figures: list[Figure]
    image: Image.Image
    reused_impostors: int


# ---------------------------------------------------------------- building composites

def plan(pool: Mapping[str, Subject], n: int, k: int, rng: random.Random) -> tuple[list[str], list[Figure], int]:
    """Requested subjects, the figures to place (boxes still empty) and how many impostors had to repeat."""
    # Only a subject with a same-kind stand-in outside the request can be absent; a request that leaves too few
    # such subjects (e.g. every animal of a small pool requested) is drawn again.
    for _ in range(100):
        requested = rng.sample(sorted(pool), n)
        outside = {kind: [s for s in sorted(pool) if pool[s].kind == kind and s not in requested] for kind in KINDS}
        replaceable = [s for s in requested if outside[pool[s].kind]]
        if len(replaceable) >= n - k:
            break
    else:
        raise BenchError(f"validity study: the pool has too few subjects outside a {n}-subject request to stand "
                         f"in for {n - k} absent ones; use a larger pool or smaller counts")
    absent = set(rng.sample(replaceable, n - k))
    unused = {kind: rng.sample(ids, len(ids)) for kind, ids in outside.items()}
    figures, reused = [], 0
    for subject in requested:
        if subject not in absent:
            figures.append(Figure(subject, subject, (0, 0, 0, 0)))
            continue
        kind = pool[subject].kind
        if unused[kind]:
            impostor = unused[kind].pop()
        else:
            impostor, reused = rng.choice(outside[kind]), reused + 1
        figures.append(Figure(impostor, subject, (0, 0, 0, 0)))
    rng.shuffle(figures)
    return requested, figures, reused


def oval_cutout(image: Image.Image, width: int) -> tuple[Image.Image, Image.Image]:
    """The photo scaled to `width` and a feathered oval mask (the subject without its photo's frame)."""
    height = max(1, round(image.height * width / image.width))
    scaled = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    mask = Image.new("L", scaled.size, 0)
    ImageDraw.Draw(mask).ellipse((width * 0.06, height * 0.02, width * 0.94, height * 1.2), fill=255)
    return scaled, mask.filter(ImageFilter.GaussianBlur(max(1.0, width / 40)))


def background(pool: Mapping[str, Subject], exclude: set[str], settings: StudySettings,
               rng: random.Random) -> Image.Image:
    """A scene photograph (from `settings.backgrounds`), or the backdrop of a pool photo not in the picture.

    The backdrop is the top fifth of the reference (above the subject's head), enlarged and blurred, so that
    no subject's shape is in the background for a detector to find.
    """
    if settings.backgrounds:
        files = sorted(p for p in Path(settings.backgrounds).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BenchError(f"report.validity.backgrounds: no images in {settings.backgrounds}")
        photo, blur = Image.open(rng.choice(files)).convert("RGB"), 0.0
    else:
        candidates = [s for s in sorted(pool) if s not in exclude] or sorted(pool)
        with Image.open(pool[rng.choice(candidates)].image) as reference:
            photo = reference.convert("RGB").crop((0, 0, reference.width, max(1, reference.height // 5)))
        blur = settings.size / 60
    side = settings.size
    scale = side / min(photo.size)
    photo = photo.resize((math.ceil(photo.width * scale), math.ceil(photo.height * scale)), Image.Resampling.BICUBIC)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    return photo.crop((left, top, left + side, top + side)).filter(ImageFilter.GaussianBlur(blur))


def compose(pool: Mapping[str, Subject], n: int, k: int, repeat: int, settings: StudySettings) -> Composite:
    """One group picture: figures left to right, odd ones in a raised, smaller back row pasted first."""
    rng = random.Random(f"{settings.seed}/{n}/{k}/{repeat}")
    requested, planned, reused = plan(pool, n, k, rng)
    canvas = background(pool, set(requested) | {f.subject for f in planned}, settings, rng)
    side = settings.size
    width = side / (n * (1 - settings.overlap) + settings.overlap)
    step = width * (1 - settings.overlap)
    figures, layers = [], []
    for index, figure in enumerate(planned):
        back = index % 2 == 1 and n > 2
        w = max(16, round(width * rng.uniform(0.9, 1.1) * (0.88 if back else 1.0)))
        with Image.open(pool[figure.subject].image) as reference:
            photo, mask = oval_cutout(reference, w)
        x = min(max(0, round(index * step + (width - w) / 2 + rng.uniform(-0.08, 0.08) * w)), side - w)
        bottom = side * (0.93 - (0.45 if back else 0.0) * width / side) + rng.uniform(-0.02, 0.02) * width
        y = min(max(0, round(bottom - photo.height)), side - photo.height)
        figures.append(Figure(figure.subject, figure.stands_for, (x, y, x + photo.width, y + photo.height)))
        layers.append((0 if back else 1, index, photo, mask, (x, y)))
    for _, _, photo, mask, position in sorted(layers, key=lambda layer: layer[:2]):
        canvas.paste(photo, position, mask)
    return Composite(f"n{n:02d}_k{k:02d}_r{repeat}", n, k, requested, figures, canvas, reused)


def composites(pool: Mapping[str, Subject], settings: StudySettings) -> list[Composite]:
    """Every (N, k, repeat) composite of the study, for the N the pool can fill."""
    counts = [n for n in settings.counts if n <= len(pool)]
    return [compose(pool, n, k, repeat, settings) for n in counts for k in range(n, -1, -1)
            for repeat in range(settings.repeats)]


# ---------------------------------------------------------------- measuring

def measure(pool: Mapping[str, Subject], config: ScoringConfig, settings: StudySettings,
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Score every composite as `score` would: per requested subject rows, ground-truth crop rows, provenance."""
    pictures = composites(pool, settings)
    if not pictures:
        raise BenchError(f"validity study: the pool ({len(pool)} subjects) is smaller than every count "
                         f"{settings.counts}")
    sources = [pil_source(c.image, c.key) for c in pictures]
    subjects = [c.requested for c in pictures]
    used = sorted({s for c in pictures for s in c.requested})
    references = {s: file_source(pool[s].image) for s in used}
    cast = {s: pool[s] for s in used}
    cache = EmbeddingCache(config.cache_dir) if config.cache_dir is not None else None
    device = pick_device()
    whole: dict[str, list[np.ndarray]] = {}
    weights: dict[str, Any] = {}
    matched, crops = None, []
    for name in BACKBONE_NAMES:
        if name == "dino":
            continue  # not part of the study
        engine = EmbeddingEngine(config.backbones[name], cache, config.batch_size, device, config.torch_dtype(device))
        generated = engine.embed(sources, "validity composites")
        refs = dict(zip(used, engine.embed([references[s] for s in used], "refs")))
        whole[name] = [cosines(np.stack([refs[s] for s in c.requested]), generated[i]) for i, c in enumerate(pictures)]
        if name == "dinov2" and config.matched is not None:
            detector = Detector(config.matched, engine.device, config.torch_dtype(engine.device))
            matched_refs = reference_embeddings(references, cast, engine, detector, cache)
            matched = score_matched(sources, subjects, cast, matched_refs.embeddings, engine, detector, cache)
            crops = truth_crops(pictures, pool, matched_refs.embeddings, engine)
            weights["detector"] = weights_record("detector", config.matched.detector, detector.description["detector"])
        weights[name] = weights_record(name, config.backbones[name], engine.description["weights"])
        engine.close()
    faces = None
    if config.face is not None:
        models = FaceModels(config.face)
        faces, _ = score_faces(models, sources, subjects, cast, references, cache)
        weights.update(models.records())
    rows = []
    for i, picture in enumerate(pictures):
        stand_in = {f.stands_for: f.subject for f in picture.figures}
        for slot, subject in enumerate(picture.requested):
            row: dict[str, Any] = {
                "key": picture.key, "n": picture.n, "k": picture.k, "slot": slot + 1, "subject_id": subject,
                "kind": pool[subject].kind, "present": int(stand_in[subject] == subject), "stand_in": stand_in[subject],
                "dinov2": float(whole["dinov2"][i][slot]), "clip_i": float(whole["clip"][i][slot])}
            if matched is not None:
                row["matched_dinov2"] = matched[i].cosines[slot]
            if faces is not None:
                row["face"], row["face_status"] = faces[i][slot].cosine, faces[i][slot].status
            rows.append(row)
    provenance = {"profile": scoring_label(config.profile, weights), "weights": weights,
                  "composites": len(pictures), "reused_impostors": sum(c.reused_impostors for c in pictures),
                  "matched": config.matched is not None, "face": config.face is not None}
    return rows, crops, provenance


def truth_crops(pictures: Sequence[Composite], pool: Mapping[str, Subject], references: Mapping[str, np.ndarray],
                engine: EmbeddingEngine) -> list[dict[str, Any]]:
    """Each placed figure's ground-truth box, padded and embedded, against every requested subject of its kind.

    This is the crop cosine distribution with detection taken out: `true` pairs (the figure is that subject)
    and `impostor` pairs (it is someone else of the same kind), for calibrating the crop thresholds.
    """
    sources, owners = [], []
    for picture in pictures:
        for index, figure in enumerate(picture.figures):
            sources.append(pil_source(crop(picture.image, figure.box), f"{picture.key} figure {index}"))
            owners.append((picture, index, figure))
    vectors = engine.embed(sources, "validity crops")
    rows = []
    for vector, (picture, index, figure) in zip(vectors, owners):
        for subject in picture.requested:
            if pool[subject].kind == pool[figure.subject].kind:
                rows.append({"key": picture.key, "figure": index, "figure_subject": figure.subject,
                             "reference": subject, "truth": "true" if subject == figure.subject else "impostor",
                             "cosine": float(cosines(vector[None], references[subject])[0])})
    return rows


# ---------------------------------------------------------------- analysis

def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a present subject scores above an absent one), ties counted half (the Mann-Whitney U / n1 n2)."""
    if not positives or not negatives:
        return None
    values = np.concatenate([positives, negatives])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # average ranks of ties
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[:len(positives)].sum() - len(positives) * (len(positives) + 1) / 2
    return float(u / (len(positives) * len(negatives)))


def subject_score(row: Mapping[str, Any], column: str) -> float | None:
    """A subject's cosine for `column`; a subject the detector (or face detector) missed scores -1, the lowest.

    None when the metric does not apply (a face for an animal, or a person whose reference shows no face).
    """
    if column == "face" and row.get("face_status") not in ("matched", "missing"):
        return None
    value = row.get(column)
    if value is None or value == "":
        return -1.0 if column in ("matched_dinov2", "face") and column in row else None
    return float(value)


def quantiles(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {f"p{q}": float(np.quantile(values, q / 100)) for q in (5, 25, 50, 75, 95)} | {"n": len(values)}


def analyse(rows: Sequence[Mapping[str, Any]], crops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Dose-response, AUROC, slope, cosine distributions and crop-threshold calibration."""
    metrics: dict[str, Any] = {}
    for metric, (label, column, tau) in METRICS.items():
        scored = [(row, subject_score(row, column)) for row in rows]
        scored = [(row, value) for row, value in scored if value is not None]
        if not scored:
            continue
        levels: dict[tuple[int, int], list[float]] = defaultdict(list)
        for row, value in scored:
            levels[(int(row["n"]), int(row["k"]))].append(float(value < tau) if tau is not None else value)
        by_picture: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for row, value in scored:
            truth = 1.0 - int(row["k"]) / int(row["n"])
            by_picture[row["key"]].append((truth, float(value < tau) if tau is not None else value))
        points = [(values[0][0], float(np.mean([v for _, v in values]))) for values in by_picture.values()]
        x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
        slope, intercept = (np.polyfit(x, y, 1) if len(set(x.tolist())) > 1 else (math.nan, math.nan))
        present = [v for row, v in scored if row["present"]]
        absent = [v for row, v in scored if not row["present"]]
        metrics[metric] = {
            "label": label, "column": column, "tau": tau,
            "levels": [{"n": n, "k": k, "collapsed_truth": 1 - k / n, "value": float(np.mean(values)),
                        "subjects": len(values)} for (n, k), values in sorted(levels.items())],
            "slope": float(slope), "intercept": float(intercept),
            "auroc": auroc(present, absent),
            "present": quantiles(present), "absent": quantiles(absent),
        }
    true = [float(c["cosine"]) for c in crops if c["truth"] == "true"]
    impostor = [float(c["cosine"]) for c in crops if c["truth"] == "impostor"]
    calibration = None
    if true and impostor:
        candidates = sorted(set(true + impostor))
        youden = max(candidates, key=lambda t: np.mean(np.array(true) >= t) - np.mean(np.array(impostor) >= t))
        calibration = {"true": quantiles(true), "impostor": quantiles(impostor),
                       "auroc": auroc(true, impostor), "impostor_p95": float(np.quantile(impostor, 0.95)),
                       "youden_tau": float(youden),
                       "impostors_present_at_tau": float(np.mean(np.array(impostor) >= TAU)),
                       "true_collapsed_at_tau": float(np.mean(np.array(true) < TAU))}
    return {"metrics": metrics, "crops": calibration}


def run_validity_study(params: Mapping[str, Any], results_dir: Path, where: str = "params.yaml") -> dict[str, Any]:
    """Build, score and analyse the composites; write results/validity/{study.csv, crops.csv, summary.json}."""
    settings = StudySettings.from_params(params)
    pool = load_pool(Path(params["suite"]["pool"]))
    config = ScoringConfig.from_params(params, where)
    rows, crops, provenance = measure(pool, config, settings)
    folder = Path(results_dir) / "validity"
    atomic_write_csv(folder / "study.csv", STUDY_COLUMNS, rows)
    atomic_write_csv(folder / "crops.csv", CROP_COLUMNS, crops)
    summary = {"version": STUDY_VERSION, "settings": asdict(settings), **provenance, **analyse(rows, crops)}
    atomic_write_json(folder / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """`python -m collapsebench.scoring.validity_study [--params params.yaml] [--results results]`."""
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    params = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    summary = run_validity_study(params, args.results, str(args.params))
    print(f"validity: {summary['composites']} composites ({summary['profile']} backbones) -> "
          f"{args.results / 'validity' / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
