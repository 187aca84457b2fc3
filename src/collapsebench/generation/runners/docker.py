"""The docker runner: one locked-down container per model (and shard) runs `collapsebench generate`.

The host side checks the weights are in the model cache, gets the model's
image (its `docker.image`, or docker/<name>/Dockerfile built on the shared
base; see core/containers.py) and starts the container with:

- the GPU requested when the entry needs one (`gpu_memory_gb > 0`);
- params, models/, the prompts, the subject pool and the model cache mounted
  read-only, and only the model's (or shard's) output folder writable;
- everything else core/containers.py gives every stage container (no network,
  no capabilities, read-only root, non-root user, the image id in
  COLLAPSEBENCH_IMAGE_DIGEST).

Inside, the command is `collapsebench generate MODEL --runner local`, so the
resumable, locked generation of generate.py runs unchanged; the image id
lands in every manifest line. Stopping the host process (Ctrl-C or SIGTERM)
kills the container; finished images are kept and a rerun resumes.

What runs the container is the engine (`--engine`, else params.yaml
`generate.engine`, else docker): Docker, Podman (the same image and lockdown
through Podman's API, core/containers.py), or Apptainer (the image as a SIF,
runners/apptainer.py), for clusters that have no Docker daemon.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import Job
from collapsebench.core.containers import (
    HUB_CACHE,
    WORKDIR,
    ContainerSpec,
    ImageSource,
    Mount,
    build_root,
    choose_engine,
    connect,
    ensure_image,
    input_mounts,
    run_stage,
    stage_command,
)
from collapsebench.core.errors import BenchError
from collapsebench.core.hub import default_hub_cache
from collapsebench.core.manifest import Manifest
from collapsebench.core.untrusted import check_tree, real_dir
from collapsebench.generation.generate import job_stamps
from collapsebench.generation.shards import shard_dir
from collapsebench.models.weights import cached, pins_of


@dataclass
class DockerRun:
    """What one container needs, as resolved on the host."""

    config: ModelConfig
    repo_root: Path  # the build context
    params_path: Path
    params: dict[str, Any]
    models_dir: Path
    results_dir: Path
    shard: str | None = None
    hub_cache: Path | None = None
    base_image: str | None = None  # BASE_IMAGE build argument; None keeps the Dockerfile's default
    gpu: str = "all"  # "all" or one device id (shards on a multi-GPU host)
    extra_env: dict[str, str] = field(default_factory=dict)
    engine: str = "docker"  # docker | podman | apptainer

    @property
    def needs_gpu(self) -> bool:
        return float(self.config.raw.get("gpu_memory_gb") or 0) > 0

    @property
    def host_out(self) -> Path:
        return shard_dir(self.results_dir / "models" / self.config.name, self.shard)

    @property
    def container_out(self) -> str:
        relative = self.host_out.relative_to(self.results_dir)
        return f"{WORKDIR}/results/{relative.as_posix()}"

    @property
    def container_name(self) -> str:
        suffix = f"-shard-{self.shard.replace('/', '-of-')}" if self.shard else ""
        return f"collapsebench-{self.config.name}{suffix}"


def docker_run(args: argparse.Namespace, params: dict[str, Any], config: ModelConfig) -> DockerRun:
    """The run `collapsebench generate MODEL --runner docker [--engine E] [--shard i/n] [--gpu ID] ...` asks for."""
    return DockerRun(config=config, repo_root=build_root(), params_path=args.params, params=params,
                     models_dir=args.models_dir, results_dir=args.results, shard=args.shard,
                     hub_cache=args.model_cache or default_hub_cache(), base_image=args.base_image, gpu=args.gpu,
                     engine=choose_engine(args.engine, params, args.params))


def prepare_image(run: DockerRun, stream: TextIO = sys.stderr) -> None:
    """Check the weights and build (or pull, or convert) the model's image once, before several shards start
    containers from it at the same time (each would otherwise build it, concurrently)."""
    check_weights(run)
    if run.engine == "apptainer":
        from collapsebench.generation.runners.apptainer import sif_image

        sif_image(run, stream)
        return
    client = connect(run.engine)
    try:
        ensure_image(client, image_source(run), stream)
    finally:
        client.close()


def run_in_docker(run: DockerRun, stream: TextIO = sys.stderr) -> int:
    """Generate `run.config`'s images in its container; the container's exit status (0 = all made)."""
    check_weights(run)
    if run.engine == "apptainer":
        from collapsebench.generation.runners.apptainer import run_in_apptainer

        return run_in_apptainer(run, container_spec(run, generate_command(run)), stream)
    return run_stage(image_source(run), container_spec(run, generate_command(run)), stream, engine=run.engine)


def generate_command(run: DockerRun) -> list[str]:
    command = stage_command("generate", run.config.name, "--runner", "local")
    return command + (["--shard", run.shard] if run.shard else [])


def check_weights(run: DockerRun) -> None:
    """Every pinned checkpoint must be in the host's model cache before a container is started."""
    pins = pins_of(run.config.adapter_settings())
    if not pins:
        return
    local = [pin.repo for pin in pins if pin.is_local]
    if local:
        raise BenchError(f"model {run.config.name}: local weight folders {local} cannot be mounted by the docker "
                         "runner; put the checkpoints in the Hugging Face cache instead")
    if run.hub_cache is None or not run.hub_cache.is_dir():
        raise BenchError(f"model {run.config.name} needs weights but the model cache {run.hub_cache} does not exist; "
                         "pass --model-cache or set HF_HUB_CACHE / HF_HOME")
    missing = [pin for pin in pins if not cached(pin, run.hub_cache)]
    if missing:
        names = ", ".join(f"{pin.repo}@{pin.revision or 'main'}" for pin in missing)
        commands = "; ".join(pin.download_command() for pin in missing)
        raise BenchError(f"model {run.config.name}: weights missing from the model cache {run.hub_cache}: {names}. "
                         f"With network and HF_HUB_CACHE={run.hub_cache}, run: {commands}")


def image_source(run: DockerRun) -> ImageSource:
    """The model.yaml's `docker` block: a pinned `image`, or a `dockerfile` with its `build_args`."""
    spec = run.config.raw.get("docker") or {}
    model_yaml = run.models_dir / run.config.name / "model.yaml"
    if not spec.get("dockerfile") and not spec.get("image"):
        raise BenchError(f"{model_yaml}: runner docker needs docker.dockerfile or docker.image")
    return ImageSource(repo_root=run.repo_root, origin=f"{model_yaml} docker.dockerfile", dockerfile=spec.get("dockerfile"),
                       pinned=spec.get("image"), build_args=spec.get("build_args") or {}, base_image=run.base_image)


def output_folder(run: DockerRun) -> Path:
    """The writable folder, made and checked level by level below the results folder without following a link:
    an earlier container could have planted `shards/0-of-4 -> /host/dir` in the model folder, and a mount, or
    the chown for the container's user, would otherwise land on the host folder."""
    results = run.results_dir.absolute()
    real_dir(results, results.parent, create=True)
    return real_dir(run.host_out.absolute(), results, create=True)


def jobs_left(run: DockerRun, jobs: list[Job], pool: Mapping[str, Subject]) -> list[Job]:
    """The jobs whose image the output folder lacks (as the container's resume would judge them). The folder is
    checked first (regular files only): a planted link is an error here, before anything reads through it."""
    folder = output_folder(run)
    check_tree(folder)
    done = Manifest(folder).verified(job_stamps(run.config, jobs, dict(pool)))
    return [job for job in jobs if job.key not in done]


def plan_mounts(run: DockerRun) -> list[Mount]:
    """Inputs read-only at the paths params.yaml names (relative ones under /work); the output folder writable."""
    mounts = input_mounts(run.params_path, run.params, run.models_dir)
    if run.hub_cache is not None and run.hub_cache.is_dir():
        mounts.append(Mount(run.hub_cache.resolve(), HUB_CACHE))
    mounts.append(Mount(output_folder(run), run.container_out, read_only=False))
    return mounts


def container_spec(run: DockerRun, command: list[str]) -> ContainerSpec:
    return ContainerSpec(
        name=run.container_name, command=command, mounts=plan_mounts(run), purpose=f"model {run.config.name}",
        gpu=run.gpu if run.needs_gpu else None, env=dict(run.extra_env),
        labels={"collapsebench.stage": "generate", "collapsebench.model": run.config.name,
                "collapsebench.shard": run.shard or ""},
        kept="finished images are kept, rerun to resume")
