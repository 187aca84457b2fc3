"""Model adapters, one file per model; importing this package registers them all."""

from collapsebench.models import (  # noqa: F401  (registration side effect)
    clone,
    collage,
    diffusers_native,
    floor,
    mosaic,
    psr,
    xverse,
)
from collapsebench.models.base import REGISTRY, Adapter, Generation, get_adapter

__all__ = ["REGISTRY", "Adapter", "Generation", "get_adapter"]
