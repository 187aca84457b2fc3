"""The run log: what each run of a stage did and when, kept beside a model's results but never committed.

Committed results must be byte-stable: a fresh clone that reruns the pipeline and gets the same images and
scores must leave `git status` empty. So nothing that depends on the clock or on what a cache already held goes
into the files the pipeline commits (manifest lines keep the timing of the run that first made their exact bytes,
see core/manifest.py; scoring.json holds no cache counters). What each run really did (every image it made with
its wall time, how many images went through the backbones, cache hits and misses) is appended here instead:
`results/models/<model>/runlog.jsonl`, ignored by git and by DVC (.gitignore, .dvcignore), one JSON line per
event, with the time it was written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from collapsebench.core.io import append_line
from collapsebench.core.manifest import encode

RUNLOG = "runlog.jsonl"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_run_log(folder: Path, stage: str, event: Mapping[str, Any]) -> None:
    """Append one event of `stage` to `folder`'s run log (one fsynced line; a torn tail is cut first)."""
    append_line(Path(folder) / RUNLOG, encode({"stage": stage, "logged_utc": utc_now(), **event}))


def read_run_log(folder: Path) -> list[dict[str, Any]]:
    """Every well-formed event of `folder`'s run log, oldest first (a torn or foreign line is skipped)."""
    path = Path(folder) / RUNLOG
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
