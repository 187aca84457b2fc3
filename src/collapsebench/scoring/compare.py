"""`collapsebench compare`: score one generated image against its references, outside the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from collapsebench.core.metric_table import THRESHOLDS
from collapsebench.scoring.backbones import pick_device
from collapsebench.scoring.config import ScoringConfig
from collapsebench.scoring.cosine import cosines
from collapsebench.scoring.embed_cache import EmbeddingEngine, file_source


def compare(generated: Path, references: list[Path], config: ScoringConfig, metric: str) -> dict[str, Any]:
    """Cosines of the whole generated image with each reference (in the given order), mean and collapse counts,
    computed exactly as `score` would with the same configuration."""
    spec, device = config.backbones[metric], pick_device()
    # A one-off check: no shared cache to fill.
    engine = EmbeddingEngine(spec, None, config.batch_size, device, config.torch_dtype(device))
    embeddings = engine.embed([file_source(path) for path in (generated, *references)], "compare")
    values = [float(c) for c in cosines(embeddings[1:], embeddings[0])]
    return {
        "metric": spec.name,
        "backbone": spec.label,
        "cosines": values,
        "score": float(np.mean(values)),
        "collapsed": {f"{tau:g}": sum(c < tau for c in values) for tau in THRESHOLDS},
    }
