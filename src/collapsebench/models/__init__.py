"""Model adapters, one file per model; importing this package registers them all."""

from . import clone, collage, diffusers_native, floor, mosaic, psr, xverse  # noqa: F401  (registration side effect)
from .base import REGISTRY, Adapter, Generation, get_adapter

__all__ = ["REGISTRY", "Adapter", "Generation", "get_adapter"]
