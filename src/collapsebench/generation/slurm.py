"""`generate MODEL --launcher slurm`: one Slurm job array, one task per shard, through submitit.

Each task runs `collapsebench generate MODEL --shard i/n` (generation/scaleout.py's
`GenerateCall`) in a child process, with the local runner (the task's GPUs are
the ones Slurm put in CUDA_VISIBLE_DEVICES) or the docker runner with the run's
container engine passed on as `--engine` (the flag, else params.yaml
`generate.engine`): a Docker or Podman container gets the GPUs Slurm allocated,
SLURM_JOB_GPUS, in the host's numbering, since the engine's daemon sees every
GPU; Apptainer runs in the task itself and keeps the task's CUDA_VISIBLE_DEVICES.
The results folder must be on a file system the nodes share, as submitit's job
folder is.

Preemption and requeueing cost nothing but the image in flight: the task is a
`submitit.helpers.Checkpointable` submitted with `--requeue`, so on submitit's
timeout/preemption signal (USR2, 90 s before the end) it is requeued as it
was, and a task Slurm itself requeues (preemption with PreemptMode=REQUEUE,
`scontrol requeue`, a node failure) simply starts again; either way the shard's
generation resumes from its manifest. The child ignores USR2, so only the task
decides what the signal means.

The launcher submits only shards that still have jobs to do, then waits with
one progress bar counted from the shards' manifests. A task has ended when
`squeue` no longer lists it (squeue works on every cluster, with or without the
accounting database that `sacct`, and so submitit's own state watcher, needs);
it succeeded when submitit's result file says so. A task that ended without a
result (cancelled, killed, out of time) is reported with its Slurm state and its
log. Ctrl-C or SIGTERM cancels the whole array; a rerun resubmits what is missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable

from collapsebench.core.errors import BenchError
from collapsebench.generation.scaleout import (
    GenerateCall,
    ScaleOut,
    ShardWork,
    supervise,
)

SQUEUE_EVERY_S = 2.0
DAEMON_ENGINES = ("docker", "podman")  # engines whose containers a daemon starts, outside the task's GPU limits
TIME = re.compile(r"(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?")  # [D-]HH:MM[:SS]


def minutes(value: Any) -> int:
    """A Slurm time limit as whole minutes: an integer of minutes, or [D-]HH:MM[:SS] (seconds rounded up)."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = TIME.fullmatch(text)
    if not match:
        raise BenchError(f"Slurm time limit must be minutes or [D-]HH:MM[:SS], got {value!r}")
    days, hours, mins, secs = (int(part or 0) for part in match.groups())
    return days * 1440 + hours * 60 + mins + (1 if secs else 0)


@dataclass(frozen=True)
class SlurmSettings:
    """params.yaml `generate.slurm`, with the command line's flags applied on top."""

    shards: int = 4
    partition: str | None = None
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: float | None = None
    time_min: int = 240
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int | None = None  # at most this many tasks at once (default: all)
    setup: tuple[str, ...] = ()  # shell lines run before each task, e.g. `module load cuda`
    additional: Mapping[str, Any] = field(default_factory=dict)  # any other sbatch option, as is

    @classmethod
    def from_params(cls, block: Mapping[str, Any] | None, **flags: Any) -> SlurmSettings:
        values = {**(block or {}), **{key: value for key, value in flags.items() if value is not None}}
        known = {"shards", "partition", "gpus_per_task", "cpus_per_task", "mem_gb", "time", "account", "qos",
                 "constraint", "array_parallelism", "setup", "additional"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BenchError(f"generate.slurm: unknown settings {unknown}; known: {sorted(known)}")
        plain = {key: value for key, value in values.items() if key not in ("time", "setup", "additional")}
        settings = cls(**plain, time_min=minutes(values.get("time", cls.time_min)),
                       setup=tuple(values.get("setup") or ()), additional=dict(values.get("additional") or {}))
        if settings.shards < 1 or settings.gpus_per_task < 0 or settings.cpus_per_task < 1:
            raise BenchError("generate.slurm: shards and cpus_per_task must be >= 1, gpus_per_task >= 0")
        return settings

    def executor_parameters(self, job_name: str, tasks: int) -> dict[str, Any]:
        """submitit SlurmExecutor parameters: one task per array element, requeueable, stdout and stderr in one log."""
        parameters: dict[str, Any] = {
            "job_name": job_name, "time": self.time_min, "nodes": 1, "ntasks_per_node": 1,
            "cpus_per_task": self.cpus_per_task, "array_parallelism": self.array_parallelism or tasks,
            "stderr_to_stdout": True, "additional_parameters": {"requeue": True, **self.additional},
        }
        optional = {"partition": self.partition, "account": self.account, "qos": self.qos,
                    "constraint": self.constraint, "mem": self.mem_gb,
                    "gpus_per_task": self.gpus_per_task or None, "setup": list(self.setup) or None}
        parameters.update({key: value for key, value in optional.items() if value is not None})
        return parameters


class ShardTask(Checkpointable):
    """Runs in the Slurm task: the shard's generate command as a child process. Checkpointing resubmits it
    unchanged, since the shard's generation resumes by itself."""

    def __init__(self, argv: list[str], engine: str | None) -> None:
        """`engine`: the docker runner's container engine, None for the local runner."""
        self.argv, self.engine = argv, engine

    def __call__(self) -> int:
        argv = list(self.argv) + (["--engine", self.engine] if self.engine else [])
        if self.engine in DAEMON_ENGINES and os.environ.get("SLURM_JOB_GPUS"):
            argv += ["--gpu", os.environ["SLURM_JOB_GPUS"]]
        environment = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
        task = f"{os.environ.get('SLURM_ARRAY_JOB_ID')}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
        restart = os.environ.get("SLURM_RESTART_COUNT", 0)
        print(f"== Slurm task {task} (restart {restart}): {' '.join(argv)}", flush=True)
        status = subprocess.call(argv, env=environment, stdin=subprocess.DEVNULL, preexec_fn=_ignore_usr2)
        if status in (-signal.SIGTERM, -signal.SIGINT):
            # Slurm is stopping the task (requeue, preemption, scancel; a docker child turns SIGTERM into an
            # interrupt): leave no result, so that a requeued task is not taken for a failed one. What the shard
            # made is in its folder.
            print(f"== stopped by {signal.Signals(-status).name}; finished images are kept", flush=True)
            os._exit(128 + signal.SIGTERM)
        if status != 0:
            raise RuntimeError(f"collapsebench generate exited with status {status}")
        return status


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class SlurmArray:
    """The submitted array: which of its tasks Slurm still lists (queried at most every SQUEUE_EVERY_S)."""

    def __init__(self, jobs: list[Any]) -> None:
        self.jobs = jobs
        self.array_id = jobs[0].job_id.split("_")[0]
        self._listed: dict[str, str] = {}
        self._asked = 0.0
        self.cancelled = False

    def listed(self) -> dict[str, str]:
        """Task id (`123_4`) -> state, for the tasks squeue still lists (pending, running, completing)."""
        if time.monotonic() - self._asked >= SQUEUE_EVERY_S:
            result = subprocess.run(["squeue", "-h", "-r", "-j", self.array_id, "-o", "%i|%T"], capture_output=True,
                                    text=True, check=False)
            if result.returncode == 0:
                self._listed = dict(line.split("|", 1) for line in result.stdout.split() if "|" in line)
            elif "Invalid job id" in result.stderr:
                self._listed = {}  # the whole array ended and was purged
            # another error (controller busy): keep the last answer and ask again
            self._asked = time.monotonic()
        return self._listed

    def cancel(self) -> None:
        if not self.cancelled:
            subprocess.run(["scancel", self.array_id], check=False)
            self.cancelled = True


class SlurmShard:
    """One array task of one shard."""

    def __init__(self, work: ShardWork, job: Any, array: SlurmArray) -> None:
        self.work, self.job, self.array = work, job, array
        self.where = f"Slurm task {job.job_id}"
        self.log = Path(job.paths.stdout)

    def finished(self) -> bool:
        return self.job.job_id not in self.array.listed()

    def failure(self) -> str | None:
        if not Path(self.job.paths.result_pickle).exists():
            return f"ended without a result (Slurm state {slurm_state(self.job.job_id)})"
        try:
            self.job.result()
        except Exception as error:  # submitit re-raises the task's error with its traceback
            return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return None

    def stop(self) -> None:
        self.array.cancel()

    def wait_stopped(self, timeout: float) -> None:
        """Nothing to wait for: once cancelled, Slurm ends the tasks itself."""


def slurm_state(task_id: str) -> str:
    """The task's state as the controller remembers it (MinJobAge after it ended), else UNKNOWN."""
    result = subprocess.run(["scontrol", "show", "job", "-o", task_id], capture_output=True, text=True, check=False)
    match = re.search(r"\bJobState=(\S+)", result.stdout)
    return match.group(1) if match else "UNKNOWN"


def submit_array(plan: ScaleOut, call: GenerateCall, settings: SlurmSettings, folder: Path) -> list[SlurmShard]:
    """One job array with a task per unfinished shard; submitit's job files and the tasks' logs go in `folder`."""
    todo = plan.prepare()
    if not todo:
        return []
    executor = submitit.SlurmExecutor(folder=folder / "%j")
    executor.update_parameters(**settings.executor_parameters(f"collapsebench-{plan.model}", len(todo)))
    shard_call = replace(call, engine=None)  # ShardTask adds the engine (scale_out resolved it) and the task's --gpu
    try:
        jobs = executor.submit_array([ShardTask(shard_call.argv(work.spec), call.engine) for work in todo])
    except subprocess.CalledProcessError as error:
        raise BenchError(f"sbatch refused the array: {error.output.decode() if error.output else error}") from error
    array = SlurmArray(jobs)
    print(f"generate {plan.model}: submitted Slurm array {array.array_id} ({len(jobs)} tasks: shards "
          f"{', '.join(work.spec for work in todo)}); logs in {folder}")
    return [SlurmShard(work, job, array) for work, job in zip(todo, jobs, strict=True)]


def run_on_slurm(plan: ScaleOut, call: GenerateCall, settings: SlurmSettings, folder: Path) -> int:
    """Submit the unfinished shards as one array, wait with progress, then merge (see the module docstring).
    The tasks' container engine is `call.engine`, resolved by launch.shard_engine."""
    if plan.complete():
        print(f"generate {plan.model}: all {plan.total} images already made")
        return 0
    return plan.conclude(supervise(plan, submit_array(plan, call, settings, folder), poll_s=SQUEUE_EVERY_S))
