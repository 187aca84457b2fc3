"""The score stage: raw cosines per (image, subject) for one model's images.

Nothing is aggregated here (that is the report's job), so any metric can be
recomputed from `scores.csv` alone. Embeddings go through the embedding
engine (`embed_cache`): each unique image content is embedded once per
backbone revision, in batches, and shared on disk by every model and run; a
backbone is loaded only if something is not cached yet. With
`scoring.matched` enabled, the instance-level columns (`matched.py`) are
filled too; otherwise they stay empty.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collapsebench.benchmark.casting import pool_id
from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_csv, atomic_write_json, sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.core.metric_table import RAW_SCORES, SCORE_COLUMNS
from collapsebench.core.runlog import append_run_log
from collapsebench.scoring.backbones import (
    BACKBONE_NAMES,
    ClipText,
    pick_device,
)
from collapsebench.scoring.checkpoints import scoring_label, weights_record
from collapsebench.scoring.config import ScoringConfig
from collapsebench.scoring.cosine import cosines
from collapsebench.scoring.detection import (
    Detector,
    ImageMatch,
    reference_embeddings,
    score_matched,
)
from collapsebench.scoring.embed_cache import (
    EmbeddingCache,
    EmbeddingEngine,
    ImageSource,
    file_source,
)
from collapsebench.scoring.face import FaceMatch, FaceModels, score_faces


@dataclass
class ScoreSummary:
    n_images: int
    n_rows: int
    truncated_prompts: int


def pair_cosines(engine: EmbeddingEngine, images: Sequence[ImageSource], subjects: Sequence[Sequence[str]],
                 references: dict[str, ImageSource],
                 desc: str) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Whole-image cosines per image with its subjects (slot order), plus the embeddings behind them."""
    generated = engine.embed(images, desc)
    ids = sorted(references)
    embedded = dict(zip(ids, engine.embed([references[s] for s in ids], "refs")))
    whole = [cosines(references_matrix(embedded, subjects[i]), generated[i]) for i in range(len(images))]
    return whole, generated, embedded


def run_score(model: str, out_dir: Path, pool: dict[str, Subject], config: ScoringConfig) -> ScoreSummary:
    """Score every finished image of `out_dir`, each first checked against its manifest sha256.

    Matched columns come after the paper's and stay empty when `config.matched` is None;
    matched_dinov2 is also empty for a subject left without a crop (it counts as collapsed).
    """
    records = Manifest(out_dir).load_checked()
    if not records:
        raise BenchError(f"{out_dir / 'manifest.jsonl'}: no finished images to score")
    unknown = sorted({s for r in records for s in r["subjects"] if s not in pool})
    if unknown:
        raise BenchError(f"{out_dir / 'manifest.jsonl'}: subjects {unknown} are not in the subject pool")
    identity = pool_id(pool)
    other = sorted({str(r["pool"]) for r in records if r.get("pool") not in (None, identity)})
    if other:  # the references would not be the ones the images were made from
        raise BenchError(f"{out_dir / 'manifest.jsonl'}: images were made with pool {other}, but params.yaml's "
                         f"pool is {identity}; score with that pool, or run `collapsebench generate` again")
    images = [file_source(out_dir / r["image"]) for r in records]
    subjects = [list(r["subjects"]) for r in records]
    references = {s: file_source(pool[s].image) for s in sorted({s for ids in subjects for s in ids})}
    cache = EmbeddingCache(config.cache_dir) if config.cache_dir is not None else None
    batch_size = config.batch_size

    whole: dict[str, list[np.ndarray]] = {}
    clip_t = np.zeros(len(records))
    truncated = 0
    resolved: dict[str, str | None] = {}
    weights: dict[str, dict[str, Any]] = {}  # per checkpoint: what was loaded (id or folder, commit, sha256)
    forwarded: dict[str, int] = {}
    matches: list[ImageMatch] | None = None
    detector: Detector | None = None
    cast = {s: pool[s] for s in references}
    references_cropped: dict[str, bool] = {}
    device = pick_device()
    for name in BACKBONE_NAMES:
        engine = EmbeddingEngine(config.backbones[name], cache, batch_size, device, config.torch_dtype(device))
        resolved[name] = engine.description["weights"].get("commit")
        whole[name], generated, _ = pair_cosines(engine, images, subjects, references, f"score {model}")
        if name == "dinov2" and config.matched is not None:
            detector = Detector(config.matched, engine.device, config.torch_dtype(engine.device))
            matched_refs = reference_embeddings(references, cast, engine, detector, cache)
            references_cropped = matched_refs.cropped
            matches = score_matched(images, subjects, cast, matched_refs.embeddings, engine, detector, cache)
        if name == "clip":
            text = ClipText(engine.backbone)
            prompts = [r["prompt"] for r in records]
            text_embeddings = np.concatenate([text.embed_texts(prompts[i:i + batch_size])
                                              for i in range(0, len(prompts), batch_size)])
            clip_t = np.sum(text_embeddings * generated, axis=1)
            truncated = text.truncated
        forwarded[name] = engine.forwarded
        weights[name] = weights_record(name, config.backbones[name], engine.description["weights"])
        engine.close()
    if detector is not None:
        weights["detector"] = weights_record("detector", detector.settings.detector, detector.description["detector"])
    faces: list[list[FaceMatch]] | None = None
    face_models = FaceModels(config.face) if config.face is not None else None
    reference_faces: dict[str, bool] = {}
    if face_models is not None:
        faces, reference_faces = score_faces(face_models, images, subjects, cast, references, cache)
        weights.update(face_models.records())

    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        for slot, subject_id in enumerate(record["subjects"], start=1):
            rows.append({
                "model": model, "prompt_id": record["prompt_id"], "seed": record["seed"],
                "n_subjects": record["n_subjects"], "scene": record["scene"], "slot": slot, "subject_id": subject_id,
                **{raw.column: float(clip_t[i]) if raw.column == "clip_t" else float(whole[raw.backbone][i][slot - 1])
                   for raw in RAW_SCORES},
                **(_matched_values(matches[i], slot) if matches is not None else {}),
                "kind": pool[subject_id].kind,
                **(_face_values(faces[i][slot - 1]) if faces is not None else {}),
            })
    atomic_write_csv(out_dir / "scores.csv", SCORE_COLUMNS, rows)
    atomic_write_json(out_dir / "scoring.json", {
        "profile": scoring_label(config.profile, weights),  # real only when every checkpoint is the pinned one
        "weights": weights,
        "pool": identity,  # the references every cosine compares with
        "backbones": {name: spec.label for name, spec in config.backbones.items()},
        "columns": list(SCORE_COLUMNS),  # with n_rows: what `report` checks scores.csv against
        "dtype": config.dtype,
        # Where the numbers were computed: the docker runner sets both inside the pinned scoring image.
        "container": {"runner": os.environ.get("COLLAPSEBENCH_RUNNER", "local"),
                      "image_id": os.environ.get("COLLAPSEBENCH_IMAGE_DIGEST")},
        "resolved_revisions": resolved,
        "n_images": len(records),
        "n_rows": len(rows),
        "clip_t_truncated_prompts": truncated,
        "clip_max_tokens": 77,
        "matched": None if detector is None else {
            **detector.settings.record(), "resolved": detector.description["detector"],
            "references_without_a_box": sorted(s for s, found in references_cropped.items() if not found),
        },
        "face": None if face_models is None else {
            **face_models.settings.record(),
            "references_without_a_face": sorted(s for s, found in reference_faces.items() if not found),
        },
    })
    # Work actually done this run (0 everywhere = everything came from the cache): the run log, not scoring.json,
    # which must not change when only the cache's state did (core/runlog.py).
    append_run_log(out_dir, "score", {
        "scores_sha256": sha256_file(out_dir / "scores.csv"),  # these scores were made here (reporting/origin.py)
        "images_through_backbones": forwarded,
        "embedding_cache": None if cache is None else vars(cache.stats),
        "matched_images_through_detector": None if detector is None else detector.forwarded,
        "face_images_through_detector": None if face_models is None else face_models.forwarded,
    })
    return ScoreSummary(n_images=len(records), n_rows=len(rows), truncated_prompts=truncated)


def _matched_values(match: ImageMatch, slot: int) -> dict[str, Any]:
    index = slot - 1
    return {"matched_dinov2": match.cosines[index], "n_detections": match.n_detections,
            "best_crop": match.best_crop[index], "best_cosine": match.best_cosine[index],
            "clone": int(match.clone[index]), "clone_null": match.clone_null[index]}


def _face_values(match: FaceMatch) -> dict[str, Any]:
    return {"face": match.cosine, "face_status": match.status}


def references_matrix(references: dict[str, np.ndarray], subjects: Sequence[str]) -> np.ndarray:
    """Rows = the prompt's subjects' reference embeddings, in slot order."""
    return np.stack([references[s] for s in subjects])
