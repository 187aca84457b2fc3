"""`generate MODEL --gpus ...` and `generate MODEL --launcher slurm`: from the command line to a launcher.

Both split the model's jobs into shards that run at once and are merged at the
end (generation/scaleout.py); fanout.py runs them on this host's GPUs,
slurm.py as a Slurm job array. Settings that do not change any image (where
logs go, Slurm's partition, time limit, ...) come from params.yaml `generate:`,
with the command line's flags on top.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import Job
from collapsebench.core.containers import choose_engine
from collapsebench.core.errors import BenchError
from collapsebench.generation.generate import job_stamps
from collapsebench.generation.scaleout import GenerateCall, ScaleOut

DEFAULT_LOG_DIR = ".cache/generate"


def scaled_out(args: argparse.Namespace) -> bool:
    """Whether this `generate` runs many shards at once (else it is today's single run, sharded or not)."""
    return args.launcher == "slurm" or args.gpus != "none"


def shard_engine(runner: str, flag: str | None, params: dict[str, Any], params_path: Path) -> str | None:
    """The container engine every shard (or Slurm task) is given: `--engine`, else params.yaml `generate.engine`,
    else docker, resolved once here from the params already loaded; None for the local runner."""
    return choose_engine(flag, params, params_path) if runner == "docker" else None


def scale_out(args: argparse.Namespace, params: dict[str, Any], config: ModelConfig, jobs: list[Job],
              pool: dict[str, Subject]) -> int:
    """`jobs` as shards run at once, on this host's devices or as a Slurm array, then merged. Exit status 0 when
    every image is made and merged, 1 when a shard failed (it is reported with its log)."""
    if args.shard:
        raise BenchError("--shard runs one shard; --gpus and --launcher slurm make the shards themselves")
    block = params.get("generate") or {}
    log_dir = Path(block.get("log_dir") or DEFAULT_LOG_DIR).resolve()
    call = GenerateCall(model=config.name, runner=args.runner or config.runner, params_path=args.params,
                        results_dir=args.results, models_dir=args.models_dir, model_cache=args.model_cache,
                        base_image=args.base_image,
                        engine=shard_engine(args.runner or config.runner, args.engine, params, args.params))
    model_dir = args.results / "models" / config.name
    stamps = job_stamps(config, jobs, pool)
    if args.launcher == "slurm":
        from collapsebench.generation.slurm import SlurmSettings, run_on_slurm

        if args.gpus != "none":
            raise BenchError("--gpus picks GPUs of this host; on Slurm, ask for them with --gpus-per-task")
        settings = SlurmSettings.from_params(block.get("slurm"), shards=args.shards, partition=args.partition,
                                             gpus_per_task=args.gpus_per_task, time=args.time)
        plan = ScaleOut.plan(config.name, model_dir, jobs, stamps, settings.shards)
        return run_on_slurm(plan, call, settings, log_dir / config.name / "slurm")
    from collapsebench.generation.fanout import parse_gpus, run_on_devices
    from collapsebench.generation.runners.docker import docker_run, prepare_image

    devices = parse_gpus(args.gpus)
    plan = ScaleOut.plan(config.name, model_dir, jobs, stamps, len(devices))
    if call.runner == "docker":
        return run_on_devices(plan, call, devices, log_dir,
                              setup=lambda: prepare_image(docker_run(args, params, config)))
    return run_on_devices(plan, call, devices, log_dir)
