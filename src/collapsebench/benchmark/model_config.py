"""A leaderboard entry: `models/<name>/model.yaml`, the unit of a model pull request.

Keeping each model's settings in its own file (rather than one big params
block) lets `dvc repro` rerun only the model whose file changed, and lets a
pull request touch exactly one folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from collapsebench.core import strict_yaml
from collapsebench.core.errors import BenchError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SCHEMA_FILE = "model.schema.v1.json"  # versioned: a new meaning gets a new file, old files stay readable
MAX_MODEL_FILE_BYTES = 64 * 1024
MAX_NODES = 10_000  # a model.yaml is small; more nodes means YAML alias expansion (billion laughs)
MAX_DEPTH = 32  # deeper nesting is an attack on the recursive checks below, not a model description


@dataclass(frozen=True)
class ModelConfig:
    name: str
    display_name: str
    kind: str  # calibration | model | reported
    adapter: str
    runner: str
    settings: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the whole file, for model cards

    def adapter_settings(self) -> dict[str, Any]:
        """What the adapter is given: `settings`, plus the `pipeline` pin and the `call` mapping (diffusers entries)
        where present."""
        extra = {key: self.raw[key] for key in ("pipeline", "call") if self.raw.get(key) is not None}
        return {**self.settings, **extra}

    @property
    def reference_limit(self) -> int | None:
        """The documented maximum number of reference images one call accepts (None: not stated)."""
        return self.raw.get("reference_limit")

    @property
    def api(self) -> dict[str, Any] | None:
        """A closed API entry's `api` block (provider, model id, price per image and its date), else None."""
        return self.raw.get("api")

    @property
    def access(self) -> str:
        """`closed-api` for a model behind a paid API (not reproducible, dated), `open` for everything else."""
        return "closed-api" if self.api else "open"

    def fingerprint(self) -> str:
        """What makes two images of one job interchangeable: adapter, settings and pinned weights (for an API
        entry, its provider and model id; not its price, which changes no image)."""
        identity = {"adapter": self.adapter, "settings": self.adapter_settings()}
        if self.api:
            identity["api"] = {key: self.api.get(key) for key in ("provider", "model")}
        blob = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_model_config(models_dir: Path, name: str) -> ModelConfig:
    path = Path(models_dir) / name / "model.yaml"
    if not NAME.match(name):
        raise BenchError(f"model name {name!r}: use lower-case letters, digits, '-' and '_' (max 64)")
    if not path.is_file():
        raise BenchError(f"{path}: model file not found")
    raw, problems = read_model_file(path, name)
    if raw is None or problems:
        raise BenchError("\n".join(f"{path}: {where}: {message}" for where, message in problems))
    return ModelConfig(
        name=name, display_name=raw["display_name"], kind=raw["kind"], adapter=raw["adapter"],
        runner=raw["runner"], settings=raw["settings"], raw=raw,
    )


def read_model_file(path: Path, expected_name: str) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Parse a model.yaml and return it with every problem as (field, message); the mapping is None if unreadable.

    All problems are collected (not just the first) so that a pull request
    author sees everything to fix in one CI run.
    """
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_FILE_BYTES:
            return None, [("(file)", f"{size} bytes; a model.yaml is at most {MAX_MODEL_FILE_BYTES}")]
        raw = strict_yaml.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return None, [("(file)", f"cannot read ({error})")]
    except yaml.YAMLError as error:
        return None, [("(file)", f"not valid YAML ({error})")]
    except (ValueError, OverflowError) as error:  # e.g. the date 2026-13-45, an integer of 5000 digits
        return None, [("(file)", f"a value cannot be read ({error}); quote it if it is meant as text")]
    except RecursionError:
        return None, [("(file)", "nested too deeply to read")]
    if not isinstance(raw, dict):
        return None, [("(file)", "expected a mapping of fields")]
    if _too_big(raw):
        return None, [("(file)", (f"more than {MAX_NODES} values or {MAX_DEPTH} levels (YAML aliases?); "
                                  "a model.yaml is small"))]
    plain = _plain_data_problems(raw)
    # A field with a YAML-typed value is reported once, by the clearer plain-data message.
    problems = plain + [p for p in schema_problems(raw) if p[0] not in {where for where, _ in plain}]
    if isinstance(raw.get("name"), str) and raw["name"] != expected_name:
        problems.append(("name", f"must equal the folder name {expected_name!r}, got {raw['name']!r}"))
    if raw.get("runner") == "local" and raw.get("kind") not in ("calibration", "reported"):
        problems.append(("runner", "local runs the adapter inside this process, on the host: only calibration "
                                   "(and reported-only) entries may; a model runs in its container (runner: docker)"))
    docker = raw.get("docker")
    if isinstance(docker, dict) and isinstance(docker.get("build_args"), dict):
        from collapsebench.core.containers import build_arg_problems

        problems += [("docker.build_args", problem) for problem in build_arg_problems(docker["build_args"])]
    return raw, problems


@functools.cache
def model_schema() -> dict[str, Any]:
    """The JSON Schema of model.yaml, shipped inside the package."""
    return json.loads(resources.files("collapsebench.benchmark").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8"))


def schema_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every schema violation as (dotted field, message), in a stable order."""
    validator = Draft202012Validator(model_schema())
    found = [_describe(error) for error in validator.iter_errors(raw)]
    return sorted(set(found))


def _describe(error: ValidationError) -> tuple[str, str]:
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return (f"{where}.{missing}" if where else missing), "required field is missing"
    if error.validator in ("anyOf", "oneOf") and error.context:
        return where or "(top level)", " or ".join(sorted({sub.message for sub in error.context}))
    return where or "(top level)", error.message


def _too_big(value: Any) -> bool:
    """True past MAX_NODES values or MAX_DEPTH levels, counted without recursion (aliases can blow up a tiny file)."""
    stack, seen = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES or depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _plain_data_problems(value: Any, where: str = "") -> list[tuple[str, str]]:
    """YAML turns some unquoted values into dates, sets or non-string keys; the schema speaks JSON only."""
    label = where or "(top level)"
    if isinstance(value, dict):
        problems: list[tuple[str, str]] = []
        for key, item in value.items():
            if isinstance(key, str):
                problems += _plain_data_problems(item, f"{where}.{key}" if where else key)
            else:
                problems.append((label, f"key {key!r} must be text (quote it)"))
        return problems
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _plain_data_problems(item, f"{where}.{index}" if where else str(index))]
    if isinstance(value, float) and not math.isfinite(value):
        return [(label, f"{value!r} is not a finite number")]
    if value is None or isinstance(value, (str, int, float, bool)):
        return []
    return [(label, f"{value!r} is a YAML {type(value).__name__}, not text or a number (quote it)")]
