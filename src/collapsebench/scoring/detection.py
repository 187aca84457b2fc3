"""Instance-level "matched SCR": find each person or animal, then ask which subject it is.

Why: the paper's SCR compares the WHOLE generated scene with a single-subject
reference. With N subjects in one frame each fills about 1/N of it, so the
whole-image cosine falls as N grows even when every identity is rendered
perfectly. Here an open-vocabulary detector (OWLv2, pinned revision) finds the
people and animals, each crop is embedded with DINOv2 through the embedding
cache, and crops are assigned to subjects one to one by Hungarian matching on
cosine. A subject left without a crop (fewer detections than subjects) counts
as collapsed. Two companions:

- count accuracy: the image's detections (score threshold, then NMS) number N;
- clone rate: a subject whose best-matching crop (argmax, not the assignment)
  is also the best match of another subject of the same image, i.e. several
  identities that all look most like one rendered individual.

Raw values per (image, subject) go to scores.csv (`matched_dinov2`,
`n_detections`, `best_crop`); `matched_cell` aggregates a Table 1 cell with
the same paired prompt bootstrap as the paper's columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from collapsebench.core.errors import BenchError
from collapsebench.core.hub import revision_kwargs
from collapsebench.scoring.backbones import (
    BackboneSpec,
    default_dtype,
    dtype_name,
    pick_device,
)
from collapsebench.scoring.embed_cache import (
    EmbeddingCache,
    ImageSource,
    pil_source,
    space_id,
    weights_identity,
)

DETECTION_VERSION = "1"  # bump when select_detections changes what is stored
DEFAULT_QUERIES = {"person": "a photo of a person", "animal": "a photo of an animal"}
# The paper setup's detector: what `scoring.matched.detector` falls back to (a test keeps both equal).
DEFAULT_DETECTOR: dict[str, str | None] = {"id": "google/owlv2-base-patch16-ensemble",
                                           "revision": "cfd3195ba4ea9592eec887ded089f4c08eff231d"}
_FIELDS = 6  # a stored detection: x0, y0, x1, y1, score, query index


@dataclass(frozen=True)
class MatchedSettings:
    """`params.yaml` scoring.matched, resolved to a detector folder or a pinned hub checkpoint."""

    detector: BackboneSpec
    queries: Mapping[str, str]  # subject kind -> text query
    score_threshold: float = 0.2
    nms_iou: float = 0.3
    max_detections: int = 20
    batch_size: int = 4


# ---------------------------------------------------------------- detection

def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of `others`."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def select_detections(scores: np.ndarray, boxes: np.ndarray, size: tuple[int, int], allowed: np.ndarray,
                      threshold: float, nms_iou: float, max_detections: int, square: bool) -> np.ndarray:
    """Raw OWL outputs of one image -> (k, 6) detections [x0, y0, x1, y1, score, query], best first.

    `scores` (P, Q) are per-query probabilities, `boxes` (P, 4) normalized
    (cx, cy, w, h). OWLv2 pads the image to a square (bottom/right) before
    resizing, so its boxes are relative to the padded side (`square=True`);
    OWL-ViT stretches, so its boxes are relative to width and height. Only the
    queries of kinds present in the prompt count (`allowed`); overlapping boxes
    are suppressed class-agnostically, since one individual is one crop.
    """
    width, height = size
    masked = np.where(allowed[None, :], scores, -np.inf)
    best, query = masked.max(axis=1), masked.argmax(axis=1)
    scale = np.array([max(size)] * 2 if square else [width, height], dtype=np.float64)
    centers, extents = boxes[:, :2] * scale, boxes[:, 2:] * scale
    xyxy = np.concatenate([centers - extents / 2, centers + extents / 2], axis=1)
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    keep = (best >= threshold) & (xyxy[:, 2] - xyxy[:, 0] >= 2) & (xyxy[:, 3] - xyxy[:, 1] >= 2)
    order = [i for i in np.argsort(-best, kind="stable") if keep[i]]
    chosen: list[int] = []
    for index in order:
        if len(chosen) == max_detections:
            break
        if not chosen or box_iou(xyxy[index], xyxy[chosen]).max() <= nms_iou:
            chosen.append(index)
    if not chosen:
        return np.zeros((0, _FIELDS), dtype=np.float32)
    return np.column_stack([xyxy[chosen], best[chosen], query[chosen]]).astype(np.float32)


class Detector:
    """An OWL-family open-vocabulary detector, loaded lazily with `from_pretrained` (pinned revision)."""

    def __init__(self, settings: MatchedSettings, device: torch.device | None = None,
                 dtype: torch.dtype | None = None) -> None:
        from transformers import AutoConfig, AutoProcessor

        self.settings = settings
        self.device = device or pick_device()
        self.dtype = dtype or default_dtype(self.device)
        spec = settings.detector
        self._kwargs = revision_kwargs(spec.revision)
        try:
            self.processor = AutoProcessor.from_pretrained(spec.source, **self._kwargs)
            config = AutoConfig.from_pretrained(spec.source, **self._kwargs)
        except OSError as error:
            hint = "Or disable scoring.matched."
            raise BenchError(f"{spec.load_error('matched SCR detector', error)} {hint}") from error
        if config.model_type not in ("owlv2", "owlvit"):
            raise BenchError(f"matched SCR: detector {spec.label} is a {config.model_type!r}; "
                             "expected OWLv2 or OWL-ViT")
        self.square = config.model_type == "owlv2"
        self.max_text = int(config.text_config.max_position_embeddings)
        self.kinds = tuple(settings.queries)
        self.description = {
            "detector": weights_identity(spec.source, spec.revision),
            "preprocessing": self.processor.image_processor.to_dict(),
            "queries": dict(settings.queries), "score_threshold": settings.score_threshold,
            "nms_iou": settings.nms_iou, "max_detections": settings.max_detections,
            "dtype": dtype_name(self.dtype), "version": DETECTION_VERSION,
        }
        self.space = "det-" + space_id(self.description)
        self._model: Any = None
        self.forwarded = 0

    @property
    def model(self) -> Any:
        if self._model is None:
            from transformers import AutoModelForZeroShotObjectDetection

            self._model = AutoModelForZeroShotObjectDetection.from_pretrained(
                self.settings.detector.source, **self._kwargs).to(self.device, dtype=self.dtype).eval()
        return self._model

    @torch.inference_mode()
    def detect(self, images: list[Image.Image], kinds: Sequence[frozenset[str]]) -> list[np.ndarray]:
        """One (k, 6) detection array per image, restricted to the kinds of that image's subjects."""
        queries = [self.settings.queries[kind] for kind in self.kinds]
        inputs = self.processor(text=[queries] * len(images), images=images, return_tensors="pt",
                                padding="max_length", truncation=True, max_length=self.max_text)
        model = self.model
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        output = model(**inputs)
        scores = torch.sigmoid(output.logits.float()).cpu().numpy()
        boxes = output.pred_boxes.float().cpu().numpy()
        self.forwarded += len(images)
        return [select_detections(scores[i], boxes[i], image.size, np.array([k in kinds[i] for k in self.kinds]),
                                  self.settings.score_threshold, self.settings.nms_iou,
                                  self.settings.max_detections, self.square)
                for i, image in enumerate(images)]


class Detects(Protocol):
    """What `detect_cached` needs of a detector (tests pass one that returns known boxes)."""

    space: str
    settings: MatchedSettings

    def detect(self, images: list[Image.Image], kinds: Sequence[frozenset[str]]) -> list[np.ndarray]: ...


class Embeds(Protocol):
    """What `score_matched` needs of a crop embedder (an `EmbeddingEngine`)."""

    def embed(self, sources: Sequence[ImageSource], desc: str = ...) -> np.ndarray: ...


def detect_cached(detector: Detects, sources: Sequence[ImageSource], kinds: Sequence[frozenset[str]],
                  cache: EmbeddingCache | None) -> list[np.ndarray]:
    """Detections per image, each unique (image content, kinds) run through the detector once."""
    keys = [hashlib.sha256(f"{s.digest}|{','.join(sorted(k))}".encode()).hexdigest() for s, k in zip(sources, kinds)]
    found: dict[str, np.ndarray] = {}
    todo: dict[str, int] = {}
    for index, key in enumerate(keys):
        stored = cache.get(detector.space, key) if cache is not None else None
        if stored is not None and len(stored) % _FIELDS == 0:
            found[key] = stored.reshape(-1, _FIELDS)
        elif key not in found:
            todo.setdefault(key, index)
    pending = list(todo.items())
    for start in range(0, len(pending), detector.settings.batch_size):
        batch = pending[start:start + detector.settings.batch_size]
        results = detector.detect([sources[i].load() for _, i in batch], [kinds[i] for _, i in batch])
        for (key, _), detections in zip(batch, results):
            found[key] = detections
            if cache is not None:
                cache.put(detector.space, key, detections.reshape(-1))
    return [found[key] for key in keys]


# ---------------------------------------------------------------- matching

@dataclass
class ImageMatch:
    """One image's instance-level result, per subject slot."""

    n_detections: int
    cosines: list[float | None]  # the assigned crop's cosine; None = no crop left for this subject (collapsed)
    best_crop: list[int | None]  # index of the subject's most similar crop; None when there are no crops
    assigned: list[int | None]  # index of the crop the assignment gave the subject


def match_subjects(similarity: np.ndarray) -> ImageMatch:
    """Hungarian assignment of crops to subjects on cosine (rows: subjects, columns: crops).

    Maximizes the summed cosine of a one-to-one assignment; with fewer crops
    than subjects the left-over subjects get no crop. `best_crop` is the plain
    argmax per subject (first index on exact ties), used by the clone rate.
    """
    n_subjects, n_crops = similarity.shape
    cosines: list[float | None] = [None] * n_subjects
    assigned: list[int | None] = [None] * n_subjects
    if n_crops:
        rows, columns = linear_sum_assignment(similarity, maximize=True)
        for row, column in zip(rows, columns):
            cosines[row], assigned[row] = float(similarity[row, column]), int(column)
    best = [int(np.argmax(similarity[row])) if n_crops else None for row in range(n_subjects)]
    return ImageMatch(n_detections=n_crops, cosines=cosines, best_crop=best, assigned=assigned)


def crop(image: Image.Image, detection: np.ndarray) -> Image.Image:
    x0, y0, x1, y1 = (int(round(float(v))) for v in detection[:4])
    return image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))


def score_matched(images: Sequence[ImageSource], subjects: Sequence[Sequence[str]], kinds: Mapping[str, str],
                  references: Mapping[str, np.ndarray], engine: Embeds, detector: Detects,
                  cache: EmbeddingCache | None, chunk: int = 32) -> list[ImageMatch]:
    """Detect, crop, embed (DINOv2, cached) and match, `chunk` images at a time (bounded memory).

    `references` maps subject id -> its DINOv2 reference embedding (the same
    engine's space), `kinds` subject id -> person/animal.
    """
    results: list[ImageMatch] = []
    for start in tqdm(range(0, len(images), chunk), desc="matched SCR", unit="chunk", leave=False):
        sources, subject_lists = images[start:start + chunk], subjects[start:start + chunk]
        image_kinds = [frozenset(kinds[s] for s in ids) for ids in subject_lists]
        detections = detect_cached(detector, sources, image_kinds, cache)
        crops: list[list[ImageSource]] = []
        for source, found in zip(sources, detections):
            decoded = source.load() if len(found) else None  # no boxes: the image is not even decoded
            crops.append([pil_source(crop(decoded, d), f"{source.label} box {j}")
                          for j, d in enumerate(found) if decoded is not None])
        flat = [c for image_crops in crops for c in image_crops]
        vectors = engine.embed(flat, desc="crops") if flat else np.zeros((0, 0), dtype=np.float32)
        offset = 0
        for ids, image_crops in zip(subject_lists, crops):
            mine = vectors[offset:offset + len(image_crops)]
            offset += len(image_crops)
            refs = np.stack([references[s] for s in ids])
            similarity = refs @ mine.T if len(image_crops) else np.zeros((len(ids), 0))
            results.append(match_subjects(similarity))
    return results
