"""The scoring configuration, resolved once from params.yaml `scoring` and used by `score`, `compare` and bench/.

Before this module each caller worked the settings out for itself (profile,
smoke folder, batch size, cache folder, detector), and `compare` even built a
fake params block to reuse them; now a reader of params.yaml and a reader of
this dataclass see the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from collapsebench.benchmark.pool import KINDS
from collapsebench.core.errors import BenchError
from collapsebench.scoring.backbones import (
    BACKBONE_NAMES,
    DEFAULT_BACKBONES,
    BackboneSpec,
)
from collapsebench.scoring.detection import (
    DEFAULT_DETECTOR,
    DEFAULT_QUERIES,
    MatchedSettings,
)
from collapsebench.scoring.face import FaceSettings, face_settings

PROFILES = ("smoke", "real")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_SMOKE_DIR = ".cache/smoke-backbones"
DEFAULT_CACHE_DIR = ".cache/embeddings"


@dataclass(frozen=True)
class ScoringConfig:
    """Everything that decides how images become scores (and, with `cache_dir`, how fast)."""

    # What was asked for: smoke (random-weight backbones built in code) | real (params.yaml's checkpoints) |
    # custom (--backbone / --detector folders). scoring.json's label is decided after loading (checkpoints.py):
    # `real` only when every checkpoint is verified to be the pinned one.
    profile: str
    backbones: Mapping[str, BackboneSpec]
    matched: MatchedSettings | None  # None: matched-SCR columns stay empty
    cache_dir: Path | None  # embedding cache; None embeds without it
    batch_size: int = 16
    dtype: str = "auto"  # auto: float16 on CUDA, float32 on CPU
    face: FaceSettings | None = None  # None: the face-identity columns stay empty

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        if self.dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return DTYPES[self.dtype]

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "params.yaml", profile: str | None = None,
                    overrides: Mapping[str, str] | None = None, detector: str | Path | None = None) -> ScoringConfig:
        """Resolve params.yaml `scoring` (missing keys take the defaults below); `profile` overrides the file's,
        NAME=PATH `overrides` load those backbones, and `detector` the matched-SCR detector, from local folders
        (the profile is then `custom`)."""
        block = params.get("scoring") or {}
        key = f"{where}: scoring"
        profile = profile or block.get("profile", "smoke")
        if profile not in PROFILES:
            raise BenchError(f"{key}.profile must be one of {PROFILES}, got {profile!r}")
        smoke_dir = Path(block.get("smoke_dir", DEFAULT_SMOKE_DIR))
        backbones = _backbones(block, profile, smoke_dir, key)
        for name, path in (overrides or {}).items():
            if name not in BACKBONE_NAMES:
                raise BenchError(f"--backbone {name}=...: unknown backbone; known: {', '.join(BACKBONE_NAMES)}")
            backbones[name] = BackboneSpec(name, _folder(f"--backbone {name}={path}", path))
        matched = _matched(block, profile, smoke_dir, key)
        if detector is not None:
            if matched is None:
                raise BenchError(f"--detector {detector}: matched SCR is off ({key}.matched.enabled), so no "
                                 "detector is loaded")
            matched = replace(matched, detector=BackboneSpec("detector", _folder(f"--detector {detector}", detector)))
        dtype = str(block.get("dtype", "auto"))
        if dtype != "auto" and dtype not in DTYPES:
            raise BenchError(f"{key}.dtype must be auto or one of {tuple(DTYPES)}, got {dtype!r}")
        batch_size = int(block.get("batch_size", 16))
        if batch_size < 1:
            raise BenchError(f"{key}.batch_size must be at least 1")
        cache_dir = block.get("cache_dir", DEFAULT_CACHE_DIR)
        return cls(profile="custom" if overrides or detector else profile, backbones=backbones, matched=matched,
                   batch_size=batch_size, dtype=dtype, cache_dir=Path(cache_dir) if cache_dir else None,
                   face=face_settings(block, profile, smoke_dir, key))


def _folder(option: str, path: str | Path) -> str:
    """A checkpoint folder given on the command line, checked before anything loads."""
    if not Path(path).is_dir():
        raise BenchError(f"{option}: not a folder made by save_pretrained")
    return str(path)


def _backbones(block: Mapping[str, Any], profile: str, smoke_dir: Path, key: str) -> dict[str, BackboneSpec]:
    if profile == "smoke":
        from collapsebench.scoring.smoke import smoke_backbone_dir

        root = smoke_backbone_dir(smoke_dir)
        return {name: BackboneSpec(name, str(root / name)) for name in BACKBONE_NAMES}
    entries = {**DEFAULT_BACKBONES, **(block.get("backbones") or {})}
    specs = {}
    for name in BACKBONE_NAMES:
        entry = entries[name]
        if not isinstance(entry, Mapping) or not entry.get("id"):
            raise BenchError(f"{key}.backbones.{name}.id is missing")
        specs[name] = BackboneSpec(name, str(entry["id"]), entry.get("revision"))
    return specs


def _matched(block: Mapping[str, Any], profile: str, smoke_dir: Path, key: str) -> MatchedSettings | None:
    """The matched-SCR settings, or None when disabled (the columns stay empty)."""
    matched = block.get("matched") or {}
    if not matched.get("enabled", False):
        return None
    key = f"{key}.matched"
    if profile == "smoke":
        from collapsebench.scoring.smoke import smoke_detector_dir

        spec = BackboneSpec("detector", str(smoke_detector_dir(smoke_dir)))
    else:
        detector = matched.get("detector") or DEFAULT_DETECTOR
        if not detector.get("id"):
            raise BenchError(f"{key}.detector.id is missing")
        spec = BackboneSpec("detector", str(detector["id"]), detector.get("revision"))
    queries = dict(matched.get("queries") or DEFAULT_QUERIES)
    missing = [kind for kind in KINDS if not queries.get(kind)]
    if missing:
        raise BenchError(f"{key}.queries: no text query for subject kind(s) {missing}")
    settings = MatchedSettings(spec, queries, float(matched.get("score_threshold", 0.2)),
                               float(matched.get("nms_iou", 0.3)), int(matched.get("max_detections", 20)),
                               int(matched.get("batch_size", 4)), float(matched.get("clone_floor", 0.4)))
    if not 0 <= settings.score_threshold < 1 or not 0 < settings.nms_iou <= 1:
        raise BenchError(f"{key}: score_threshold must be in [0, 1) and nms_iou in (0, 1]")
    if settings.max_detections < 1 or settings.batch_size < 1:
        raise BenchError(f"{key}: max_detections and batch_size must be at least 1")
    return settings
