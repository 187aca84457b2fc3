"""A leaderboard entry: `models/<name>/model.yaml`, the unit of a model pull request.

Keeping each model's settings in its own file (rather than one big params
block) lets `dvc repro` rerun only the model whose file changed, and lets a
pull request touch exactly one folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import BenchError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KINDS = ("calibration", "model", "reported")
RUNNERS = ("local", "docker")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    display_name: str
    kind: str  # calibration | model | reported
    adapter: str
    runner: str
    settings: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the whole file, for model cards


def load_model_config(models_dir: Path, name: str) -> ModelConfig:
    path = Path(models_dir) / name / "model.yaml"
    if not NAME.match(name):
        raise BenchError(f"model name {name!r}: use lower-case letters, digits, '-' and '_' (max 64)")
    if not path.is_file():
        raise BenchError(f"{path}: model file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: expected a mapping")
    if raw.get("name") != name:
        raise BenchError(f"{path}: field 'name' must equal the folder name {name!r}, got {raw.get('name')!r}")
    for key, allowed in (("kind", KINDS), ("runner", RUNNERS)):
        if raw.get(key) not in allowed:
            raise BenchError(f"{path}: field '{key}' must be one of {allowed}, got {raw.get(key)!r}")
    if not isinstance(raw.get("adapter"), str):
        raise BenchError(f"{path}: field 'adapter' is required")
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise BenchError(f"{path}: field 'settings' must be a mapping")
    return ModelConfig(
        name=name, display_name=str(raw.get("display_name", name)), kind=raw["kind"], adapter=raw["adapter"],
        runner=raw["runner"], settings=settings, raw=raw,
    )
