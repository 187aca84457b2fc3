"""The generate stage: run one model over the benchmark jobs, resumably.

The manifest is the resume log. A job counts as done only when its manifest
line exists, was made with the same model configuration (fingerprint), and its
PNG is on disk with the recorded sha256. The PNG is written atomically before
its line is appended, so killing the process at any instant loses at most the
job in flight. A lock file keeps two runs of one model from interleaving.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject, load_reference
from collapsebench.benchmark.suite import Job, job_inputs
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_png, sha256_bytes
from collapsebench.core.manifest import (
    IMAGES,
    Manifest,
    Record,
    image_name,
    remove_stale_temp_files,
)
from collapsebench.core.runlog import append_run_log, utc_now
from collapsebench.models import get_adapter

# The fields of a manifest line that depend on the clock alone (see first_timing).
TIMING = ("created_utc", "wall_s")

log = logging.getLogger(__name__)
TRACKED_PACKAGES = ("collapsebench", "torch", "diffusers", "transformers", "pillow")


@dataclass
class GenerateReport:
    made: int
    skipped: int
    failed: list[str]  # "prompt 12 seed 1: <error>"


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


def run_generate(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject], out_dir: Path,
                 runner: str = "local", labels: Mapping[str, str] | None = None,
                 adapter: Any = None) -> GenerateReport:
    """Make every job's image that is not already done; report what was made, skipped and failed.

    `labels` (pool id, casting digest) go into every new manifest line: results say which instance they are of.
    `adapter`: an adapter built (not loaded) by the caller, who keeps it to probe it afterwards (preflight).
    """
    manifest = Manifest(out_dir)
    with model_lock(out_dir):
        for folder in (out_dir, out_dir / IMAGES):  # temp files of a killed run (we hold the lock: none is live)
            remove_stale_temp_files(folder)
        stamps = job_stamps(config, jobs, pool)
        done = manifest.verified(stamps)
        earlier = {record["key"]: record for record in manifest.records()}  # images of these may be gone
        pending = [job for job in jobs if job.key not in done]
        failed: list[str] = []
        if pending:
            adapter = adapter or get_adapter(config.adapter, config.adapter_settings())
            adapter.load()
            context = {**run_context(runner), **(labels or {})}
            for job in tqdm(pending, desc=f"generate {config.name}", unit="img"):
                try:
                    record = _make_one(adapter, config, job, pool, out_dir, context, stamp=stamps[job.key])
                except BenchError:
                    raise
                except Exception as error:  # one bad job (e.g. CUDA OOM) must not stop the others
                    failed.append(f"prompt {job.prompt.id} seed {job.seed}: {type(error).__name__}: {error}")
                    log.error("generate %s: prompt %d seed %d failed: %s", config.name, job.prompt.id, job.seed, error)
                    continue
                append_run_log(out_dir, "generate", {key: record[key] for key in ("key", "sha256", *TIMING)})
                record = first_timing(record, earlier.get(job.key))
                manifest.append(record)
                done[job.key] = record
        manifest.write(done.values())  # one current line per finished job: drops stale, torn and foreign lines
        return GenerateReport(made=len(pending) - len(failed), skipped=len(jobs) - len(pending), failed=failed)


def first_timing(record: Record, earlier: Record | None) -> Record:
    """`record` with the timing of `earlier` when the two differ in nothing else: the same bytes, made from the
    same inputs the same way, only at another time (a fresh clone remaking a deterministic model's images). So
    the committed manifest changes only when an image, its inputs or how it was made did; each run's own timing
    is in the run log (core/runlog.py)."""
    if earlier is None or any(record.get(k) != earlier.get(k) for k in set(record) | set(earlier) if k not in TIMING):
        return record
    return {**record, **{key: earlier[key] for key in TIMING if key in earlier}}


def job_stamps(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject]) -> dict[str, dict[str, str]]:
    """Per job key, what a finished image's manifest line must carry to count as done: the model
    configuration's fingerprint and the hash of the job's inputs. Sharded launchers count and seed with it too."""
    fingerprint = config.fingerprint()
    return {key: {"fingerprint": fingerprint, "inputs": value} for key, value in job_inputs(jobs, pool).items()}


def _make_one(adapter: Any, config: ModelConfig, job: Job, pool: dict[str, Subject], out_dir: Path,
              context: dict[str, Any], stamp: dict[str, str]) -> Record:
    """Make one image; `stamp` (config fingerprint, job inputs hash) is what a resume compares."""
    subjects = [pool[s] for s in job.prompt.subjects]
    natural = job.prompt.natural(pool)
    started = time.perf_counter()
    result = adapter.generate(natural, subjects, [load_reference(s) for s in subjects], job.seed)
    wall = time.perf_counter() - started
    relative = image_name(job.key)
    data = atomic_write_png(out_dir / relative, result.image)
    return {
        "key": job.key, "prompt_id": job.prompt.id, "seed": job.seed, "subjects": list(job.prompt.subjects),
        "n_subjects": job.prompt.n_subjects, "scene": job.prompt.scene,
        "prompt": natural, "sent_prompt": result.sent_prompt, "sent": result.sent,
        "image": relative, "sha256": sha256_bytes(data), "width": result.image.width, "height": result.image.height,
        "params": config.settings, "model": config.name, "adapter": config.adapter, "model_revision": adapter.revision,
        **reference_limit_flag(config, job.prompt.n_subjects), **stamp, "wall_s": round(wall, 4),
        "created_utc": utc_now(), **context,
    }


def reference_limit_flag(config: ModelConfig, n_subjects: int) -> dict[str, Any]:
    """Past the entry's documented `reference_limit` the image is still made (collapse there is what the benchmark
    measures) but its line says so, so no reader takes it for a use the model's authors support."""
    limit = config.reference_limit
    if limit is None:
        return {}
    return {"reference_limit": limit, "beyond_reference_limit": n_subjects > limit}


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
