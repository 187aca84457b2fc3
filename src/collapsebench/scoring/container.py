"""`collapsebench score MODEL --runner docker`: the same command, `--runner local`, inside the scoring image.

Scores depend on the packages that compute them (torch kernels, transformers'
preprocessing, Pillow's resampling). On the host they depend on whatever is
installed there; in the scoring image (docker/eval/Dockerfile, every version
pinned) they do not, and scoring.json records the image id. The container
gets (core/containers.py does the locking down):

- read-only: params.yaml, models/, the prompts, the subject pool, the Hugging
  Face hub cache (real backbones and detector) and any `--backbone` folder;
- writable: the model's results folder, and the embedding cache and the
  smoke-backbone folder of params.yaml `scoring`, which are caches: they make
  a rerun faster and never change a score;
- a GPU only when `--gpu` names one (else the image scores on its CPU).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from collapsebench.core.containers import (
    HUB_CACHE,
    WORKDIR,
    ContainerSpec,
    Mount,
    input_mounts,
    inside,
    run_stage,
    scoring_image,
    stage_command,
)
from collapsebench.core.errors import BenchError
from collapsebench.core.hub import default_hub_cache
from collapsebench.core.untrusted import real_dir
from collapsebench.scoring.config import DEFAULT_CACHE_DIR, DEFAULT_SMOKE_DIR


@dataclass
class ScoreRun:
    """One `score` in the scoring image, as resolved on the host."""

    model: str
    params_path: Path
    params: dict[str, Any]
    models_dir: Path
    results_dir: Path
    shard: str | None = None
    backbones: list[str] = field(default_factory=list)  # --backbone NAME=PATH, as given
    hub_cache: Path | None = None
    gpu: str | None = None  # None: no GPU; "all" or one device id

    @property
    def host_out(self) -> Path:
        return self.results_dir / "models" / self.model


def score_in_docker(args: argparse.Namespace, params: dict[str, Any], stream: TextIO = sys.stderr) -> int:
    """Run `score` for the CLI's arguments in the scoring image; the container's exit status."""
    run = ScoreRun(model=args.model, params_path=args.params, params=params, models_dir=args.models_dir,
                   results_dir=args.results, shard=args.shard, backbones=list(args.backbone or []),
                   hub_cache=args.model_cache or default_hub_cache(), gpu=args.gpu)
    return run_stage(scoring_image(args.image_dockerfile, args.base_image), container_spec(run), stream)


def container_spec(run: ScoreRun) -> ContainerSpec:
    if not run.host_out.is_dir():
        raise BenchError(f"{run.host_out}: no results folder for model {run.model}; "
                         f"run `collapsebench generate {run.model}` first")
    mounts, backbones = backbone_mounts(run.backbones)
    command = stage_command("score", run.model, "--runner", "local", *(["--shard", run.shard] if run.shard else []),
                            *[arg for pair in backbones for arg in ("--backbone", pair)])
    name = f"collapsebench-score-{run.model}" + (f"-shard-{run.shard.replace('/', '-of-')}" if run.shard else "")
    return ContainerSpec(name=name, command=command, mounts=plan_mounts(run) + mounts, purpose=f"scoring of {run.model}",
                         gpu=run.gpu, labels={"collapsebench.stage": "score", "collapsebench.model": run.model},
                         kept="embeddings computed so far stay in the cache")


def plan_mounts(run: ScoreRun) -> list[Mount]:
    """Inputs and the hub cache read-only; the model's results folder and the scoring caches writable."""
    mounts = input_mounts(run.params_path, run.params, run.models_dir)
    if run.hub_cache is not None and run.hub_cache.is_dir():
        mounts.append(Mount(run.hub_cache.resolve(), HUB_CACHE))
    # Checked level by level, never through a link: a model container could have planted one (core/untrusted.py).
    folder = real_dir(run.host_out.absolute(), run.results_dir.absolute())
    mounts.append(Mount(folder, f"{WORKDIR}/results/models/{run.model}", read_only=False))
    scoring = run.params.get("scoring") or {}
    caches = [scoring.get("cache_dir", DEFAULT_CACHE_DIR), scoring.get("smoke_dir", DEFAULT_SMOKE_DIR)]
    mounts += [Mount(Path(cache).resolve(), inside(Path(cache)), read_only=False) for cache in caches if cache]
    return mounts


def backbone_mounts(pairs: list[str]) -> tuple[list[Mount], list[str]]:
    """`--backbone NAME=PATH` folders mounted read-only at their absolute host path, and the pairs rewritten to it.
    A pair that names no folder is passed on unchanged, for the container's score to report."""
    mounts, rewritten = [], []
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if sep and path and Path(path).is_dir():
            folder = Path(path).resolve()
            mounts.append(Mount(folder, folder.as_posix()))
            pair = f"{name}={folder.as_posix()}"
        rewritten.append(pair)
    return mounts, rewritten
