"""`collapsebench compare`: score one generated image against its references, outside the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from collapsebench.reporting.metrics import THRESHOLDS
from collapsebench.scoring.backbones import BackboneSpec
from collapsebench.scoring.embed_cache import EmbeddingEngine, file_source


def compare(generated: Path, references: list[Path], spec: BackboneSpec) -> dict[str, Any]:
    """Cosines of the whole generated image with each reference (in the given order), mean and collapse counts."""
    engine = EmbeddingEngine(spec, cache=None)  # a one-off check: no shared cache to fill
    embeddings = engine.embed([file_source(path) for path in (generated, *references)], "compare")
    cosines = [float(c) for c in embeddings[1:] @ embeddings[0]]
    return {
        "metric": spec.name,
        "backbone": spec.label,
        "cosines": cosines,
        "score": float(np.mean(cosines)),
        "collapsed": {f"{tau:g}": sum(c < tau for c in cosines) for tau in THRESHOLDS},
    }
