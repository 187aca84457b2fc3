#!/usr/bin/env python3
"""Benchmark: the whole generate stage against the transformer's denoising loop, and k shards against one.

Why it exists: a real model's 225 images cost GPU-hours, most of them in the
diffusion transformer. Everything around it (process start, weight loading,
text encoder, reference encoding, VAE decoding, PNG writing, the manifest)
should stay small: the target is a whole stage within 1.25x the
transformer-only time. And `generate --gpus` should divide the wall time by the
number of devices. This measures both, for a diffusers-native entry
(Flux2KleinPipeline, the `flux2-klein-4b` row) built in code with random
weights (no model hub; speed does not depend on the weights' values):

- `--size full`: FLUX.2 [klein] 4B's geometry (transformer: 5 double + 20 single
  blocks, 24 heads x 128; Qwen3-4B text encoder: 36 layers, hidden 2560; the
  FLUX.2 VAE), at the entry's 1024 px and 4 steps, 512 px references (each adds
  its image tokens, as real references do). For a GPU: `--device cuda`.
- `--size small`: a few-layer model whose per-image time is CPU-bound, for the
  fan-out figure on a CPU; `--size tiny` (`--tiny`): a smoke test that proves
  the script runs.

Three measurements, each printed per subject count N where it applies:

1. **transformer**: in this process, the entry's adapter makes `--images-per-n`
   images at each N, with every transformer call of the denoising loop timed
   (synchronized on CUDA): transformer seconds per image, pipeline seconds per
   image, and peak GPU memory at each N (peak RSS of this process on a CPU).
2. **stage**: the real stage, `collapsebench generate MODEL --runner local
   --gpus D` in a fresh process on one device over the benchmark's jobs for
   `--seeds` (75 images per seed), timed from process start to exit (imports,
   weight loading, all images, merge). Per N: each image's share (the time
   between consecutive PNGs; the first image's own generate time), and the fixed
   cost before the first image.
3. **fan-out**: the same command on k devices (`--shards k`), into a fresh
   results folder: wall time of k shards against the one-shard run of (2).
   On a CPU the devices are stand-ins: each process gets one thread
   (OMP_NUM_THREADS=1, in both runs), i.e. one core plays one GPU. On CUDA it
   needs k GPUs and is skipped with a message otherwise.

The last line is `stage_over_transformer: X`: the stage's wall time over the
transformer time of the same jobs (each job's N at the transformer seconds per
image measured for that N in (1)).

Usage: python bench/generation.py [--tiny | --size tiny|small|full] [--device cpu|cuda] [--seeds 0,1,2]
       [--images-per-n 2] [--shards 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL = "bench-klein"
# The random weights sit in a hub cache of their own under a pinned repo and commit, so the entry is an
# ordinary model.yaml and the stage loads them exactly as real weights (offline, from the cache).
WEIGHTS_REPO, WEIGHTS_COMMIT = "collapsebench-bench/flux2-klein-random", "b" * 40


@dataclass(frozen=True)
class Geometry:
    """One model size: the components' configs, the image size and steps it is run at."""

    transformer: dict[str, Any]
    text_encoder: dict[str, Any]
    vae: dict[str, Any] = field(default_factory=dict)
    resolution: int = 1024
    reference: int = 512
    steps: int = 4


TINY_VAE = {"sample_size": 32, "down_block_types": ("DownEncoderBlock2D",) * 3,
            "up_block_types": ("UpDecoderBlock2D",) * 3, "block_out_channels": (4, 4, 4), "layers_per_block": 1,
            "latent_channels": 1, "norm_num_groups": 1, "use_quant_conv": False, "use_post_quant_conv": False}
SIZES = {
    # FLUX.2 [klein] 4B: black-forest-labs/FLUX.2-klein-4B transformer/config.json and text_encoder (Qwen3-4B).
    "full": Geometry(
        transformer={"num_layers": 5, "num_single_layers": 20, "attention_head_dim": 128, "num_attention_heads": 24,
                     "joint_attention_dim": 7680, "guidance_embeds": False},
        text_encoder={"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
                      "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                      "max_position_embeddings": 40960, "rope_theta": 1000000.0, "vocab_size": 151936}),
    "small": Geometry(
        transformer={"patch_size": 1, "in_channels": 16, "num_layers": 2, "num_single_layers": 4,
                     "attention_head_dim": 32, "num_attention_heads": 4, "joint_attention_dim": 3 * 64,
                     "axes_dims_rope": [8, 8, 8, 8], "guidance_embeds": False},
        text_encoder={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 27, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 1024},
        vae={**TINY_VAE, "block_out_channels": (16, 16, 16), "latent_channels": 4, "norm_num_groups": 4},
        resolution=256, reference=128, steps=4),
    "tiny": Geometry(
        transformer={"patch_size": 1, "in_channels": 4, "num_layers": 1, "num_single_layers": 1,
                     "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 3 * 16,
                     "axes_dims_rope": [4, 4, 4, 4], "guidance_embeds": False},
        text_encoder={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 27, "num_attention_heads": 2,
                      "num_key_value_heads": 1, "head_dim": 8, "max_position_embeddings": 1024},
        vae=TINY_VAE, resolution=32, reference=64, steps=2),
}


def build_pipeline(folder: Path, geometry: Geometry, device: str, dtype: str) -> None:
    """Flux2KleinPipeline with random weights of `geometry`, written with save_pretrained (built on `device`:
    random init of 8B parameters is minutes on a CPU, seconds on a GPU)."""
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from collapsebench.testing.tiny import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    text = {"vocab_size": len(tokenizer), "tie_word_embeddings": True, **geometry.text_encoder}
    torch.manual_seed(0)
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, dtype))
        try:
            pipeline = Flux2KleinPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(), vae=AutoencoderKLFlux2(**geometry.vae),
                text_encoder=Qwen3ForCausalLM(Qwen3Config(**text)), tokenizer=tokenizer,
                transformer=Flux2Transformer2DModel(**geometry.transformer), is_distilled=True)
        finally:
            torch.set_default_dtype(previous)
    pipeline.save_pretrained(folder)


def weights_folder(hub_cache: Path) -> Path:
    """Where the hub library finds WEIGHTS_REPO at WEIGHTS_COMMIT in `hub_cache`."""
    return hub_cache / f"models--{WEIGHTS_REPO.replace('/', '--')}" / "snapshots" / WEIGHTS_COMMIT


def make_repo(root: Path, geometry: Geometry, device: str, dtype: str, seeds: list[int]) -> None:
    """A work folder `collapsebench generate` runs in: the benchmark, a pool of `geometry.reference` px
    references, params.yaml and one diffusers entry whose pipeline is the random-weight one."""
    import yaml
    from collapsebench.testing.tiny import make_pool

    shutil.copytree(REPO / "benchmark", root / "benchmark")
    make_pool(root / "data", size=geometry.reference)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["suite"].update(prompts="benchmark/prompts.yaml", pool="data", seeds=seeds)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    entry = yaml.safe_load((REPO / "models/flux2-klein-4b/model.yaml").read_text())
    entry.update(name=MODEL, pipeline={"class": "Flux2KleinPipeline", "repo": WEIGHTS_REPO, "revision": WEIGHTS_COMMIT},
                 settings={**entry["settings"], "height": geometry.resolution, "width": geometry.resolution,
                           "steps": geometry.steps, "dtype": dtype, "device": device})
    (root / "models" / MODEL).mkdir(parents=True)
    (root / "models" / MODEL / "model.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))


def sample_jobs(root: Path, seeds: list[int], per_n: int) -> tuple[Any, list[Any]]:
    """The pool and the first `per_n` benchmark jobs at each subject count."""
    from collapsebench.benchmark.casting import load_instance
    from collapsebench.benchmark.suite import make_jobs

    instance = load_instance(root / "benchmark/prompts.yaml", root / "data")
    jobs = make_jobs(instance.prompts, seeds)
    counts = sorted({job.prompt.n_subjects for job in jobs})
    return instance.pool, [job for n in counts for job in [j for j in jobs if j.prompt.n_subjects == n][:per_n]]


def measure_transformer(root: Path, pool: Any, jobs: list[Any], device: str) -> dict[int, dict[str, float]]:
    """Per N: transformer seconds per image (its denoising-loop calls only), pipeline seconds per image, peak
    memory in GiB (GPU when on CUDA, else this process's peak RSS)."""
    import torch

    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.benchmark.pool import load_reference
    from collapsebench.models import get_adapter

    config = load_model_config(root / "models", MODEL)
    adapter = get_adapter(config.adapter, config.adapter_settings())
    adapter.load()
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    spent = [0.0]
    forward = adapter.pipe.transformer.forward

    def timed_forward(*args: Any, **kwargs: Any) -> Any:
        synchronize()
        started = time.perf_counter()
        output = forward(*args, **kwargs)
        synchronize()
        spent[0] += time.perf_counter() - started
        return output

    adapter.pipe.transformer.forward = timed_forward
    rows: dict[int, dict[str, list[float]]] = {}
    for job in jobs:
        subjects = [pool[s] for s in job.prompt.subjects]
        references = [load_reference(s) for s in subjects]
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        spent[0] = 0.0
        started = time.perf_counter()
        adapter.generate(job.prompt.natural(pool), subjects, references, job.seed)
        synchronize()
        row = rows.setdefault(job.prompt.n_subjects, {"transformer": [], "pipeline": [], "memory": []})
        row["transformer"].append(spent[0])
        row["pipeline"].append(time.perf_counter() - started)
        row["memory"].append(torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else _peak_rss_gib())
    del adapter
    if device == "cuda":
        torch.cuda.empty_cache()
    return {n: {"transformer": statistics.mean(r["transformer"]), "pipeline": statistics.mean(r["pipeline"]),
                "memory": max(r["memory"])} for n, r in rows.items()}


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


@dataclass
class StageRun:
    wall_s: float
    fixed_s: float  # process start to the first image's start: imports, weight loading
    per_image: dict[int, list[float]]  # N -> each image's share of the wall time
    n_of_key: dict[str, int]


def run_stage(root: Path, results: str, devices: list[str], environment: dict[str, str]) -> StageRun:
    """`collapsebench generate MODEL --runner local --gpus DEVICES` in a fresh process, timed to its exit."""
    command = [sys.executable, "-m", "collapsebench.cli", "--results", results, "generate", MODEL, "--runner", "local",
               "--gpus", ",".join(devices)]
    started_ns = time.time_ns()
    started = time.perf_counter()
    result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"stage failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}")
    return _per_image(root / results / "models" / MODEL, started_ns, wall)


def _per_image(model_dir: Path, started_ns: int, wall: float) -> StageRun:
    """Each image's share of the stage: the time since the PNG before it (its shard's), and for a shard's first
    image its own generate time; what comes before a shard's first image is the fixed cost (the largest)."""
    records = [json.loads(line) for line in (model_dir / "manifest.jsonl").read_text().splitlines()]
    n_of_key = {r["key"]: r["n_subjects"] for r in records}
    per_image: dict[int, list[float]] = {}
    fixed = 0.0
    for shard in sorted((model_dir / "shards").glob("*-of-*")):
        wall_s = {r["key"]: r["wall_s"] for r in map(json.loads, (shard / "manifest.jsonl").read_text().splitlines())}
        made = sorted((png.stat().st_mtime_ns, png.stem) for png in (shard / "images").glob("*.png"))
        previous = None
        for mtime, key in made:
            share = (mtime - previous) / 1e9 if previous is not None else wall_s[key]
            if previous is None:
                fixed = max(fixed, (mtime - started_ns) / 1e9 - share)
            per_image.setdefault(n_of_key[key], []).append(share)
            previous = mtime
    return StageRun(wall, fixed, per_image, n_of_key)


def machine(device: str) -> dict[str, Any]:
    import torch

    if device == "cuda":
        return {"text": f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}",
                "devices": torch.cuda.device_count()}
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f})"
    text = f"{cpu}, torch {torch.__version__}"
    return {"text": text, "devices": None}


def child_environment(work: Path, device: str) -> dict[str, str]:
    """Every child reads the random weights from the work folder's hub cache, offline, without progress bars;
    on a CPU with one thread (one core plays one device)."""
    environment = {**os.environ, "HF_HUB_CACHE": str(work / "hub"), "HF_HUB_OFFLINE": "1",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    if device == "cpu":
        environment.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return environment


def in_child(step: str, args: argparse.Namespace, work: Path) -> Any:
    """Run one step of this script in a fresh process (its own imports, hub settings and peak memory)."""
    output = work / f"{step}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--work", str(work), "--size", args.size,
               "--device", args.device, "--seeds", args.seeds, "--images-per-n", str(args.images_per_n)]
    result = subprocess.run(command, env=child_environment(work, args.device), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench step {step} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(output.read_text())


def child(args: argparse.Namespace) -> None:
    """A step in its own process: `build` the random-weight pipeline, or `transformer` (measure_transformer)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    work, geometry = args.work, SIZES[args.size]
    if args.child == "build":
        build_pipeline(weights_folder(work / "hub"), geometry, args.device, dtype_for(args.device))
        result: Any = {}
    else:
        pool, jobs = sample_jobs(work / "repo", seeds_of(args), args.images_per_n)
        result = {"machine": machine(args.device), "by_n": measure_transformer(work / "repo", pool, jobs, args.device)}
    (work / f"{args.child}.json").write_text(json.dumps(result))


def dtype_for(device: str) -> str:
    return "bfloat16" if device == "cuda" else "float32"


def seeds_of(args: argparse.Namespace) -> list[int]:
    return [int(seed) for seed in args.seeds.split(",")]


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--tiny", action="store_const", const="tiny", dest="size", help="same as --size tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seeds", default="0", help="the stage's jobs: 75 images per seed (0,1,2: the full 225)")
    parser.add_argument("--images-per-n", type=int, default=2)
    parser.add_argument("--shards", type=int, default=2, help="k of the fan-out comparison (0: skip it)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--child", choices=["build", "transformer"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    geometry, dtype = SIZES[args.size], dtype_for(args.device)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-generation-"))
    try:
        if not (weights_folder(work / "hub") / "model_index.json").is_file():
            in_child("build", args, work)
        root = work / "repo"
        shutil.rmtree(root, ignore_errors=True)
        make_repo(root, geometry, args.device, dtype, seeds_of(args))
        measured = in_child("transformer", args, work)
        transformer = {int(n): row for n, row in measured["by_n"].items()}
        print(f"machine: {measured['machine']['text']}")
        print(f"model: Flux2KleinPipeline, size {args.size}, random weights in {dtype} on {args.device}, "
              f"{geometry.resolution} px, {geometry.steps} steps, {geometry.reference} px references")

        environment = child_environment(work, args.device)
        stage = run_stage(root, "results-1", ["0"], environment)
        memory = "peak GPU memory" if args.device == "cuda" else "peak RSS (no GPU)"
        for n in sorted(transformer):
            row = transformer[n]
            print(f"N={n:<2}  stage {statistics.mean(stage.per_image[n]):8.3f} s/img   transformer "
                  f"{row['transformer']:8.3f} s/img   pipeline call {row['pipeline']:8.3f} s/img   "
                  f"{memory} {row['memory']:6.2f} GiB")
        images = len(stage.n_of_key)
        transformer_s = sum(transformer[n]["transformer"] for n in stage.n_of_key.values())
        print(f"stage: {images} images in {stage.wall_s:.1f} s ({stage.wall_s / images:.3f} s/img), of which "
              f"{stage.fixed_s:.1f} s before the first image (process start, imports, weight loading); "
              f"transformer time of the same images {transformer_s:.1f} s")

        if args.shards > 1:
            available = measured["machine"]["devices"] or args.shards  # a CPU stands in any number of devices
            if available < args.shards:
                print(f"fan-out: skipped, {args.shards} shards need {args.shards} GPUs and {available} are visible")
            else:
                fanned = run_stage(root, f"results-{args.shards}", [str(d) for d in range(args.shards)], environment)
                print(f"fan-out: 1 shard {stage.wall_s:.1f} s, {args.shards} shards {fanned.wall_s:.1f} s "
                      f"(same {images} images, side by side in this run)")
                print(f"fanout_wall_ratio: {fanned.wall_s / stage.wall_s:.2f}")
        ratio = stage.wall_s / transformer_s
        print(f"stage_over_transformer: {ratio:.2f}")
        return ratio
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
