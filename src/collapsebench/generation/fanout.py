"""`generate MODEL --gpus all|0,1,...`: one shard per GPU of this host, all at once, then one merge.

Shard i of k runs on the i-th listed device as a child process
`collapsebench generate MODEL --shard i/k`: with the docker runner that child
starts the model's container with `--gpu <device>` (one container per GPU);
with the local runner the child itself is the worker, with
CUDA_VISIBLE_DEVICES=<device>. Children are real processes, not threads, so a
crash, an out-of-memory kill or a hung GPU takes down one shard, not the run.
Each child's output goes to its own log (`<log_dir>/<model>/shard-i-of-k.log`,
appended across runs); progress, failure reports and the merge are
generation/scaleout.py's.

Devices are named as CUDA names them: `all` is CUDA_VISIBLE_DEVICES when it is
set, else every GPU `nvidia-smi` lists. Where CUDA is absent (CI, a laptop), the
listed "devices" still each get a process: `--gpus 0,1,2` runs three CPU
workers, which is how the fan-out is tested without a GPU.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from collapsebench.core.errors import BenchError
from collapsebench.generation.scaleout import (
    GenerateCall,
    ScaleOut,
    ShardWork,
    supervise,
)

DEVICE_ID = re.compile(r"[A-Za-z0-9:_-]+")  # an index, or a GPU UUID / MIG name


def parse_gpus(value: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """`all` or `0,1,...` -> device ids, in the order the shards get them."""
    if value == "all":
        visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        devices = visible or host_gpus()
        if not devices:
            raise BenchError("--gpus all: no GPU found (CUDA_VISIBLE_DEVICES is unset and nvidia-smi lists none); "
                             "name the devices, e.g. --gpus 0,1")
        return devices
    devices = [d.strip() for d in value.split(",")]
    if not all(DEVICE_ID.fullmatch(d) for d in devices) or len(set(devices)) != len(devices):
        raise BenchError(f"--gpus must be none, all, or distinct device ids like 0,1,3; got {value!r}")
    return devices


def host_gpus() -> list[str]:
    """The indices `nvidia-smi` lists (the host's numbering, which docker's device requests use too)."""
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                            text=True, check=False)
    return result.stdout.split() if result.returncode == 0 else []


class ShardProcess:
    """One shard as a child process on one device, its output appended to its log."""

    def __init__(self, work: ShardWork, device: str, call: GenerateCall, log: Path) -> None:
        self.work, self.where, self.log = work, f"GPU {device}", log
        environment = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
        if call.runner == "local":
            environment["CUDA_VISIBLE_DEVICES"] = device
        argv = call.argv(work.spec, gpu=device)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            handle.write(f"== {stamp} shard {work.spec} on {self.where}: {' '.join(argv)}\n")
            handle.flush()
            self.process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=environment)

    def finished(self) -> bool:
        return self.process.poll() is not None

    def failure(self) -> str | None:
        status = self.process.poll()
        return None if status == 0 else f"exit status {status}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_on_devices(plan: ScaleOut, call: GenerateCall, devices: Sequence[str], log_dir: Path,
                   setup: Callable[[], None] = lambda: None) -> int:
    """Run `plan`'s unfinished shards (shard i on devices[i]) at once; merge when all succeed. `setup` runs once
    before any shard starts, when there is work to do (the docker runner builds the model's image there)."""
    if len(devices) != len(plan.shards):
        raise BenchError(f"{len(devices)} devices for {len(plan.shards)} shards")
    if plan.complete():
        print(f"generate {plan.model}: all {plan.total} images already made")
        return 0
    setup()
    todo = plan.prepare()
    handles = [ShardProcess(work, devices[work.index], call,
                            log_dir / plan.model / f"shard-{work.index}-of-{work.count}.log") for work in todo]
    return plan.conclude(supervise(plan, handles))
