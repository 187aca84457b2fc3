"""Instance-level "matched SCR": find each person or animal, then ask which subject it is.

Why: the paper's SCR compares the WHOLE generated scene with a single-subject
reference. With N subjects in one frame each fills about 1/N of it, so the
whole-image cosine falls as N grows even when every identity is rendered
perfectly. Here an open-vocabulary detector (OWLv2, pinned revision) finds the
people and animals, each crop is embedded with DINOv2 through the embedding
cache, and crops are assigned to subjects one to one. The rules that make this
sound on real images (issue 14):

- crops and references are padded to a white square before the backbone's own
  preprocessing (resize shortest edge + center crop), which would otherwise cut
  the head off a tall full-body crop (XVerseBench pads the same way);
- the reference side is a crop too: the subject is detected in its reference
  and that box is embedded (the whole reference, padded, when nothing is found),
  so crop is compared with crop;
- queries come from each subject's kind and noun ("a photo of a beagle", plus
  the kind's generic query), not one generic query per kind;
- non-maximum suppression is class-aware: a box suppresses only boxes of its own
  kind, so a person hugging a dog keeps both; boxes of one kind merge across
  nouns ("man" and "person" on one individual are one box);
- the assignment (Hungarian, maximal summed cosine) is one-to-one and only
  between subjects and detections of the same kind: a person is never matched
  to an animal;
- a subject left without a detection of its kind is "missing": it counts as
  collapsed in matched SCR and is also reported on its own (missing rate), so
  detection failure and identity failure can be told apart.

Two companions per subject:

- clone: its best same-kind crop (argmax, not the assignment) is also the best
  crop of another subject, and both best cosines clear `clone_floor` (a subject
  that looks like nothing is missing, not cloned);
- clone_null: the chance of that if each of those subjects picked its best crop
  at random among its image's k crops of its kind (a permutation null):
  1 - (1 - 1/k)^(m - 1) with m subjects above the floor. At N = k = 10 that is
  about 0.61: a clone rate is only read against this baseline.

Raw values per (image, subject) go to scores.csv; reporting/matched_cells.py
aggregates a Table 1 cell with the same paired prompt bootstrap as the paper's
columns.
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

from collapsebench.benchmark.pool import KINDS
from collapsebench.core.errors import BenchError
from collapsebench.core.hub import revision_kwargs
from collapsebench.scoring.backbones import (
    BackboneSpec,
    default_dtype,
    dtype_name,
    pick_device,
)
from collapsebench.scoring.cosine import cosines
from collapsebench.scoring.embed_cache import (
    EmbeddingCache,
    ImageSource,
    pil_source,
    space_id,
    weights_identity,
)

DETECTION_VERSION = "2"  # 2: per-subject queries, class-aware NMS (bump when select_detections changes)
DEFAULT_QUERIES = {"person": "a photo of a person", "animal": "a photo of an animal"}  # each kind's generic query
QUERY_TEMPLATE = "a photo of {article} {noun}"
# The paper setup's detector: what `scoring.matched.detector` falls back to (a test keeps both equal).
DEFAULT_DETECTOR: dict[str, str | None] = {"id": "google/owlv2-base-patch16-ensemble",
                                           "revision": "cfd3195ba4ea9592eec887ded089f4c08eff231d"}
PAD_FILL = (255, 255, 255)  # crops and references are padded to a white square (as XVerseBench does)
_FIELDS = 6  # a stored detection: x0, y0, x1, y1, score, kind index (into KINDS)
# Words after which a short phrase stops naming its subject ("a man with a camera" -> man).
_PHRASE_STOPS = {"with", "in", "on", "wearing", "holding", "who", "that", "and", "of", "at", "from", "under", "by"}
_ARTICLES = {"a", "an", "the"}


@dataclass(frozen=True)
class MatchedSettings:
    """`params.yaml` scoring.matched, resolved to a detector folder or a pinned hub checkpoint."""

    detector: BackboneSpec
    queries: Mapping[str, str]  # subject kind -> its generic text query (asked beside the subjects' own nouns)
    score_threshold: float = 0.2
    nms_iou: float = 0.3
    max_detections: int = 20
    batch_size: int = 4
    clone_floor: float = 0.4  # a best crop below this cosine makes no clone (see the validity study's impostors)

    def record(self) -> dict[str, Any]:
        """What scoring.json says about matched scoring (besides the detector's identity)."""
        return {"detector": self.detector.label, "queries": dict(self.queries), "query_template": QUERY_TEMPLATE,
                "score_threshold": self.score_threshold, "nms_iou": self.nms_iou, "nms": "per kind",
                "max_detections": self.max_detections, "clone_floor": self.clone_floor, "pad": "white square",
                "version": DETECTION_VERSION}


class Cast(Protocol):
    """What matching needs to know of a subject (a pool `Subject` is one)."""

    kind: str
    phrase: str


# ---------------------------------------------------------------- queries

def subject_noun(phrase: str) -> str:
    """The head noun of a short subject phrase: "an elderly navy officer" -> officer, "a man in a hat" -> man."""
    words = [w.strip(".,;:!?\"'()").lower() for w in phrase.split()]
    words = [w for w in words if w]
    while words and words[0] in _ARTICLES:
        words = words[1:]
    for index, word in enumerate(words):
        if word in _PHRASE_STOPS and index:
            words = words[:index]
            break
    return words[-1] if words else phrase.strip().lower()


def subject_query(phrase: str) -> str:
    """The detector query of one subject: "a photo of a beagle"."""
    noun = subject_noun(phrase)
    return QUERY_TEMPLATE.format(article="an" if noun[:1] in "aeiou" else "a", noun=noun)


def image_queries(subjects: Sequence[str], cast: Mapping[str, Cast],
                  generic: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """(query, kind index) pairs asked for one image: each subject's noun query and its kind's generic query."""
    pairs: dict[str, int] = {}
    for subject in subjects:
        kind = KINDS.index(cast[subject].kind)
        pairs.setdefault(subject_query(cast[subject].phrase), kind)
        pairs.setdefault(generic[cast[subject].kind], kind)
    return tuple(sorted(pairs.items()))


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


def select_detections(scores: np.ndarray, boxes: np.ndarray, size: tuple[int, int], query_kinds: np.ndarray,
                      allowed: np.ndarray, threshold: float, nms_iou: float, max_detections: int,
                      square: bool) -> np.ndarray:
    """Raw OWL outputs of one image -> (k, 6) detections [x0, y0, x1, y1, score, kind], best first.

    `scores` (P, Q) are per-query probabilities, `boxes` (P, 4) normalized
    (cx, cy, w, h); `query_kinds` (Q,) the kind index of each query and
    `allowed` (Q,) the queries this image asked. A box's kind is the kind of
    its best allowed query. OWLv2 pads the image to a square (bottom/right)
    before resizing, so its boxes are relative to the padded side
    (`square=True`); OWL-ViT stretches, so its boxes are relative to width and
    height. NMS is class-aware: a box only suppresses boxes of its own kind.
    """
    width, height = size
    masked = np.where(allowed[None, :], scores, -np.inf)
    query = masked.argmax(axis=1)
    best, kind = masked.max(axis=1), query_kinds[query]
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
        same = [c for c in chosen if kind[c] == kind[index]]
        if not same or box_iou(xyxy[index], xyxy[same]).max() <= nms_iou:
            chosen.append(index)
    if not chosen:
        return np.zeros((0, _FIELDS), dtype=np.float32)
    return np.column_stack([xyxy[chosen], best[chosen], kind[chosen]]).astype(np.float32)


Queries = tuple[tuple[str, int], ...]  # (text query, kind index) pairs of one image


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
        self.description = {
            "detector": weights_identity(spec.source, spec.revision),
            "preprocessing": self.processor.image_processor.to_dict(),
            "score_threshold": settings.score_threshold, "nms_iou": settings.nms_iou,
            "max_detections": settings.max_detections, "dtype": dtype_name(self.dtype), "version": DETECTION_VERSION,
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
    def detect(self, images: list[Image.Image], queries: Sequence[Queries]) -> list[np.ndarray]:
        """One (k, 6) detection array per image, from that image's own queries.

        The batch asks the union of its images' queries (OWL scores each query
        independently), then each image keeps only its own.
        """
        union = sorted({pair for pairs in queries for pair in pairs})
        texts = [text for text, _ in union]
        inputs = self.processor(text=[texts] * len(images), images=images, return_tensors="pt",
                                padding="max_length", truncation=True, max_length=self.max_text)
        model = self.model
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        output = model(**inputs)
        scores = torch.sigmoid(output.logits.float()).cpu().numpy()
        boxes = output.pred_boxes.float().cpu().numpy()
        self.forwarded += len(images)
        kinds = np.array([kind for _, kind in union])
        return [select_detections(scores[i], boxes[i], image.size, kinds, np.array([p in queries[i] for p in union]),
                                  self.settings.score_threshold, self.settings.nms_iou,
                                  self.settings.max_detections, self.square)
                for i, image in enumerate(images)]


class Detects(Protocol):
    """What `detect_cached` needs of a detector (tests pass one that returns known boxes)."""

    space: str
    settings: MatchedSettings

    def detect(self, images: list[Image.Image], queries: Sequence[Queries]) -> list[np.ndarray]: ...


class Embeds(Protocol):
    """What `score_matched` needs of a crop embedder (an `EmbeddingEngine`)."""

    def embed(self, sources: Sequence[ImageSource], desc: str = ...) -> np.ndarray: ...


def detect_cached(detector: Detects, sources: Sequence[ImageSource], queries: Sequence[Queries],
                  cache: EmbeddingCache | None) -> list[np.ndarray]:
    """Detections per image, each unique (image content, queries) run through the detector once."""
    keys = [hashlib.sha256(f"{s.digest}|{q!r}".encode()).hexdigest() for s, q in zip(sources, queries)]
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
        results = detector.detect([sources[i].load() for _, i in batch], [queries[i] for _, i in batch])
        for (key, _), detections in zip(batch, results):
            found[key] = detections
            if cache is not None:
                cache.put(detector.space, key, detections.reshape(-1))
    return [found[key] for key in keys]


# ---------------------------------------------------------------- crops

def pad_square(image: Image.Image, fill: tuple[int, int, int] = PAD_FILL) -> Image.Image:
    """The image centred on a square of `fill`, so a center crop keeps all of it (a tall crop keeps its head)."""
    rgb = image.convert("RGB")
    side = max(rgb.size)
    if rgb.width == rgb.height:
        return rgb
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    return canvas


def crop(image: Image.Image, detection: Sequence[float] | np.ndarray) -> Image.Image:
    """The box [x0, y0, x1, y1, ...] of `image` (at least one pixel), padded to a white square."""
    x0, y0, x1, y1 = (round(float(v)) for v in detection[:4])
    return pad_square(image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))))


# ---------------------------------------------------------------- matching

@dataclass
class ImageMatch:
    """One image's instance-level result, per subject slot."""

    n_detections: int
    cosines: list[float | None]  # the assigned crop's cosine; None = missing (no crop of its kind left)
    best_crop: list[int | None]  # index of the subject's most similar same-kind crop; None when there is none
    assigned: list[int | None]  # index of the crop the assignment gave the subject
    best_cosine: list[float | None]  # the cosine of `best_crop`
    clone: list[bool]  # shares its best crop with another subject, both above the clone floor
    clone_null: list[float]  # the chance of `clone` under the permutation null


def match_subjects(similarity: np.ndarray, subject_kinds: Sequence[int] | None = None,
                   crop_kinds: Sequence[int] | None = None, clone_floor: float = -1.0) -> ImageMatch:
    """One-to-one assignment of crops to subjects within each kind (rows: subjects, columns: crops).

    Per kind, the Hungarian method maximizes the summed cosine; with fewer crops
    of a kind than subjects of it the left-over subjects get none (missing).
    `best_crop` is the plain argmax over same-kind crops (first index on exact
    ties), used by the clone flags; see the module docstring for the null.
    Kinds default to one shared kind; `clone_floor` -1 counts every best crop.
    """
    n_subjects, n_crops = similarity.shape
    subject_kinds = np.zeros(n_subjects, int) if subject_kinds is None else np.asarray(subject_kinds)
    crop_kinds = np.zeros(n_crops, int) if crop_kinds is None else np.asarray(crop_kinds)
    match = ImageMatch(n_crops, [None] * n_subjects, [None] * n_subjects, [None] * n_subjects, [None] * n_subjects,
                       [False] * n_subjects, [0.0] * n_subjects)
    for kind in sorted(set(subject_kinds.tolist())):
        rows = np.flatnonzero(subject_kinds == kind)
        columns = np.flatnonzero(crop_kinds == kind)
        if not len(columns):
            continue
        block = similarity[np.ix_(rows, columns)]
        for row, column in zip(*linear_sum_assignment(block, maximize=True)):
            match.cosines[rows[row]] = float(block[row, column])
            match.assigned[rows[row]] = int(columns[column])
        for row, subject in enumerate(rows):
            best = int(np.argmax(block[row]))
            match.best_crop[subject], match.best_cosine[subject] = int(columns[best]), float(block[row, best])
        above = [s for s in rows if match.best_cosine[s] is not None and match.best_cosine[s] >= clone_floor]
        picks = [match.best_crop[s] for s in above]
        null = 1.0 - (1.0 - 1.0 / len(columns)) ** (len(above) - 1) if above else 0.0
        for subject in above:
            match.clone[subject] = picks.count(match.best_crop[subject]) > 1
            match.clone_null[subject] = null
    return match


@dataclass
class MatchedReferences:
    """Each subject's matched-SCR reference embedding, and whether it came from a detected box."""

    embeddings: dict[str, np.ndarray]
    cropped: dict[str, bool]  # False: nothing of its kind was found in the reference; the whole image was used


def reference_embeddings(references: Mapping[str, ImageSource], cast: Mapping[str, Cast], engine: Embeds,
                         detector: Detects, cache: EmbeddingCache | None) -> MatchedReferences:
    """Embed each subject's reference the way generated crops are embedded: its best box of its kind, padded."""
    ids = sorted(references)
    queries = [image_queries([s], cast, detector.settings.queries) for s in ids]
    detections = detect_cached(detector, [references[s] for s in ids], queries, cache)
    crops, cropped = [], {}
    for subject, found in zip(ids, detections):
        image = references[subject].load()
        cropped[subject] = bool(len(found))
        crops.append(pil_source(crop(image, found[0]) if len(found) else pad_square(image), f"{subject} reference"))
    vectors = engine.embed(crops, desc="reference crops")
    return MatchedReferences(dict(zip(ids, vectors)), cropped)


def score_matched(images: Sequence[ImageSource], subjects: Sequence[Sequence[str]], cast: Mapping[str, Cast],
                  references: Mapping[str, np.ndarray], engine: Embeds, detector: Detects,
                  cache: EmbeddingCache | None, chunk: int = 32) -> list[ImageMatch]:
    """Detect, crop, embed (DINOv2, cached) and match, `chunk` images at a time (bounded memory).

    `references` maps subject id -> its matched reference embedding (`reference_embeddings`, the same engine's
    space), `cast` subject id -> its kind and phrase.
    """
    floor = detector.settings.clone_floor
    results: list[ImageMatch] = []
    for start in tqdm(range(0, len(images), chunk), desc="matched SCR", unit="chunk", leave=False):
        sources, subject_lists = images[start:start + chunk], subjects[start:start + chunk]
        queries = [image_queries(ids, cast, detector.settings.queries) for ids in subject_lists]
        detections = detect_cached(detector, sources, queries, cache)
        crops: list[list[ImageSource]] = []
        for source, found in zip(sources, detections):
            decoded = source.load() if len(found) else None  # no boxes: the image is not even decoded
            crops.append([pil_source(crop(decoded, d), f"{source.label} box {j}")
                          for j, d in enumerate(found) if decoded is not None])
        flat = [c for image_crops in crops for c in image_crops]
        vectors = engine.embed(flat, desc="crops") if flat else np.zeros((0, 0), dtype=np.float32)
        offset = 0
        for ids, image_crops, found in zip(subject_lists, crops, detections):
            mine = vectors[offset:offset + len(image_crops)]
            offset += len(image_crops)
            refs = np.stack([references[s] for s in ids])
            similarity = cosines(refs, mine) if len(image_crops) else np.zeros((len(ids), 0))
            kinds = [KINDS.index(cast[s].kind) for s in ids]
            results.append(match_subjects(similarity, kinds, found[:, 5].astype(int), floor))
    return results
