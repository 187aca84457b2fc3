"""params.yaml's `site` block: where the repository lives, and the GPU anchors behind a model page's run estimate.

A model page tells a reader with a GPU what a run of that entry needs, before
anyone has run it: for that it needs a speed per GPU class, which no model.yaml
records. The anchors are a small, stated table (seconds of one denoising step
of a FLUX-size transformer at one megapixel), kept in params.yaml so that a
maintainer can correct them in one place, and every page that uses them says
the result is an estimate. Once a model has run, its page shows the measured
cost from its manifest instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collapsebench.core.errors import BenchError

WHERE = "params.yaml site"


@dataclass(frozen=True)
class GpuAnchor:
    """One GPU class: its name, its memory, and how long one step of a FLUX-size model at 1 MP takes on it."""

    gpu: str
    memory_gb: float
    seconds_per_step_megapixel: float


@dataclass(frozen=True)
class SiteSettings:
    """What the site stage reads from params.yaml (`site:`); every field optional."""

    repository: str | None = None
    gpu_anchors: tuple[GpuAnchor, ...] = ()


def _anchor(value: Any, index: int) -> GpuAnchor:
    fields = ("gpu", "memory_gb", "seconds_per_step_megapixel")
    if not isinstance(value, Mapping) or set(value) != set(fields):
        raise BenchError(f"{WHERE}.gpu_anchors[{index}]: expected exactly {', '.join(fields)}, got {value!r}")
    gpu, memory, seconds = value["gpu"], value["memory_gb"], value["seconds_per_step_megapixel"]
    if not isinstance(gpu, str) or not gpu.strip():
        raise BenchError(f"{WHERE}.gpu_anchors[{index}].gpu: a GPU name, got {gpu!r}")
    for name, number in (("memory_gb", memory), ("seconds_per_step_megapixel", seconds)):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
            raise BenchError(f"{WHERE}.gpu_anchors[{index}].{name}: a positive number, got {number!r}")
    return GpuAnchor(gpu.strip(), float(memory), float(seconds))


def site_settings(params: Mapping[str, Any]) -> SiteSettings:
    """The `site` block of params (absent: defaults); a malformed value is an error that names it."""
    block = params.get("site") or {}
    if not isinstance(block, Mapping):
        raise BenchError(f"{WHERE}: expected a mapping, got {block!r}")
    repository = block.get("repository")
    if repository is not None and (not isinstance(repository, str) or not repository.startswith("https://")):
        raise BenchError(f"{WHERE}.repository: an https:// URL or null, got {repository!r}")
    anchors = block.get("gpu_anchors") or []
    if not isinstance(anchors, list):
        raise BenchError(f"{WHERE}.gpu_anchors: expected a list, got {anchors!r}")
    return SiteSettings(repository.rstrip("/") if repository else None,
                        tuple(_anchor(value, index) for index, value in enumerate(anchors)))
