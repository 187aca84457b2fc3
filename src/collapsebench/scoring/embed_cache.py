"""The embedding engine: every unique image goes through a backbone once, ever.

Why: a leaderboard entry is 225 images x up to 10 references x four
backbones, re-scored whenever a backbone or the pool changes, and the same
references (and often the same images) recur across models and runs. So an
embedding is stored on disk under

    <cache_dir>/<space>/<digest[:2]>/<digest>.emb

where `digest` is the sha256 of the content (the file's bytes, or the pixels
of an in-memory crop) and `space` names everything else the vector depends on:
backbone name, weights (hub id + resolved commit, or a content hash of a local
`save_pretrained` folder), the preprocessing config, the compute dtype and the
version of our embedding definition. A cold run fills the cache; a warm run
(another model, a rerun, a new seed) only decodes what is new.

Safety: an entry is written to a temp file and renamed into place, so two
processes writing the same entry both leave a whole file (identical content;
the last rename wins). Each entry carries a checksum of its payload: a torn or
altered file is detected on read, recomputed and overwritten, never trusted
and never fatal.

Throughput and memory: misses are decoded and embedded `batch_size` at a
time, so at most one batch of decoded images is alive whatever the number of
images; the only thing that grows with the input is the output matrix
(one float32 vector per image). The model itself is loaded only on the first
miss: a fully warm run never loads weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from collapsebench.core.errors import BenchError
from collapsebench.core.hub import COMMIT, PULL_SCORING, missing_hint, revision_kwargs
from collapsebench.core.io import atomic_write_bytes, atomic_write_json, sha256_file
from collapsebench.scoring.backbones import (
    BackboneSpec,
    ImageBackbone,
    default_dtype,
    dtype_name,
    pick_device,
)

log = logging.getLogger(__name__)

# Bump when backbones.py changes what an embedding is (pooling, normalization): old entries become unreachable.
EMBEDDING_VERSION = "1"
_MAGIC = b"CBEMB1"
_HEADER = struct.Struct("<6sI16s")  # magic, number of float32 values, blake2b-128 of the payload


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


def encode_entry(vector: np.ndarray) -> bytes:
    payload = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return _HEADER.pack(_MAGIC, len(payload) // 4, _checksum(payload)) + payload


def decode_entry(data: bytes) -> np.ndarray | None:
    """The stored vector, or None when the bytes are not a whole, intact entry."""
    if len(data) < _HEADER.size:
        return None
    magic, count, checksum = _HEADER.unpack_from(data)
    payload = data[_HEADER.size:]
    if magic != _MAGIC or len(payload) != 4 * count or _checksum(payload) != checksum:
        return None
    return np.frombuffer(payload, dtype="<f4").astype(np.float32)


def space_id(description: dict[str, Any]) -> str:
    """A short stable id of everything an embedding depends on besides the image content."""
    blob = json.dumps(description, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # entries found damaged, recomputed and overwritten


class EmbeddingCache:
    """Content-addressed vectors on disk, one file per entry; shared by every model and run."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.stats = CacheStats()

    def _path(self, space: str, digest: str) -> Path:
        return self.root / space / digest[:2] / f"{digest}.emb"

    def describe(self, space: str, description: dict[str, Any]) -> None:
        """Write a human-readable `space.json` next to the entries (what produced them)."""
        path = self.root / space / "space.json"
        if not path.exists():
            atomic_write_json(path, description)

    def get(self, space: str, digest: str) -> np.ndarray | None:
        path = self._path(space, digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        vector = decode_entry(data)
        if vector is None:
            log.warning("embedding cache: %s is damaged; recomputing it", path)
            self.stats.corrupt += 1
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return vector

    def put(self, space: str, digest: str, vector: np.ndarray) -> None:
        atomic_write_bytes(self._path(space, digest), encode_entry(vector))


@dataclass(frozen=True)
class ImageSource:
    """An image known by its content digest, decoded only when its embedding is not cached."""

    digest: str
    load: Callable[[], Image.Image] = field(compare=False)
    label: str = field(default="", compare=False)  # for error messages


def file_source(path: Path) -> ImageSource:
    path = Path(path)

    def load() -> Image.Image:
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as error:
            raise BenchError(f"{path}: cannot decode image ({error})") from error

    if not path.is_file():
        raise BenchError(f"{path}: image not found")
    return ImageSource(sha256_file(path), load, str(path))


def pil_source(image: Image.Image, label: str = "") -> ImageSource:
    """An in-memory image (a detection crop): digest of its mode, size and pixels."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.mode}:{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()
    return ImageSource(digest, lambda: rgb, label)


def folder_digest(folder: Path) -> str:
    """Content hash of a local checkpoint folder (config, weights, preprocessing), memoized per process."""
    return files_digest(sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")))


def files_digest(files: Sequence[Path]) -> str:
    """sha256 over the names and contents of `files` (symlinks followed), memoized per process while no file
    changes size or modification time: checkpoints are large and hashed more than once per run."""
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _files_digest(stamp)


@lru_cache(maxsize=32)
def _files_digest(stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stamp:
        digest.update(Path(path).name.encode() + b"\0" + sha256_file(Path(path)).encode())
    return digest.hexdigest()


def weights_identity(source: str, revision: str | None) -> dict[str, str | None]:
    """What pins the weights: a local folder's content hash, or the hub id + the commit the revision points to.

    Neither loads the weights, so a fully warm run never does. An unpinned
    revision ("main") is resolved to its current commit, so embeddings of an
    older commit are never served for a newer one.
    """
    if Path(source).is_dir():
        return {"folder_sha256": folder_digest(Path(source))}
    if revision and COMMIT.match(revision):
        return {"id": source, "commit": revision}
    from huggingface_hub import constants, resolve_revision

    try:
        commit = resolve_revision(source, revision=revision, local_files_only=constants.HF_HUB_OFFLINE).resolved
    except Exception as error:  # offline without a cached ref, unknown repo, no network...
        raise BenchError(f"{source}@{revision or 'main'}: cannot resolve the commit of this revision ({error}). "
                         "Pin a full commit hash in params.yaml, or use a local folder. "
                         + missing_hint(source, revision, PULL_SCORING)) from error
    return {"id": source, "commit": commit}


class EmbeddingEngine:
    """One backbone behind the cache: `embed(sources)` returns one unit vector per source, in order."""

    def __init__(self, spec: BackboneSpec, cache: EmbeddingCache | None, batch_size: int = 16,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        from transformers import AutoImageProcessor

        self.spec = spec
        self.cache = cache
        self.batch_size = max(1, int(batch_size))
        self.device = device or pick_device()
        self.dtype = dtype or default_dtype(self.device)
        try:
            processor = AutoImageProcessor.from_pretrained(spec.source, **revision_kwargs(spec.revision))
        except OSError as error:
            raise spec.load_error(f"backbone {spec.name}: processor", error) from error
        self.description = {
            "backbone": spec.name, "weights": weights_identity(spec.source, spec.revision),
            "processor": type(processor).__name__, "preprocessing": processor.to_dict(),
            "dtype": dtype_name(self.dtype),
            "embedding_version": EMBEDDING_VERSION,
        }
        self.space = space_id(self.description)
        if cache is not None:
            cache.describe(self.space, self.description)
        self._backbone: ImageBackbone | None = None
        self.forwarded = 0  # images that actually went through the model

    @property
    def backbone(self) -> ImageBackbone:
        """The model, loaded on first use (a warm cache never needs it)."""
        if self._backbone is None:
            self._backbone = ImageBackbone(self.spec, self.device, self.dtype)
        return self._backbone

    def close(self) -> None:
        """Drop the model (frees GPU memory before the next backbone loads)."""
        self._backbone = None

    def embed(self, sources: Sequence[ImageSource], desc: str = "embed") -> np.ndarray:
        found: dict[str, np.ndarray] = {}
        todo: list[ImageSource] = []
        for source in {s.digest: s for s in sources}.values():  # each unique content once
            vector = self.cache.get(self.space, source.digest) if self.cache is not None else None
            if vector is None:
                todo.append(source)
            else:
                found[source.digest] = vector
        for start in tqdm(range(0, len(todo), self.batch_size), desc=f"{desc} [{self.spec.name}]", unit="batch",
                          leave=False, disable=not todo):
            batch = todo[start:start + self.batch_size]
            images = [source.load() for source in batch]
            # Always a full batch (the last one padded with copies): an image's embedding then does not depend on
            # how many others missed the cache, since a batch's shape changes the float sums at the 6th decimal.
            vectors = self.backbone.embed_images(images + images[-1:] * (self.batch_size - len(images)))
            vectors = vectors[:len(batch)]
            self.forwarded += len(batch)
            for source, vector in zip(batch, vectors):
                found[source.digest] = vector
                if self.cache is not None:
                    self.cache.put(self.space, source.digest, vector)
        if not sources:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[s.digest] for s in sources])
