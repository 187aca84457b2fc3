"""The generate stage: run one model over the benchmark jobs, resumably.

The manifest is the resume log. A job counts as done only when its manifest
line exists, was made with the same model configuration (fingerprint), and its
PNG is on disk with the recorded sha256. The PNG is written atomically before
its line is appended, so killing the process at any instant loses at most the
job in flight. A lock file keeps two runs of one model from interleaving.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject, load_reference
from collapsebench.benchmark.suite import Job
from collapsebench.core.errors import BenchError
from collapsebench.core.io import (
    append_jsonl,
    atomic_write_png,
    atomic_write_text,
    read_jsonl,
    sha256_bytes,
    sha256_file,
)
from collapsebench.models import get_adapter

log = logging.getLogger(__name__)
TRACKED_PACKAGES = ("collapsebench", "torch", "diffusers", "transformers", "pillow")


@dataclass
class GenerateReport:
    made: int
    skipped: int
    failed: list[str]  # "prompt 12 seed 1: <error>"


def adapter_settings(config: ModelConfig) -> dict[str, Any]:
    """What the adapter is given: model.yaml `settings`, plus its `pipeline` pin (diffusers entries) where present."""
    pipeline = config.raw.get("pipeline")
    return {**config.settings, "pipeline": pipeline} if pipeline else dict(config.settings)


def fingerprint(config: ModelConfig) -> str:
    """What makes two images of one job interchangeable: adapter, settings and pinned weights."""
    blob = json.dumps({"adapter": config.adapter, "settings": adapter_settings(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def model_lock(out_dir: Path) -> Iterator[None]:
    """Exclusive, non-blocking lock on a model's output folder (released by the OS if we die)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise BenchError(f"{out_dir}: another run of this model holds the lock; wait for it or stop it") from error
        yield


def job_inputs(jobs: list[Job], pool: dict[str, Subject]) -> dict[str, str]:
    """Per job key, a hash of what its image is made from besides the model: the rendered prompt,
    the seed and the bytes of each reference. A changed template or a replaced reference image
    therefore makes that job's old image stale, though its key and the model are unchanged."""
    references = {s: sha256_file(pool[s].image) for job in jobs for s in job.prompt.subjects}
    return {job.key: hashlib.sha256(json.dumps({
        "prompt": job.prompt.natural(pool), "seed": job.seed,
        "references": [[s, references[s]] for s in job.prompt.subjects],
    }).encode()).hexdigest()[:16] for job in jobs}


def done_jobs(out_dir: Path, print_: str, inputs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Manifest records of these jobs, made by this configuration from these inputs, whose image is intact."""
    done: dict[str, dict[str, Any]] = {}
    for record in read_jsonl(out_dir / "manifest.jsonl"):
        image = out_dir / record["image"]
        current = record.get("fingerprint") == print_ and record.get("inputs") == inputs.get(record["key"])
        if current and image.is_file() and sha256_file(image) == record["sha256"]:
            done[record["key"]] = record
    return done


def run_generate(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject], out_dir: Path,
                 runner: str = "local") -> GenerateReport:
    """Make every job's image that is not already done; report what was made, skipped and failed."""
    print_ = fingerprint(config)
    with model_lock(out_dir):
        inputs = job_inputs(jobs, pool)
        done = done_jobs(out_dir, print_, inputs)
        pending = [job for job in jobs if job.key not in done]
        failed: list[str] = []
        if pending:
            adapter = get_adapter(config.adapter, adapter_settings(config))
            adapter.load()
            context = run_context(runner)
            for job in tqdm(pending, desc=f"generate {config.name}", unit="img"):
                try:
                    record = _make_one(adapter, config, job, pool, out_dir, context,
                                       stamp={"fingerprint": print_, "inputs": inputs[job.key]})
                except BenchError:
                    raise
                except Exception as error:  # one bad job (e.g. CUDA OOM) must not stop the others
                    failed.append(f"prompt {job.prompt.id} seed {job.seed}: {type(error).__name__}: {error}")
                    log.error("generate %s: prompt %d seed %d failed: %s", config.name, job.prompt.id, job.seed, error)
                    continue
                append_jsonl(out_dir / "manifest.jsonl", record)
                done[job.key] = record
        _compact_manifest(out_dir, done)
        return GenerateReport(made=len(pending) - len(failed), skipped=len(jobs) - len(pending), failed=failed)


def _make_one(adapter: Any, config: ModelConfig, job: Job, pool: dict[str, Subject], out_dir: Path,
              context: dict[str, Any], stamp: dict[str, str]) -> dict[str, Any]:
    """Make one image; `stamp` (config fingerprint, job inputs hash) is what a resume compares."""
    subjects = [pool[s] for s in job.prompt.subjects]
    natural = job.prompt.natural(pool)
    started = time.perf_counter()
    result = adapter.generate(natural, subjects, [load_reference(s) for s in subjects], job.seed)
    wall = time.perf_counter() - started
    relative = f"images/{job.key}.png"
    data = atomic_write_png(out_dir / relative, result.image)
    return {
        "key": job.key, "prompt_id": job.prompt.id, "seed": job.seed, "subjects": list(job.prompt.subjects),
        "n_subjects": job.prompt.n_subjects, "scene": job.prompt.scene,
        "prompt": natural, "sent_prompt": result.sent_prompt, "sent": result.sent,
        "image": relative, "sha256": sha256_bytes(data), "width": result.image.width, "height": result.image.height,
        "params": config.settings, "model": config.name, "adapter": config.adapter, "model_revision": adapter.revision,
        **stamp, "wall_s": round(wall, 4),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), **context,
    }


def run_context(runner: str) -> dict[str, Any]:
    """Provenance of this process: runner, container digest and runner name (both set by the docker runner
    inside its container), user id, device, versions."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    return {
        "runner": os.environ.get("COLLAPSEBENCH_RUNNER", runner),
        "uid": os.getuid(),
        "container_digest": os.environ.get("COLLAPSEBENCH_IMAGE_DIGEST"),
        "device": device,
        "packages": {name: _version(name) for name in TRACKED_PACKAGES},
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _compact_manifest(out_dir: Path, done: dict[str, dict[str, Any]]) -> None:
    """Rewrite the manifest with one current line per finished job (drops stale and torn lines)."""
    lines = [json.dumps(done[key], sort_keys=True, ensure_ascii=False) + "\n" for key in sorted(done)]
    atomic_write_text(out_dir / "manifest.jsonl", "".join(lines))


def load_manifest(out_dir: Path) -> list[dict[str, Any]]:
    """The finished jobs of a model folder, each image checked against its recorded sha256."""
    path = out_dir / "manifest.jsonl"
    if not path.exists():
        raise BenchError(f"{path}: no manifest; run `collapsebench generate` first")
    records = list(read_jsonl(path))
    for record in records:
        image = out_dir / record["image"]
        if not image.is_file():
            raise BenchError(f"{path}: image {record['image']} of prompt {record['prompt_id']} is missing")
    return records
