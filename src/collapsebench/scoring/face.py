"""Face identity for person subjects: YuNet finds faces, SFace says whose they are.

Why: DINOv2 and CLIP compare whole looks (clothes, pose, colours); identity
personalization work (XVerseBench, PhotoMaker, InstantID, PuLID) also reports a
face-recognition similarity for people, and users expect it beside DINOv2.

Models (both ONNX, run with onnxruntime; no torchvision, no OpenCV):

- detector: YuNet 2023mar, `opencv/face_detection_yunet` (OpenCV Zoo), MIT licence;
- recognizer: SFace 2021dec, `opencv/face_recognition_sface` (OpenCV Zoo), Apache-2.0 licence
  (a MobileFaceNet trained with the SFace loss; LFW accuracy 99.40%).

Both licences allow research benchmarking (and more). Each file is fetched with
`hf_hub_download` at a pinned commit (offline from the hub cache, like every
checkpoint here) and its sha256 is recorded and checked against the pin.

Protocol, per image: detect faces (the image letterboxed to the detector's
input, boxes mapped back), align each face to the 112 x 112 ArcFace template
from its five landmarks (a similarity transform, as OpenCV's `alignCrop`), embed
with SFace, L2-normalize. A reference's face is its largest detected face. The
person subjects of an image are assigned faces one to one (Hungarian on cosine);
a person left without a face is `missing` (counted in Face-SCR, also shown
apart); a person whose reference shows no detectable face is `no_reference`
and not counted. Animals get no face value at all (empty, never zero).
Face-SCR uses SFace's published same-identity cosine threshold, 0.363.

YuNet's output decoding follows OpenCV's `FaceDetectorYN` (per stride s in
8/16/32: score = sqrt(cls * obj), centre = (cell + offset) * s, size =
exp(log-size) * s, landmarks = (cell + offset) * s), so the same file gives the
boxes OpenCV would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from collapsebench.core.errors import BenchError
from collapsebench.core.hub import COMMIT, PULL_SCORING, missing_hint
from collapsebench.core.io import sha256_file
from collapsebench.scoring.cosine import cosines
from collapsebench.scoring.detection import Cast, box_iou
from collapsebench.scoring.embed_cache import EmbeddingCache, ImageSource, space_id

FACE_VERSION = "1"  # bump when the decoding, alignment or stored layout below changes
# The pinned face models: what `scoring.face` falls back to (a test keeps params.yaml equal to this).
DEFAULT_FACE: dict[str, dict[str, str]] = {
    "detector": {"id": "opencv/face_detection_yunet", "revision": "3cc26e7f1014a5ee5d74a42acee58bafc9d0a310",
                 "file": "face_detection_yunet_2023mar.onnx",
                 "sha256": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                 "licence": "MIT (OpenCV Zoo)"},
    "recognizer": {"id": "opencv/face_recognition_sface", "revision": "3d7082438a6e4551e840c9b2bb60b71e8da4b524",
                   "file": "face_recognition_sface_2021dec.onnx",
                   "sha256": "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
                   "licence": "Apache-2.0 (OpenCV Zoo)"},
}
YUNET_STRIDES = (8, 16, 32)
# The 112 x 112 ArcFace landmark template (eyes, nose tip, mouth corners) that SFace was trained on.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
ALIGNED_SIZE = 112
_FACE_FIELDS = 15  # x0, y0, x1, y1, score, then five (x, y) landmarks


@dataclass(frozen=True)
class OnnxSpec:
    """One ONNX file: in a hub repository at a pinned commit, or in a local folder (the smoke nets)."""

    name: str  # face_detector | face_recognizer
    source: str  # hub id or a local folder
    file: str
    revision: str | None = None
    sha256: str | None = None  # the pinned file's sha256 (None: not pinned)
    licence: str = ""

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    @property
    def label(self) -> str:
        return f"{self.source}@{self.revision}/{self.file}" if self.revision else f"{self.source}/{self.file}"

    def identity(self) -> dict[str, str | None]:
        """What pins the file without opening it (a local file is hashed; a hub file by id + commit + name)."""
        if self.is_local:
            return {"file_sha256": sha256_file(self.path())}
        if self.revision and COMMIT.match(self.revision):
            return {"id": self.source, "commit": self.revision, "file": self.file}
        return {"sha256": sha256_file(self.path())}

    def path(self) -> Path:
        """The file on disk: the folder's, or the hub cache's snapshot at the pinned commit (offline if set)."""
        if self.is_local:
            path = Path(self.source) / self.file
            if not path.is_file():
                raise BenchError(f"{self.name}: {path} not found (expected an ONNX file in that folder)")
            return path
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.source, self.file, revision=self.revision))
        except Exception as error:  # offline without the file, unknown repo or revision, no network...
            raise BenchError(f"{self.name}: cannot load {self.label} ({error}). "
                             + missing_hint(self.source, self.revision, PULL_SCORING)
                             + " Or disable scoring.face.") from error

    def record(self, loaded: Path | None) -> dict[str, Any]:
        """scoring.json's record: where it came from, the sha256 of what was loaded, and how it is verified."""
        digest = sha256_file(loaded) if loaded is not None else None
        where = {"folder": self.source} if self.is_local else {"id": self.source, "revision": self.revision}
        pinned = DEFAULT_FACE["detector" if self.name == "face_detector" else "recognizer"]
        verified = None
        if not self.is_local and self.source == pinned["id"] and self.revision == pinned["revision"]:
            verified = "id+commit"
        elif digest is not None and digest == pinned["sha256"]:
            verified = "sha256"
        if digest is not None and self.sha256 and digest != self.sha256:
            raise BenchError(f"{self.name}: {self.label} has sha256 {digest}, but the pin says {self.sha256}")
        return {**where, "file": self.file, "sha256": digest, "licence": self.licence, "verified": verified}


@dataclass(frozen=True)
class FaceSettings:
    """`params.yaml` scoring.face, resolved."""

    detector: OnnxSpec
    recognizer: OnnxSpec
    score_threshold: float = 0.7  # YuNet face score (OpenCV's demo uses 0.9; generated faces score lower)
    nms_iou: float = 0.3
    max_faces: int = 20
    input_size: int = 640  # the detector's square input when its graph does not fix one
    # The image is also detected at these fractions of its letterboxed size: YuNet finds faces of about 10 to
    # 300 px, and a close-up reference (or a two-person picture) has larger ones.
    scales: tuple[float, ...] = (1.0, 0.5, 0.25)

    def record(self) -> dict[str, Any]:
        return {"detector": self.detector.label, "recognizer": self.recognizer.label,
                "score_threshold": self.score_threshold, "nms_iou": self.nms_iou, "max_faces": self.max_faces,
                "input_size": self.input_size, "scales": list(self.scales), "version": FACE_VERSION}


def face_settings(block: Mapping[str, Any], profile: str, smoke_dir: Path, key: str) -> FaceSettings | None:
    """params.yaml `scoring.face` -> settings, or None when disabled (the face columns stay empty)."""
    face = block.get("face") or {}
    if not face.get("enabled", False):
        return None
    key = f"{key}.face"
    specs = {}
    for role, name in (("detector", "face_detector"), ("recognizer", "face_recognizer")):
        entry = {**DEFAULT_FACE[role], **(face.get(role) or {})}
        if profile == "smoke":
            from collapsebench.scoring.smoke import smoke_face_dir

            specs[role] = OnnxSpec(name, str(smoke_face_dir(smoke_dir)), DEFAULT_FACE[role]["file"],
                                   licence="random weights (smoke)")
            continue
        if not entry.get("id") or not entry.get("file"):
            raise BenchError(f"{key}.{role}: id and file are required")
        specs[role] = OnnxSpec(name, str(entry["id"]), str(entry["file"]), entry.get("revision"),
                               entry.get("sha256"), str(entry.get("licence", "")))
    settings = FaceSettings(specs["detector"], specs["recognizer"], float(face.get("score_threshold", 0.7)),
                            float(face.get("nms_iou", 0.3)), int(face.get("max_faces", 20)),
                            int(face.get("input_size", 640)),
                            tuple(float(f) for f in face.get("scales", FaceSettings.scales)))
    if not 0 < settings.score_threshold < 1 or not 0 < settings.nms_iou <= 1 or settings.max_faces < 1 or not (
            settings.scales and all(0 < f <= 1 for f in settings.scales)):
        raise BenchError(f"{key}: score_threshold must be in (0, 1), nms_iou in (0, 1], max_faces at least 1, "
                         "scales in (0, 1]")
    return settings


# ---------------------------------------------------------------- YuNet decoding and alignment

def decode_yunet(outputs: Mapping[str, np.ndarray], width: int, height: int, threshold: float, nms_iou: float,
                 max_faces: int) -> np.ndarray:
    """YuNet's 12 heads (cls/obj/bbox/kps per stride) on a width x height input -> (k, 15) faces, best first."""
    faces = []
    for stride in YUNET_STRIDES:
        columns, rows = width // stride, height // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4).astype(np.float64)
        kps = outputs[f"kps_{stride}"].reshape(-1, 10).astype(np.float64)
        cells = np.stack(np.divmod(np.arange(rows * columns), columns)[::-1], axis=1).astype(np.float64)  # (c, r)
        score = np.sqrt(cls * obj)
        keep = score >= threshold
        centre = (cells[keep] + bbox[keep, :2]) * stride
        size = np.exp(np.clip(bbox[keep, 2:], -10, 10)) * stride
        marks = (kps[keep].reshape(-1, 5, 2) + cells[keep][:, None, :]) * stride
        faces.append(np.column_stack([centre - size / 2, centre + size / 2, score[keep], marks.reshape(-1, 10)]))
    found = np.concatenate(faces) if faces else np.zeros((0, _FACE_FIELDS))
    order = np.argsort(-found[:, 4], kind="stable")
    chosen: list[int] = []
    for index in order:
        if len(chosen) == max_faces:
            break
        if not chosen or box_iou(found[index, :4], found[chosen, :4]).max() <= nms_iou:
            chosen.append(int(index))
    return found[chosen].astype(np.float32).reshape(-1, _FACE_FIELDS)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 rotation + uniform scale + shift taking `source` points closest to `target` (Umeyama, no flip)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(dst.T @ src / len(source))
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / max(src.var(axis=0).sum(), 1e-12)
    shift = target_mean - scale * rotation @ source_mean
    return np.column_stack([scale * rotation, shift])


def align_face(image: Image.Image, landmarks: np.ndarray) -> Image.Image:
    """The 112 x 112 face whose five landmarks land on the ArcFace template."""
    forward = np.vstack([similarity_transform(np.asarray(landmarks, np.float64).reshape(5, 2), ARCFACE_TEMPLATE),
                         [0, 0, 1]])
    inverse = np.linalg.inv(forward)[:2].reshape(-1)  # PIL maps each output pixel back to the input
    return image.convert("RGB").transform((ALIGNED_SIZE, ALIGNED_SIZE), Image.Transform.AFFINE, tuple(inverse),
                                          resample=Image.Resampling.BILINEAR)


# ---------------------------------------------------------------- the models

class FaceModels:
    """YuNet + SFace sessions, opened on first use (a warm cache never opens them)."""

    def __init__(self, settings: FaceSettings) -> None:
        self.settings = settings
        self.description = {"detector": settings.detector.identity(), "recognizer": settings.recognizer.identity(),
                            **settings.record()}
        self.space = "face-" + space_id(self.description)
        self._sessions: dict[str, Any] = {}
        self.loaded: dict[str, Path] = {}  # role -> the file a session was opened from
        self.forwarded = 0  # images that went through the detector

    def _session(self, role: str) -> Any:
        if role not in self._sessions:
            import onnxruntime

            spec: OnnxSpec = getattr(self.settings, role)
            path = spec.path()
            spec.record(path)  # refuses a file whose sha256 is not the pinned one
            self._sessions[role] = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.loaded[role] = path
        return self._sessions[role]

    def records(self) -> dict[str, dict[str, Any]]:
        """scoring.json's records of both files. A file pinned by its hash (a local folder's, or a hub file without
        a commit) is hashed whether or not this run opened it, as its identity already was, so a warm embedding
        cache writes the record a cold one does; a hub file pinned by commit that this run never opened has
        sha256 None (its pin is the commit)."""
        records = {}
        for role, spec in (("detector", self.settings.detector), ("recognizer", self.settings.recognizer)):
            loaded = self.loaded.get(role)
            if loaded is None and "commit" not in self.description[role]:
                loaded = spec.path()
            records[spec.name] = spec.record(loaded)
        return records

    def detect(self, image: Image.Image) -> np.ndarray:
        """(k, 15) faces in `image` coordinates, found at every scale of `settings.scales`, best first."""
        found = np.concatenate([self._detect_at(image, factor) for factor in self.settings.scales])
        order = np.argsort(-found[:, 4], kind="stable")
        chosen: list[int] = []
        for index in order:
            if len(chosen) == self.settings.max_faces:
                break
            if not chosen or box_iou(found[index, :4], found[chosen, :4]).max() <= self.settings.nms_iou:
                chosen.append(int(index))
        self.forwarded += 1
        return found[chosen].reshape(-1, _FACE_FIELDS)

    def _detect_at(self, image: Image.Image, factor: float) -> np.ndarray:
        """Faces of `image` letterboxed (top-left) into the detector's input at `factor` of the fitting size."""
        session = self._session("detector")
        declared = session.get_inputs()[0].shape
        height, width = (declared[2], declared[3]) if all(isinstance(d, int) for d in declared[2:]) else (
            self.settings.input_size, self.settings.input_size)
        scale = factor * min(width / image.width, height / image.height)
        resized = image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                              Image.Resampling.BILINEAR)
        canvas = np.zeros((height, width, 3), dtype=np.float32)
        canvas[:resized.height, :resized.width] = np.asarray(resized, dtype=np.float32)
        blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].copy()  # BGR, 0..255, NCHW (OpenCV's blobFromImage)
        names = [output.name for output in session.get_outputs()]
        missing = [f"{head}_{s}" for head in ("cls", "obj", "bbox", "kps") for s in YUNET_STRIDES
                   if f"{head}_{s}" not in names]
        if missing:
            raise BenchError(f"face detector {self.settings.detector.label}: not a YuNet graph (no {missing})")
        outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: blob})))
        faces = decode_yunet(outputs, width, height, self.settings.score_threshold, self.settings.nms_iou,
                             self.settings.max_faces)
        faces[:, :4] /= scale
        faces[:, 5:] /= scale
        faces[:, [0, 2]] = np.clip(faces[:, [0, 2]], 0, image.width)
        faces[:, [1, 3]] = np.clip(faces[:, [1, 3]], 0, image.height)
        return faces

    def embed(self, faces: Sequence[Image.Image]) -> np.ndarray:
        """Unit SFace embeddings of aligned 112 x 112 faces (RGB, 0..255, NCHW, as OpenCV feeds SFace)."""
        session = self._session("recognizer")
        name = session.get_inputs()[0].name
        vectors = []
        for face in faces:  # the published graph has batch size 1
            blob = np.asarray(face.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None].copy()
            vectors.append(np.asarray(session.run(None, {name: blob})[0], dtype=np.float64).reshape(-1))
        if not vectors:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.stack(vectors)
        return (matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class FaceSet:
    """The faces of one image: (k, 15) boxes/landmarks and (k, D) unit embeddings."""

    faces: np.ndarray
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def encode(self) -> np.ndarray:
        dim = self.vectors.shape[1] if len(self.vectors) else 0
        body = np.column_stack([self.faces, self.vectors]) if len(self.faces) else np.zeros((0, _FACE_FIELDS))
        return np.concatenate([[len(self.faces), dim], body.reshape(-1)]).astype(np.float32)

    @classmethod
    def decode(cls, stored: np.ndarray) -> FaceSet | None:
        if len(stored) < 2:
            return None
        count, dim = int(stored[0]), int(stored[1])
        if len(stored) != 2 + count * (_FACE_FIELDS + dim):
            return None
        body = stored[2:].reshape(count, _FACE_FIELDS + dim)
        return cls(body[:, :_FACE_FIELDS], body[:, _FACE_FIELDS:])


def face_sets(models: FaceModels, sources: Sequence[ImageSource], cache: EmbeddingCache | None) -> list[FaceSet]:
    """Faces + embeddings per image, each unique content through the models once (cached on disk)."""
    found: dict[str, FaceSet] = {}
    for source in sources:
        if source.digest in found:
            continue
        stored = cache.get(models.space, source.digest) if cache is not None else None
        result = FaceSet.decode(stored) if stored is not None else None
        if result is None:
            image = source.load()
            faces = models.detect(image)
            stored = FaceSet(faces, models.embed([align_face(image, face[5:]) for face in faces])).encode()
            # Used as the cache stores it (float32), so a cold and a warm run give the same numbers to the bit.
            result = FaceSet.decode(stored)
            if cache is not None:
                cache.put(models.space, source.digest, stored)
        found[source.digest] = result
    return [found[source.digest] for source in sources]


# ---------------------------------------------------------------- matching

@dataclass(frozen=True)
class FaceMatch:
    """One subject's face result: the cosine of its assigned face and its status (see the module docstring)."""

    cosine: float | None
    status: str  # matched | missing | no_reference | "" (an animal)


def reference_face(faces: FaceSet) -> np.ndarray | None:
    """The embedding of a reference's largest face, or None when it shows none."""
    if not len(faces.faces):
        return None
    areas = (faces.faces[:, 2] - faces.faces[:, 0]) * (faces.faces[:, 3] - faces.faces[:, 1])
    return faces.vectors[int(np.argmax(areas))]


def match_faces(faces: FaceSet, references: Sequence[np.ndarray | None], people: Sequence[bool]) -> list[FaceMatch]:
    """Assign the image's faces one to one to its person subjects (Hungarian on cosine); animals get nothing."""
    result = [FaceMatch(None, "no_reference" if person else "") for person in people]
    rows = [i for i, (person, ref) in enumerate(zip(people, references)) if person and ref is not None]
    for row in rows:
        result[row] = FaceMatch(None, "missing")
    if rows and len(faces.vectors):
        similarity = cosines(np.stack([references[i] for i in rows]), faces.vectors)
        for row, column in zip(*linear_sum_assignment(similarity, maximize=True)):
            result[rows[row]] = FaceMatch(float(similarity[row, column]), "matched")
    return result


def score_faces(models: FaceModels, images: Sequence[ImageSource], subjects: Sequence[Sequence[str]],
                cast: Mapping[str, Cast], references: Mapping[str, ImageSource],
                cache: EmbeddingCache | None) -> tuple[list[list[FaceMatch]], dict[str, bool]]:
    """Per image, per subject slot: its face result; plus, per person subject, whether its reference has a face."""
    people = sorted(s for s in references if cast[s].kind == "person")
    ref_vectors = {s: reference_face(f) for s, f in zip(people, face_sets(models, [references[s] for s in people],
                                                                           cache))}
    results = []
    for start in range(0, len(images), 32):  # bounded memory: 32 decoded images at most
        chunk = face_sets(models, images[start:start + 32], cache)
        for ids, faces in zip(subjects[start:start + 32], chunk):
            results.append(match_faces(faces, [ref_vectors.get(s) for s in ids],
                                       [cast[s].kind == "person" for s in ids]))
    return results, {s: vector is not None for s, vector in ref_vectors.items()}

