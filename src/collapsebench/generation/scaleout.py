"""One model over many shards at once, whoever runs them: what both launchers share.

`generate MODEL --gpus ...` (generation/fanout.py: one process or container per
local GPU) and `generate MODEL --launcher slurm` (generation/slurm.py: one job
array task per shard) split the model's jobs with `--shard i/n`, run each shard
as an ordinary `collapsebench generate MODEL --shard i/n` in its own folder
(generation/shards.py), watch them, and merge. This module is the part that does
not depend on where shards run:

- **the shard command** (`GenerateCall`): the same params, folders and runner as
  the parent, so a shard computes exactly what an unsharded run would;
- **preparing** (`ScaleOut.prepare`): images the model folder already has (an
  earlier unsharded run, or an earlier merge with another shard count) are
  copied into the shard folders first, so changing the number of GPUs never
  redoes work, and a shard with nothing left to do is not started at all;
- **progress**: finished images are counted from the shards' manifests (lines
  whose model fingerprint and inputs hash are current: what a resume keeps), so
  the count is right whoever made them and however often a shard restarted;
- **supervising** (`supervise`): one progress bar with an ETA over every shard,
  Ctrl-C or SIGTERM stops every shard (finished images are kept);
- **concluding** (`ScaleOut.conclude`): a failed shard is reported with the tail
  of its log and nothing is merged (the others keep what they made; a rerun
  makes only what is missing); when all succeed, manifest lines of an older
  model configuration are dropped from the model folder and every shard folder
  (as the next plain run would drop them) and the shards are merged.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from collapsebench.benchmark.suite import Job, select_shard
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_bytes
from collapsebench.core.manifest import MANIFEST, Manifest
from collapsebench.generation.generate import model_lock
from collapsebench.generation.shards import SHARDS, merge_shards, shard_dir

Stamps = Mapping[str, Mapping[str, str]]
LOG_TAIL_LINES = 25
STOP_GRACE_S = 60  # a stopped docker shard kills its container and removes it before it exits


@dataclass(frozen=True)
class GenerateCall:
    """The `collapsebench generate` command line every shard of one run executes."""

    model: str
    runner: str  # local | docker
    params_path: Path
    results_dir: Path
    models_dir: Path
    model_cache: Path | None = None  # docker: the host's hub cache
    base_image: str | None = None  # docker: BASE_IMAGE build argument
    engine: str | None = None  # docker runner: --engine (None: params.yaml generate.engine)

    def argv(self, shard: str, gpu: str | None = None) -> list[str]:
        """This Python running the CLI on one shard; `gpu` is the docker runner's `--gpu` (host numbering)."""
        argv = [sys.executable, "-m", "collapsebench.cli", "--params", str(self.params_path.resolve()),
                "--results", str(self.results_dir.resolve()), "--models-dir", str(self.models_dir.resolve()),
                "generate", self.model, "--shard", shard, "--runner", self.runner]
        if self.runner == "docker":
            argv += ["--gpu", gpu] if gpu else []
            argv += ["--model-cache", str(self.model_cache.resolve())] if self.model_cache else []
            argv += ["--base-image", self.base_image] if self.base_image else []
            argv += ["--engine", self.engine] if self.engine else []
        return argv


@dataclass(frozen=True)
class ShardWork:
    """One shard of the run: its `--shard i/n`, its folder and its jobs."""

    index: int
    count: int
    folder: Path
    jobs: tuple[Job, ...]

    @property
    def spec(self) -> str:
        return f"{self.index}/{self.count}"


class ShardHandle(Protocol):
    """A shard started by a launcher: a local process or container, or a Slurm array task."""

    work: ShardWork
    where: str  # e.g. "GPU 1", "Slurm task 1234_1": said in progress and failure messages
    log: Path

    def finished(self) -> bool: ...

    def failure(self) -> str | None:
        """None when the shard made all its images, else why it did not (exit status, Slurm state)."""

    def stop(self) -> None:
        """Ask the shard to stop (finished images are kept); returns at once."""

    def wait_stopped(self, timeout: float) -> None:
        """After `stop`: wait until the shard has ended, forcing it after `timeout` seconds."""


def finished_keys(folder: Path, stamps: Stamps) -> set[str]:
    """Job keys with a current manifest line in `folder` (model fingerprint and inputs hash match `stamps`).

    Cheap enough to poll every second: no image is hashed, and a line being appended (no newline yet) or a
    damaged one is skipped silently, as a resume would redo its job."""
    try:
        data = (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        return set()
    keys = set()
    for line in data.split(b"\n")[:-1]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        key = record.get("key") if isinstance(record, dict) else None
        wanted = stamps.get(key) if isinstance(key, str) else None
        if wanted and all(record.get(field) == value for field, value in wanted.items()):
            keys.add(key)
    return keys


@dataclass
class ScaleOut:
    """A model's jobs split over `count` shards, with the stamps that say which images are current."""

    model: str
    model_dir: Path
    stamps: Stamps
    shards: list[ShardWork]

    @classmethod
    def plan(cls, model: str, model_dir: Path, jobs: Sequence[Job], stamps: Stamps, count: int) -> ScaleOut:
        if count < 1:
            raise BenchError(f"generate {model}: need at least one shard, got {count}")
        shards = [ShardWork(index, count, shard_dir(model_dir, f"{index}/{count}"),
                            tuple(select_shard(list(jobs), f"{index}/{count}"))) for index in range(count)]
        return cls(model, model_dir, stamps, shards)

    @property
    def total(self) -> int:
        return sum(len(shard.jobs) for shard in self.shards)

    def finished(self, shard: ShardWork) -> int:
        return len(finished_keys(shard.folder, self.stamps) & {job.key for job in shard.jobs})

    def count_finished(self) -> int:
        return sum(self.finished(shard) for shard in self.shards)

    def complete(self) -> bool:
        """The model folder already holds every job's current image (checked against its sha256)."""
        with model_lock(self.model_dir):
            return set(self.stamps) <= set(Manifest(self.model_dir).verified(self.stamps))

    def prepare(self) -> list[ShardWork]:
        """Copy into each shard folder the current images the model folder has and the shard lacks; return the
        shards that still have jobs to do. Holds each folder's lock, so it refuses while another run writes."""
        with model_lock(self.model_dir):
            ready = Manifest(self.model_dir).verified(self.stamps)
        todo = []
        for shard in self.shards:
            with model_lock(shard.folder):
                manifest = Manifest(shard.folder)
                have = manifest.verified(self.stamps)
                for job in shard.jobs:
                    if job.key in ready and job.key not in have:
                        record = ready[job.key]
                        image = (self.model_dir / record["image"]).read_bytes()
                        atomic_write_bytes(shard.folder / record["image"], image)
                        manifest.append(record)
                        have[job.key] = record
            if any(job.key not in have for job in shard.jobs):
                todo.append(shard)
        return todo

    def conclude(self, failures: Mapping[ShardHandle, str | None], out: Any = sys.stderr) -> int:
        """Report failed shards with their logs (exit status 1), or merge when every shard succeeded (0)."""
        failed = {handle: reason for handle, reason in failures.items() if reason}
        for handle, reason in failed.items():
            print(f"generate {self.model}: shard {handle.work.spec} ({handle.where}) failed: {reason}; "
                  f"{self.finished(handle.work)} of {len(handle.work.jobs)} images made. "
                  f"Last lines of its log {handle.log}:", file=out)
            for line in log_tail(handle.log):
                print(f"    | {line}", file=out)
        if failed:
            print(f"generate {self.model}: {len(failed)} of {len(failures)} shards failed, nothing merged; the other "
                  "shards keep their images: rerun the same command to make only what is missing", file=out)
            return 1
        for folder in [self.model_dir, *sorted((self.model_dir / SHARDS).glob("*-of-*"))]:
            self._drop_stale(folder)
        report = merge_shards(self.model_dir)
        print(f"generate {self.model}: {len(self.shards)} shards merged, {report.images} of {self.total} images in "
              f"{self.model_dir} ({report.copied} copied)")
        return 0 if report.images == self.total else 1

    def _drop_stale(self, folder: Path) -> None:
        """Keep only current lines in `folder`'s manifest, as `generate` itself does when it runs there: lines of
        an older model configuration would otherwise collide with the new images in the merge."""
        if (folder / MANIFEST).is_file():
            with model_lock(folder):
                manifest = Manifest(folder)
                manifest.write(manifest.verified(self.stamps).values())


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a shard's log; progress bars' carriage returns count as line ends."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [f"(no log at {path})"]
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


def supervise(plan: ScaleOut, handles: Sequence[ShardHandle], poll_s: float = 1.0) -> dict[ShardHandle, str | None]:
    """Wait for every shard under one progress bar (images over all shards, ETA from the rate since start);
    on Ctrl-C or SIGTERM stop them all, then re-raise. Returns each shard's failure (None: succeeded)."""
    bar = tqdm(total=plan.total, initial=plan.count_finished(), desc=f"generate {plan.model}", unit="img",
               file=sys.stderr, dynamic_ncols=True)
    try:
        with _sigterm_as_interrupt():
            while True:
                running = [handle for handle in handles if not handle.finished()]
                bar.update(plan.count_finished() - bar.n)
                bar.set_postfix_str(f"{len(running)} of {len(handles)} shards unfinished")
                if not running:
                    break
                time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.close()
        print(f"generate {plan.model}: interrupted, stopping {len(handles)} shards; finished images are kept, "
              "rerun to resume", file=sys.stderr)
        for handle in handles:
            handle.stop()
        deadline = time.monotonic() + STOP_GRACE_S
        for handle in handles:
            handle.wait_stopped(max(0.0, deadline - time.monotonic()))
        raise
    bar.close()
    return {handle: handle.failure() for handle in handles}


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (dvc, a batch system, `kill`) stops the shards just as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
