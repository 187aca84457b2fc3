"""The score stage: raw cosines per (image, subject) for one model's images.

Nothing is aggregated here (that is the report's job), so any metric can be
recomputed from `scores.csv` alone. Each backbone is loaded once, references
are embedded once per backbone, images are embedded in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from .backbones import BACKBONE_NAMES, BackboneSpec, ClipText, ImageBackbone
from .errors import BenchError
from .generate import load_manifest
from .io import atomic_write_csv, atomic_write_json
from .pool import Subject

SCORE_COLUMNS = ("model", "prompt_id", "seed", "n_subjects", "scene", "slot", "subject_id",
                 "dinov2", "dino", "clip_i", "clip_t")


@dataclass
class ScoreSummary:
    n_images: int
    n_rows: int
    truncated_prompts: int


def embed_images(backbone: ImageBackbone, paths: Sequence[Path], batch_size: int, desc: str) -> np.ndarray:
    """Embed images in batches, holding one batch of decoded images in memory at a time."""
    chunks = []
    for start in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch", leave=False):
        batch = []
        for path in paths[start:start + batch_size]:
            try:
                with Image.open(path) as image:
                    batch.append(image.convert("RGB"))
            except OSError as error:
                raise BenchError(f"{path}: cannot decode image ({error})") from error
        chunks.append(backbone.embed_images(batch))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def run_score(model: str, out_dir: Path, pool: dict[str, Subject], specs: dict[str, BackboneSpec],
              profile: str, batch_size: int = 16) -> ScoreSummary:
    records = sorted(load_manifest(out_dir), key=lambda r: (r["prompt_id"], r["seed"]))
    if not records:
        raise BenchError(f"{out_dir / 'manifest.jsonl'}: no finished images to score")
    unknown = sorted({s for r in records for s in r["subjects"] if s not in pool})
    if unknown:
        raise BenchError(f"{out_dir / 'manifest.jsonl'}: subjects {unknown} are not in the subject pool")
    image_paths = [out_dir / r["image"] for r in records]
    subject_ids = sorted({s for r in records for s in r["subjects"]})
    reference_paths = [pool[s].image for s in subject_ids]

    cosines: dict[str, list[np.ndarray]] = {}
    clip_t = np.zeros(len(records))
    truncated = 0
    resolved: dict[str, str | None] = {}
    for name in BACKBONE_NAMES:
        backbone = ImageBackbone(specs[name])
        resolved[name] = backbone.commit_hash
        generated = embed_images(backbone, image_paths, batch_size, f"score {model} [{name}]")
        references = dict(zip(subject_ids, embed_images(backbone, reference_paths, batch_size, f"refs [{name}]")))
        cosines[name] = [references_matrix(references, r["subjects"]) @ generated[i] for i, r in enumerate(records)]
        if name == "clip":
            text = ClipText(backbone)
            prompts = [r["prompt"] for r in records]
            text_embeddings = np.concatenate([text.embed_texts(prompts[i:i + batch_size])
                                              for i in range(0, len(prompts), batch_size)])
            clip_t = np.sum(text_embeddings * generated, axis=1)
            truncated = text.truncated
        del backbone

    rows: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        for slot, subject_id in enumerate(record["subjects"], start=1):
            rows.append({
                "model": model, "prompt_id": record["prompt_id"], "seed": record["seed"],
                "n_subjects": record["n_subjects"], "scene": record["scene"], "slot": slot, "subject_id": subject_id,
                "dinov2": float(cosines["dinov2"][i][slot - 1]), "dino": float(cosines["dino"][i][slot - 1]),
                "clip_i": float(cosines["clip"][i][slot - 1]), "clip_t": float(clip_t[i]),
            })
    atomic_write_csv(out_dir / "scores.csv", SCORE_COLUMNS, rows)
    atomic_write_json(out_dir / "scoring.json", {
        "profile": profile,
        "backbones": {name: spec.label for name, spec in specs.items()},
        "resolved_revisions": resolved,
        "n_images": len(records),
        "n_rows": len(rows),
        "clip_t_truncated_prompts": truncated,
        "clip_max_tokens": 77,
    })
    return ScoreSummary(n_images=len(records), n_rows=len(rows), truncated_prompts=truncated)


def references_matrix(references: dict[str, np.ndarray], subjects: Sequence[str]) -> np.ndarray:
    """Rows = the prompt's subjects' reference embeddings, in slot order."""
    return np.stack([references[s] for s in subjects])
