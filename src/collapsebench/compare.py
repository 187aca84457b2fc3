"""`collapsebench compare`: score one generated image against its references, outside the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .backbones import BackboneSpec, ImageBackbone
from .metrics import THRESHOLDS
from .score import embed_images


def compare(generated: Path, references: list[Path], spec: BackboneSpec) -> dict[str, Any]:
    """Cosines of the whole generated image with each reference (in the given order), mean and collapse counts."""
    backbone = ImageBackbone(spec)
    embeddings = embed_images(backbone, [generated, *references], batch_size=16, desc=f"compare [{spec.name}]")
    cosines = [float(c) for c in embeddings[1:] @ embeddings[0]]
    return {
        "metric": spec.name,
        "backbone": spec.label,
        "cosines": cosines,
        "score": float(np.mean(cosines)),
        "collapsed": {f"{tau:g}": sum(c < tau for c in cosines) for tau in THRESHOLDS},
    }
