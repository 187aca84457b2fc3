#!/usr/bin/env python3
"""Benchmark: a naive per-pair scoring loop against the embedding engine, on the same inputs.

Why it exists: every leaderboard entry is 225 images scored against their
subjects' references, re-scored whenever a backbone or the pool changes. This
measures what the engine (`collapsebench.scoring.embed_cache`: each unique image once,
batched, cached on disk) buys over the obvious loop, on a DINOv2-base-sized
model (random weights built in code; no model hub needed: speed does not
depend on the weights' values).

- naive: for every (image, subject) pair, two forward passes at batch 1 (the
  generated image, then the reference), each image decoded from disk again;
- engine, cold: an empty cache directory;
- engine, warm: the same cache again (nothing left to embed).

Each method runs in its own fresh child process, so its peak resident memory
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`, which counts torch's buffers,
unlike tracemalloc) is its own; the child's RSS after imports and before any
work is printed too. Timings include loading the model from disk. Besides wall
seconds each method reports its CPU seconds (user + system): on a shared
machine other processes stretch wall time, much less CPU time, so the CPU
ratio is a cross-check of the wall-clock speedup.

Inputs: the benchmark's jobs (75 prompts x seeds 0, 1, 2 = 225 images) drawn by
the collage calibration adapter on the demo pool in data/; synthetic subjects
when data/ is missing. `--quick` takes an evenly spaced subset.

Usage: python bench/scoring.py [--quick] [--device cpu|cuda] [--size base|large|giant]
The last line printed is `speedup_vs_naive: X` (naive seconds / cold engine seconds).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Sizes of the facebook/dinov2-* checkpoints (Dinov2Config defaults are the base model).
SIZES: dict[str, dict[str, Any]] = {
    "base": {},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
    "giant": {"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24, "use_swiglu_ffn": True},
    # Only for the unit test that proves this script runs.
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2},
}


def build_backbone(folder: Path, size: str) -> Path:
    """A DINOv2 of the given size with random weights and the real checkpoints' preprocessing."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from collapsebench.scoring.smoke import DINOV2_PREPROCESSING

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**SIZES[size])).save_pretrained(folder)
    BitImageProcessor(**DINOV2_PREPROCESSING).save_pretrained(folder)
    return folder


def make_inputs(folder: Path, n_images: int | None, data_dir: Path) -> list[dict[str, Any]]:
    """Draw the collage images of the benchmark's jobs; returns [{image, references}] in job order."""
    from collapsebench.benchmark.casting import cast_suite
    from collapsebench.benchmark.pool import load_pool, load_reference
    from collapsebench.benchmark.suite import make_jobs
    from collapsebench.models import get_adapter

    if not (data_dir / "subjects.yaml").is_file():
        data_dir = synthetic_pool(folder / "data")
    pool = load_pool(data_dir)
    jobs = make_jobs(cast_suite(REPO / "benchmark" / "prompts.yaml", pool).prompts, [0, 1, 2])
    if n_images is not None and n_images < len(jobs):  # evenly spaced: every subject count stays represented
        jobs = [jobs[round(i * (len(jobs) - 1) / max(n_images - 1, 1))] for i in range(n_images)]
    adapter = get_adapter("collage", {"size": 512})
    inputs = []
    for job in jobs:
        subjects = [pool[s] for s in job.prompt.subjects]
        image = adapter.generate(job.prompt.natural(pool), subjects, [load_reference(s) for s in subjects], job.seed).image
        path = folder / "images" / f"{job.key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        inputs.append({"image": str(path), "references": [str(s.image) for s in subjects]})
    return inputs


def synthetic_pool(data_dir: Path, count: int = 16) -> Path:
    """Subjects S001..S016 as seeded random pictures (the prompts refer to these ids)."""
    import numpy as np
    import yaml
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    (data_dir / "subjects").mkdir(parents=True, exist_ok=True)
    entries = []
    for number in range(1, count + 1):
        image = Image.new("RGB", (512, 512), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = (int(v) for v in rng.integers(0, 400, 2))
            draw.ellipse((x, y, x + 112, y + 112), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(data_dir / "subjects" / f"S{number:03d}.png")
        entries.append({"id": f"S{number:03d}", "phrase": f"subject {number}", "kind": "animal" if number % 4 == 0 else "person",
                        "image": f"subjects/S{number:03d}.png", "source": "bench/scoring.py", "license": "CC0-1.0"})
    (data_dir / "subjects.yaml").write_text(yaml.safe_dump({"subjects": entries}, sort_keys=False))
    return data_dir


# ---------------------------------------------------------------- the methods (each in a child process)

def run_naive(inputs: list[dict[str, Any]], backbone_dir: Path, device: str) -> list[list[float]]:
    import torch
    from PIL import Image

    from collapsebench.scoring.backbones import BackboneSpec, ImageBackbone

    backbone = ImageBackbone(BackboneSpec("dinov2", str(backbone_dir)), torch.device(device))
    cosines = []
    for item in inputs:
        row = []
        for reference in item["references"]:
            with Image.open(item["image"]) as image:
                generated = backbone.embed_images([image.convert("RGB")])[0]
            with Image.open(reference) as image:
                embedded = backbone.embed_images([image.convert("RGB")])[0]
            row.append(float(generated @ embedded))
        cosines.append(row)
    return cosines


def run_engine(inputs: list[dict[str, Any]], backbone_dir: Path, device: str, cache_dir: Path,
               batch_size: int, params: Path) -> list[list[float]]:
    import torch

    from collapsebench.scoring.backbones import BackboneSpec
    from collapsebench.scoring.embed_cache import (
        EmbeddingCache,
        EmbeddingEngine,
        file_source,
    )
    from collapsebench.scoring.score import pair_cosines

    config = scoring_config(params)
    engine = EmbeddingEngine(BackboneSpec("dinov2", str(backbone_dir)), EmbeddingCache(cache_dir), batch_size,
                             torch.device(device), config.torch_dtype(torch.device(device)))
    references = {path: file_source(Path(path)) for item in inputs for path in item["references"]}
    cosines, _, _ = pair_cosines(engine, [file_source(Path(item["image"])) for item in inputs],
                                 [item["references"] for item in inputs], references, "bench")
    return [[float(c) for c in row] for row in cosines]


def scoring_config(params: Path) -> Any:
    """The pipeline's ScoringConfig (profile real, so no smoke folder is built: the bench brings its own model)."""
    from collapsebench.cli import load_params
    from collapsebench.scoring.config import ScoringConfig

    return ScoringConfig.from_params(load_params(params) if params.is_file() else {}, str(params), profile="real")


def child(args: argparse.Namespace) -> None:
    """Run one method and print {seconds, rss_before_mb, peak_rss_mb, cosines} as JSON."""
    # Library imports happen before the clock starts: they are no method's cost.
    import torch
    from transformers import AutoImageProcessor, BitImageProcessor, Dinov2Model  # noqa: F401  (lazy modules)

    import collapsebench.scoring.score  # noqa: F401
    from collapsebench.cli import _quiet_libraries

    _quiet_libraries()
    inputs = json.loads(Path(args.inputs).read_text())
    before = _maxrss_mb()
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    if args.child == "naive":
        cosines = run_naive(inputs, args.backbone_dir, args.device)
    else:
        cosines = run_engine(inputs, args.backbone_dir, args.device, args.cache_dir, args.batch_size, args.params)
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu_started, "rss_before_mb": before,
                      "peak_rss_mb": _maxrss_mb(), "cosines": cosines}))


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(method: str, inputs_file: Path, backbone_dir: Path, args: argparse.Namespace,
            cache_dir: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--inputs", str(inputs_file),
               "--backbone-dir", str(backbone_dir), "--device", args.device, "--batch-size", str(args.batch_size),
               "--params", str(args.params)]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 images instead of 225")
    parser.add_argument("--images", type=int, help="number of images (default: 225, or 20 with --quick)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="base", choices=sorted(SIZES), help="DINOv2 size (random weights)")
    parser.add_argument("--batch-size", type=int, help="default: scoring.batch_size of params.yaml")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml",
                        help="the pipeline's scoring settings (batch size, dtype), resolved as `score` resolves them")
    parser.add_argument("--data", type=Path, default=REPO / "data", help="subject pool (synthetic when missing)")
    parser.add_argument("--skip-naive", action="store_true", help="engine only (e.g. images/s of large models on GPU)")
    parser.add_argument("--child", choices=["naive", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--backbone-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or scoring_config(args.params).batch_size
    if args.child:
        child(args)
        return 0.0
    import torch

    from collapsebench.core.io import sha256_file

    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here")
    n_images = args.images or (20 if args.quick else None)

    work = Path(tempfile.mkdtemp(prefix="collapsebench-bench-"))
    try:
        inputs = make_inputs(work, n_images, args.data)
        inputs_file = work / "inputs.json"
        inputs_file.write_text(json.dumps(inputs))
        backbone_dir = build_backbone(work / "dinov2", args.size)
        pairs = sum(len(item["references"]) for item in inputs)
        files = {item["image"] for item in inputs} | {r for item in inputs for r in item["references"]}
        distinct = len({sha256_file(Path(path)) for path in files})  # seeds can draw identical collages
        print(f"inputs: {len(inputs)} images, {pairs} (image, subject) pairs, {len(files)} image files "
              f"({distinct} distinct contents); dinov2-{args.size} random weights; device {args.device}; "
              f"batch {args.batch_size}; {torch.get_num_threads()} torch threads")
        results = {}
        if not args.skip_naive:
            results["naive"] = measure("naive", inputs_file, backbone_dir, args)
        results["engine_cold"] = measure("engine", inputs_file, backbone_dir, args, work / "cache")
        results["engine_warm"] = measure("engine", inputs_file, backbone_dir, args, work / "cache")
        print("peak memory = ru_maxrss of each method's own child process (RSS after imports -> peak)")
        for name, result in results.items():
            print(f"{name:12s} {result['seconds']:9.2f} s  {len(inputs) / result['seconds']:9.2f} images/s  "
                  f"{pairs / result['seconds']:9.2f} pairs/s  CPU {result['cpu_seconds']:9.2f} s  "
                  f"peak RSS {result['rss_before_mb']:.0f} -> {result['peak_rss_mb']:.0f} MiB")
        cold, warm = results["engine_cold"], results["engine_warm"]
        print(f"warm_cache_ratio (warm s / cold s): {warm['seconds'] / cold['seconds']:.4f} "
              f"({cold['seconds'] / warm['seconds']:.1f}x faster warm)")
        if "naive" not in results:
            return 0.0
        difference = max(abs(a - b) for x, y in zip(results["naive"]["cosines"], cold["cosines"]) for a, b in zip(x, y))
        print(f"max |cosine difference| naive vs engine: {difference:.2e}")
        print(f"cpu_time_ratio (naive CPU s / engine cold CPU s): "
              f"{results['naive']['cpu_seconds'] / cold['cpu_seconds']:.2f}")
        speedup = results["naive"]["seconds"] / cold["seconds"]
        print(f"speedup_vs_naive: {speedup:.2f}")
        return speedup
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
