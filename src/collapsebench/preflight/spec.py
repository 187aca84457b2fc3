"""models/<name>/preflight.yaml: how to build the entry's tiny twin and what differs from its real settings.

Only size and steps may differ from the entry's settings (the point is to run its real settings); everything
else an adapter needs for a twin is said here, so the committed model.yaml stays the one the GPU runs:

    size: 32                 # height and width (or `size`) of the images preflight asks for
    steps: 2
    reference_size: 64       # optional: the references, downscaled to fit this many pixels a side (a size too)
    fixed: {max_sequence_length: 32}   # diffusers: call.fixed arguments replaced for the twin (sequence lengths)
    builder: Flux2Pipeline   # a twin builder of the package (collapsebench.testing.tiny), or:
    components:              # each pipeline component by class and config (random weights), or by a builder
      transformer: {class: QwenImageTransformer2DModel, config: {num_layers: 1, ...}}
      tokenizer: {builder: qwen2-vl-tokenizer}
    twin: {...}              # adapter-specific (mosaic, xverse): see preflight/drivers/
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collapsebench.core.errors import BenchError

FILE = "preflight.yaml"
KEYS = ("size", "steps", "reference_size", "fixed", "builder", "components", "twin")


@dataclass(frozen=True)
class PreflightSpec:
    path: Path
    size: int
    steps: int
    reference_size: int | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    builder: str | None = None
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    twin: dict[str, Any] = field(default_factory=dict)


def load_spec(folder: Path) -> PreflightSpec:
    """The entry folder's preflight.yaml, every problem naming the file and the key."""
    path = Path(folder) / FILE
    if not path.is_file():
        raise BenchError(f"{path}: missing; preflight builds the entry's twin from it (see CONTRIBUTING.md, "
                         "'Preflight')")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise BenchError(f"{path}: unknown keys {unknown}; known: {list(KEYS)}")
    for key in ("size", "steps", "reference_size"):
        if key == "reference_size" and raw.get(key) is None:
            continue
        if not isinstance(raw.get(key), int) or isinstance(raw.get(key), bool) or raw[key] < 1:
            raise BenchError(f"{path}: {key} must be a positive integer, got {raw.get(key)!r}")
    for key in ("fixed", "components", "twin"):
        if not isinstance(raw.get(key, {}), dict):
            raise BenchError(f"{path}: {key} must be a mapping")
    if raw.get("builder") is not None and raw.get("components"):
        raise BenchError(f"{path}: give either builder or components, not both")
    for name, part in (raw.get("components") or {}).items():
        if not isinstance(part, dict) or len({"class", "builder"} & set(part)) != 1:
            raise BenchError(f"{path}: components.{name} needs exactly one of `class` (with `config`) or `builder`")
    return PreflightSpec(path=path, size=raw["size"], steps=raw["steps"], reference_size=raw.get("reference_size"),
                         fixed=dict(raw.get("fixed") or {}),
                         builder=raw.get("builder"), components=dict(raw.get("components") or {}),
                         twin=dict(raw.get("twin") or {}))
