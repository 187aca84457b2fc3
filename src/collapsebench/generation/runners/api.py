"""The api runner: a closed model's jobs sent to its provider, a few at once, resumably, never paid for twice.

Every job ends in exactly one of: an image (a manifest line, written after its PNG, as for every other model), a
refusal (a `refusals.jsonl` line: over the reference limit, content policy, no image in the answer) or an error
(also a `refusals.jsonl` line, reason `error`, retried by the next run). A job needing more references than the
entry's `reference_limit` is never sent and never truncated. Requests run on `concurrency` threads; answers are
written by this thread alone, each as soon as it arrives, so a killed run loses only the answers still in flight
and a rerun asks only for jobs that have neither an image nor a final refusal.

The key is read from the provider's environment variable once, before anything is sent, and is removed from
every message that could reach a log, a manifest line, a refusal line or an exception.

An asynchronous provider (BFL) bills the submit and delivers later: each submitted task is journalled in
`tasks.jsonl` (job key, stamp, polling URL, task id; never the key) before it is polled, so a rerun after a kill
polls the task it already paid for instead of submitting the job again. A synchronous call in flight when the
process dies has no such handle: its answer never arrived, and the rerun asks again.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject
from collapsebench.benchmark.suite import Job
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_bytes, atomic_write_text, sha256_bytes
from collapsebench.core.manifest import (
    IMAGES,
    Manifest,
    Record,
    image_name,
    remove_stale_temp_files,
)
from collapsebench.core.refusals import Refusals
from collapsebench.core.runlog import append_run_log
from collapsebench.generation.generate import job_stamps, model_lock, run_context

ACCESS = "closed-api"
TASKS = "tasks.jsonl"


class TaskLog:
    """Submitted, unfinished tasks of an asynchronous provider, appended from worker threads (fsync per line)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / TASKS
        self.lock = threading.Lock()

    def pending(self, stamps: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Any]]:
        """Per job key, its last journalled task, when made for the job as it is now."""
        found: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return found
        for raw in self.path.read_bytes().split(b"\n"):
            try:
                line = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue  # a torn last line: that task is simply submitted again
            wanted = stamps.get(line.get("key")) if isinstance(line, dict) else None
            if wanted and all(line.get(f) == v for f, v in wanted.items()) and isinstance(line.get("task"), dict):
                found[line["key"]] = line["task"]
        return found

    def append(self, key: str, stamp: Mapping[str, str], task: Mapping[str, Any]) -> None:
        with self.lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, **stamp, "task": dict(task)}, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def keep(self, keys: set[str]) -> None:
        """Drop every task but those of `keys` (jobs still without an answer)."""
        lines = [line for line in (self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else [])
                 if line.strip().startswith("{") and _key_of(line) in keys]
        if lines:
            atomic_write_text(self.path, "".join(line + "\n" for line in lines))
        else:
            self.path.unlink(missing_ok=True)


def _key_of(line: str) -> str | None:
    try:
        return json.loads(line).get("key")
    except (json.JSONDecodeError, AttributeError):
        return None


@dataclass
class Plan:
    """What a run of an api entry would do, before anything is sent."""

    jobs: int
    made: int  # already imaged
    answered: int  # already refused for good
    over_limit: list[Job]  # to be recorded as refused, never sent
    to_request: list[Job]

    def cost(self, api: Mapping[str, Any]) -> float:
        """The list price of every request still to make: per image, plus per reference sent where charged."""
        per_image, per_reference = float(api["price_usd_per_image"]), float(api.get("price_usd_per_reference", 0))
        return sum(per_image + per_reference * job.prompt.n_subjects for job in self.to_request)


def plan(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject], out_dir: Path) -> Plan:
    stamps = job_stamps(config, jobs, pool)
    made = Manifest(out_dir).verified(stamps)
    answered = Refusals(out_dir).final(stamps)
    pending = [job for job in jobs if job.key not in made and job.key not in answered]
    limit = config.reference_limit
    over = [job for job in pending if limit is not None and job.prompt.n_subjects > limit]
    return Plan(len(jobs), len(made), len(answered), over, [job for job in pending if job not in over])


def describe_plan(config: ModelConfig, found: Plan) -> str:
    """The dry-run's report: jobs, what would be refused, what would be requested and what it would cost."""
    api = config.api or {}
    price = f"${float(api['price_usd_per_image']):.4f} per image"
    if api.get("price_usd_per_reference"):
        price += f" + ${float(api['price_usd_per_reference']):.4f} per reference"
    return (f"generate {config.name} --dry-run ({api['provider']} {api['model']}): {found.jobs} jobs; "
            f"{found.made} already made, {found.answered} already refused; {len(found.over_limit)} would be refused "
            f"(over_reference_limit: more than {config.reference_limit} references); {len(found.to_request)} to "
            f"request; cost ${found.cost(api):.2f} ({price}, list price of {api['price_date']}); nothing was sent")


def provider_for(config: ModelConfig, environ: Mapping[str, str], policy: Any) -> Any:
    """The entry's provider with its key, or a BenchError naming the variable when the key is missing."""
    from collapsebench.models.api import provider_class
    from collapsebench.models.api.base import check_settings

    api = config.api or {}
    cls = provider_class(api["provider"])
    check_settings(cls, config.settings, f"models/{config.name}/model.yaml: settings")
    key = environ.get(cls.key_env, "").strip()
    if not key:
        raise BenchError(f"{config.name}: {cls.key_env} is not set; {api['provider']} needs your API key in that "
                         f"environment variable (nothing was sent)")
    base_url = environ.get(cls.base_url_env, "").strip() or cls.default_base_url
    return cls(api["model"], config.settings, key, base_url, policy)


def run_api(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject], out_dir: Path,
            labels: Mapping[str, str], concurrency: int, policy: Any,
            environ: Mapping[str, str] = os.environ) -> int:
    """Make or refuse every job not answered yet; print a summary and each error. Exit status 1 if any error."""
    if concurrency < 1:
        raise BenchError(f"--concurrency must be at least 1, got {concurrency}")
    provider = provider_for(config, environ, policy)
    try:
        with model_lock(out_dir):
            for folder in (out_dir, out_dir / IMAGES):
                remove_stale_temp_files(folder)
            counts = _run(config, jobs, pool, out_dir, labels, concurrency, provider)
    finally:
        provider.close()
    errors = counts.pop("error", 0)
    refused = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()) if reason not in ("made", "done"))
    print(f"generate {config.name}: {counts.get('made', 0)} made, {counts.get('done', 0)} already done, "
          f"{sum(n for r, n in counts.items() if r not in ('made', 'done'))} refused ({refused or 'none'}), "
          f"{errors} failed")
    return 1 if errors else 0


def _run(config: ModelConfig, jobs: list[Job], pool: dict[str, Subject], out_dir: Path,
         labels: Mapping[str, str], concurrency: int, provider: Any) -> Counter[str]:
    manifest, refusals = Manifest(out_dir), Refusals(out_dir)
    stamps = job_stamps(config, jobs, pool)
    found = plan(config, jobs, pool, out_dir)
    done = manifest.verified(stamps)
    counts: Counter[str] = Counter(done=found.made + found.answered)
    context = {**run_context("api"), "device": f"remote ({config.api['provider']} API)", **labels}
    tasks = TaskLog(out_dir)
    paid = tasks.pending(stamps) if provider.asynchronous else {}
    for job in found.over_limit:
        refusals.append(_refusal(config, job, stamps[job.key], "over_reference_limit",
                                 f"{job.prompt.n_subjects} references; {config.api['model']} accepts at most "
                                 f"{config.reference_limit} in one call (not sent, not truncated)"))
        counts["over_reference_limit"] += 1
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"api-{config.name}") as executor:
            running: dict[Future[Any], Job] = {}
            queue = list(found.to_request)
            stop: str | None = None
            while queue or running:
                while queue and len(running) < concurrency:
                    job = queue.pop(0)
                    journal = (lambda task, job=job: tasks.append(job.key, stamps[job.key], task)) \
                        if provider.asynchronous else None
                    running[executor.submit(_ask, provider, job, pool, paid.get(job.key), journal)] = job
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = running.pop(future)
                    outcome = _settle(future, provider, config, job, pool, stamps[job.key], out_dir, context)
                    line = outcome.get("line") or {}
                    append_run_log(out_dir, "generate", {"key": job.key, "outcome": line.get("reason", "image"),
                                                         "sha256": outcome.get("record", {}).get("sha256")})
                    if outcome["kind"] == "image":
                        manifest.append(outcome["record"])
                        done[job.key] = outcome["record"]
                        counts["made"] += 1
                    else:
                        refusals.append(outcome["line"])
                        counts[outcome["line"]["reason"]] += 1
                        if outcome["line"]["reason"] == "error":
                            print(f"  FAILED {outcome['line']['detail']}", file=sys.stderr)
                    if outcome.get("stop"):  # a rejected key: send nothing more, keep what is in flight
                        queue.clear()
                        stop = stop or outcome["line"]["detail"]
        if stop:
            raise BenchError(stop)
    finally:
        manifest.write(done.values())
        latest = {line["key"]: line for line in refusals.read()}
        refusals.write(line for key, line in latest.items() if key not in done)
        tasks.keep({job.key for job in jobs} - set(done) - set(latest))
    return counts


@dataclass
class Asked:
    prompt: str
    references: list[Any]
    answer: Any | None
    error: BaseException | None
    request_date: str
    wall_s: float


def _ask(provider: Any, job: Job, pool: dict[str, Subject], submitted: dict[str, Any] | None = None,
         on_submit: Any = None) -> Asked:
    """One job on a worker thread: references, rendered prompt, the provider's answer (or its error)."""
    from collapsebench.models.api.base import references_of

    subjects = [pool[s] for s in job.prompt.subjects]
    prompt = provider.render(job.prompt, subjects)
    references = references_of(subjects)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    try:
        answer, error = provider.ask(prompt, references, job.seed, _label(job), submitted, on_submit), None
        if answer.image is not None:  # decode and re-encode here, on the worker: PNG encoding is the slow part
            from collapsebench.models.api.answer_image import stored_png

            answer.extra["stored"] = stored_png(answer.image, _label(job))
    except Exception as caught:  # every failure of one job is recorded for that job
        answer, error = None, caught
    return Asked(prompt, references, answer, error, date, time.perf_counter() - started)


def _label(job: Job) -> str:
    return f"job {job.key} (prompt {job.prompt.id}, seed {job.seed}, {job.prompt.n_subjects} subjects)"


def _settle(future: Future[Any], provider: Any, config: ModelConfig, job: Job, pool: dict[str, Subject],
            stamp: dict[str, str], out_dir: Path, context: dict[str, Any]) -> dict[str, Any]:
    """Turn a finished worker into what is written: a manifest record with its PNG on disk, or a refusal line."""
    from collapsebench.models.api.http import (
        KeyRejected,
        ProviderError,
        Refused,
        redact,
    )

    asked: Asked = future.result()
    error, answer = asked.error, asked.answer
    if isinstance(error, Refused):
        return {"kind": "refusal", "line": _refusal(config, job, stamp, error.reason, redact(error.detail, provider.key),
                                                    asked.request_date)}
    if error is not None:
        known = isinstance(error, (ProviderError, KeyRejected))
        message = redact(str(error) if known else f"{_label(job)}: {type(error).__name__}: {error}", provider.key)
        line = _refusal(config, job, stamp, "error", message, asked.request_date)
        return {"kind": "refusal", "line": line, "stop": isinstance(error, KeyRejected)}
    if answer.image is None:
        return {"kind": "refusal", "line": _refusal(config, job, stamp, answer.reason or "no_image",
                                                    redact(answer.detail, provider.key), asked.request_date,
                                                    answer.model_id)}
    image, png = answer.extra.pop("stored")
    relative = image_name(job.key)
    atomic_write_bytes(out_dir / relative, png)
    api = config.api or {}
    record: Record = {
        "key": job.key, "prompt_id": job.prompt.id, "seed": job.seed, "subjects": list(job.prompt.subjects),
        "n_subjects": job.prompt.n_subjects, "scene": job.prompt.scene,
        "prompt": job.prompt.natural(pool), "sent_prompt": asked.prompt,
        "sent": {"settings": provider.sent_settings(job.seed), "references": [r.sha256 for r in asked.references],
                 "reference_order": "prompt order, image 1 = slot 1", "endpoint": provider.base_url,
                 "seed_sent": provider.sends_seed, "answer": _plain(answer.extra)},
        "image": relative, "sha256": sha256_bytes(png), "width": image.width, "height": image.height,
        "params": config.settings, "model": config.name, "adapter": config.adapter,
        "model_revision": f"{api['provider']}:{api['model']}@{asked.request_date[:10]}",
        "provider": api["provider"], "api_model": api["model"], "request_date": asked.request_date,
        "access": ACCESS, **stamp, "wall_s": round(asked.wall_s, 4),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"), **context,
    }
    if answer.model_id and answer.model_id != api["model"]:
        record["api_model_returned"] = answer.model_id
    return {"kind": "image", "record": record}


def _plain(value: Any) -> Any:
    """JSON-safe provider facts (usage objects, task ids) for the manifest."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _refusal(config: ModelConfig, job: Job, stamp: dict[str, str], reason: str, detail: str,
             request_date: str | None = None, model_id: str | None = None) -> dict[str, Any]:
    api = config.api or {}
    line = {"key": job.key, "prompt_id": job.prompt.id, "seed": job.seed, "n_subjects": job.prompt.n_subjects,
            "scene": job.prompt.scene, "subjects": list(job.prompt.subjects), "reason": reason, "detail": detail,
            "provider": api.get("provider"), "api_model": api.get("model"),
            "request_date": request_date or datetime.now(UTC).isoformat(timespec="seconds"), **stamp}
    if model_id and model_id != api.get("model"):
        line["api_model_returned"] = model_id
    return line


def generate_api(args: Any, params: dict[str, Any], config: ModelConfig, jobs: list[Job], instance: Any) -> int:
    """`collapsebench generate MODEL [--concurrency N] [--dry-run]` for a `runner: api` entry."""
    from collapsebench.models.api.http import RetryPolicy

    if config.runner != "api":
        raise BenchError(f"generate {config.name} --dry-run: only closed API entries (runner: api) are paid per "
                         f"image; {config.name} runs with runner {config.runner}")
    unsupported = [flag for flag, used in (("--shard", args.shard), ("--gpus", args.gpus not in (None, "none")),
                                           ("--launcher slurm", args.launcher == "slurm"),
                                           ("--runner", args.runner)) if used]
    if unsupported:
        raise BenchError(f"generate {config.name}: {', '.join(unsupported)} do not apply to a closed API entry "
                         "(no GPU, no container); use --concurrency")
    out_dir = Path(args.results) / "models" / config.name
    if args.dry_run:
        print(describe_plan(config, plan(config, jobs, instance.pool, out_dir)))
        return 0
    policy = RetryPolicy.from_params((params.get("generate") or {}).get("api"))
    return run_api(config, jobs, instance.pool, out_dir, instance.labels, args.concurrency, policy)
