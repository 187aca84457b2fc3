"""What a run of one entry needs, and the exact commands that make its row: for a reader who has the hardware.

A pending model's page must not end at "waits for its GPU run": a reader with
a GPU (or an API key) can produce the row themselves, and needs to know what
it takes before they start: GPU memory, the container image, the pinned code
and weights, roughly how long it runs, what an API run costs, and the commands.
Everything comes from the entry's model.yaml (and the upstream commit its
Dockerfile pins); the duration is an estimate from params.yaml's GPU anchors
and is labelled as one. Once a model has run, its page shows the measured cost
from the manifest as well.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.leaderboard.settings import GpuAnchor

JOBS = 225  # 75 prompts x 3 seeds: one full run
REFERENCES = 3 * 15 * (2 + 4 + 6 + 8 + 10)  # reference images of one full run: 3 seeds x 15 prompts per N x N
UPSTREAM = re.compile(r"^ARG UPSTREAM_(REPO|COMMIT)=(\S+)\s*$", re.M)
NOT_PINNED = "not pinned: the commit loaded is recorded in every manifest line"


@dataclass(frozen=True)
class Estimate:
    """Estimated hours of one full run on one GPU class."""

    gpu: str
    seconds_per_image: float
    hours: float


@dataclass(frozen=True)
class ApiCost:
    """A closed API entry: who serves it, the list price, and what a full run costs at that price."""

    provider: str
    model: str
    price: float
    price_date: str
    note: str
    docs: str | None
    key_env: str | None
    run_cost: float  # JOBS x price
    reference_cost: float = 0.0  # REFERENCES x price_usd_per_reference, where the provider charges per reference
    references: int = REFERENCES

    def cost_of(self, images: int) -> float:
        return self.price * images


@dataclass
class RunNeeds:
    """What the page's "What a run needs" and "Run it yourself" sections say."""

    runnable: bool
    why_not: str = ""
    gpu_memory_gb: float | None = None
    image: str | None = None
    pins: list[tuple[str, str]] = field(default_factory=list)
    settings: list[tuple[str, str]] = field(default_factory=list)
    reference_limit: int | None = None
    estimates: list[Estimate] = field(default_factory=list)
    estimate_note: str = ""
    api: ApiCost | None = None
    commands: list[str] = field(default_factory=list)


def upstream_pins(dockerfile: Path) -> list[tuple[str, str]]:
    """The upstream repository and commit a model's Dockerfile pins (`ARG UPSTREAM_REPO/COMMIT=`), if any."""
    if not dockerfile.is_file():
        return []
    found = dict(UPSTREAM.findall(dockerfile.read_text(encoding="utf-8", errors="replace")))
    if "COMMIT" not in found:
        return []
    return [("upstream code", f"{found.get('REPO', 'upstream')} @ {found['COMMIT']}")]


def weight_pins(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every `{repo, revision}` of the entry (its pipeline, and the checkpoints in its settings)."""
    pins = []
    pipeline = raw.get("pipeline")
    if isinstance(pipeline, Mapping) and pipeline.get("repo"):
        pins.append((f"pipeline {pipeline.get('class', '')}".strip(),
                     f"{pipeline['repo']} @ {pipeline.get('revision') or NOT_PINNED}"))
    for key, value in (raw.get("settings") or {}).items():
        if isinstance(value, Mapping) and value.get("repo"):
            pins.append((f"settings.{key}", f"{value['repo']} @ {value.get('revision') or NOT_PINNED}"))
    return pins


def plain_settings(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The entry's scalar settings (steps, size, guidance, ...), as a reader compares them."""
    return [(key, str(value)) for key, value in (raw.get("settings") or {}).items()
            if isinstance(value, (str, int, float, bool))]


def megapixels(settings: Mapping[str, Any]) -> float | None:
    width, height = settings.get("width") or settings.get("size"), settings.get("height") or settings.get("size")
    if isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0:
        return width * height / 1e6
    return None


def estimates(raw: Mapping[str, Any], anchors: tuple[GpuAnchor, ...]) -> tuple[list[Estimate], str]:
    """Hours of a full run on each anchor GPU with enough memory, from steps x megapixels; why not, when not."""
    settings = raw.get("settings") or {}
    steps, area, memory = settings.get("steps"), megapixels(settings), raw.get("gpu_memory_gb") or 0
    if not anchors:
        return [], "no GPU anchors are configured (params.yaml site.gpu_anchors)"
    if not isinstance(steps, (int, float)) or area is None:
        return [], "the entry states no steps or image size to estimate from"
    fits = [a for a in anchors if a.memory_gb >= memory]
    if not fits:
        return [], f"no configured GPU class has the {memory:g} GB it needs"
    found = []
    for anchor in fits:
        seconds = steps * area * anchor.seconds_per_step_megapixel
        found.append(Estimate(anchor.gpu, seconds, JOBS * seconds / 3600))
    note = (f"Estimate: {JOBS} images \u00d7 {steps:g} steps \u00d7 {area:.2f} megapixels \u00d7 each GPU's seconds "
            "per step of a FLUX-size model at one megapixel (params.yaml site.gpu_anchors). It counts the output "
            "image only: models that put every reference into the sequence take longer as N grows")
    if settings.get("offload"):
        note += ", and CPU offload (settings.offload) is slower still"
    return found, note + "; model loading is not counted."


def key_env(provider: str) -> str | None:
    """The environment variable the provider module reads its key from (None when the API package is not
    importable here: it needs the providers' client libraries)."""
    try:
        module = importlib.import_module("collapsebench.models.api")
        return str(module.PROVIDERS[provider].key_env)
    except (ImportError, KeyError, AttributeError):
        return None


def api_cost(raw: Mapping[str, Any]) -> ApiCost | None:
    api = raw.get("api")
    if not isinstance(api, Mapping) or not isinstance(api.get("price_usd_per_image"), (int, float)):
        return None
    price = float(api["price_usd_per_image"])
    provider = str(api.get("provider", ""))
    per_reference = api.get("price_usd_per_reference")
    return ApiCost(provider, str(api.get("model", "")), price, str(api.get("price_date", "not stated")),
                   str(api.get("price_note", "")), api.get("docs"), key_env(provider), JOBS * price,
                   REFERENCES * float(per_reference) if isinstance(per_reference, (int, float)) else 0.0)


def commands(config: ModelConfig, api: ApiCost | None) -> list[str]:
    """The commands that make this entry's row on the paper setup (README, "The paper setup")."""
    name = config.name
    run = (f"dvc exp run -S suite.pool=data-xversebench -S scoring.profile=real -S scoring.runner=docker "
           f"-S report.runner=docker -S 'models=[{name}]'")
    if config.runner == "api":
        key = f"export {api.key_env}=..." if api and api.key_env else "export the provider's API key (see its module)"
        return ["collapsebench pool fetch xversebench", "collapsebench weights pull --scoring", key, run]
    if config.runner == "local":
        return ["collapsebench pool fetch xversebench", "collapsebench weights pull --scoring", run]
    return ["collapsebench pool fetch xversebench",
            f"collapsebench weights pull {name} --scoring        # the pinned checkpoints into $HF_HUB_CACHE",
            f"HF_HUB_OFFLINE=1 collapsebench weights check {name} --scoring", run,
            f"# or step by step: collapsebench generate {name} --runner docker --gpus all "
            '--model-cache "$HF_HUB_CACHE"']


def run_needs(config: ModelConfig, repo_root: Path, anchors: tuple[GpuAnchor, ...]) -> RunNeeds:
    """What running `config` takes, from its model.yaml (and the Dockerfile it names, under `repo_root`)."""
    raw = config.raw
    if config.kind == "reported":
        return RunNeeds(False, "no public weights or inference code: only the paper's printed numbers exist")
    if config.runner == "submitted":
        return RunNeeds(False, "the authors generated these images themselves; our workflow only re-scores them")
    dockerfile = (raw.get("docker") or {}).get("dockerfile")
    api = api_cost(raw)
    needs = RunNeeds(True, gpu_memory_gb=float(raw.get("gpu_memory_gb") or 0), image=dockerfile,
                     pins=(upstream_pins(repo_root / dockerfile) if dockerfile else []) + weight_pins(raw),
                     settings=plain_settings(raw), reference_limit=raw.get("reference_limit"), api=api,
                     commands=commands(config, api))
    if config.runner == "docker":
        needs.estimates, needs.estimate_note = estimates(raw, anchors)
    return needs
