"""The refusal record: one JSON line per job that has no image, `results/models/<model>/refusals.jsonl`.

A closed API can answer a job without an image: the job needs more references than the model accepts (we never
send it, and never truncate its references), the provider's content policy blocked it, or the answer held no
image. Those are the model's answers and are final: a rerun does not ask again (it would pay again for the same
refusal), the report counts them in a refusal rate and never scores them as a collapse, and the coverage counts
the job as answered. A line with reason `error` (malformed answer, expired result URL, retries exhausted) is not
an answer: a rerun retries it, and the coverage counts the job as missing.

Lines are appended with an fsync, like the manifest, so a killed run keeps every refusal it recorded; a torn last
line is cut before the next append. Each line carries the job's stamp (configuration fingerprint, inputs hash):
a refusal made with other settings or other references does not count for the current job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from collapsebench.core.io import append_line, atomic_write_text
from collapsebench.core.manifest import encode

log = logging.getLogger(__name__)

REFUSALS = "refusals.jsonl"
FINAL_REASONS = ("over_reference_limit", "content_policy", "no_image")  # the model's answers: never asked again
REASONS = (*FINAL_REASONS, "error")  # error: no answer (retried by the next run)
REQUIRED = ("key", "prompt_id", "seed", "n_subjects", "scene", "reason", "detail", "provider", "request_date")
Refusal = dict[str, Any]


class Refusals:
    """The refusal record of one model folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / REFUSALS

    def read(self) -> list[Refusal]:
        """Every well-formed line in file order; an unreadable line is dropped with a warning (its job is redone)."""
        if not self.path.is_file():
            return []
        lines: list[Refusal] = []
        for number, raw in enumerate(self.path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("%s: line %d is not valid JSON; its job counts as not answered", self.path, number)
                continue
            if isinstance(line, dict) and all(field in line for field in REQUIRED) and line["reason"] in REASONS:
                lines.append(line)
            else:
                log.warning("%s: line %d is not a refusal record; its job counts as not answered", self.path, number)
        return lines

    def final(self, stamps: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Refusal]:
        """Per job key, its last line when that line is a final answer (not `error`) and, when `stamps` is given,
        was made for the job as it is now (same fingerprint and inputs)."""
        latest = {line["key"]: line for line in self.read()}
        found = {}
        for key, line in latest.items():
            if line["reason"] not in FINAL_REASONS:
                continue
            wanted = None if stamps is None else stamps.get(key)
            if stamps is not None and (wanted is None or any(line.get(f) != v for f, v in wanted.items())):
                continue
            found[key] = line
        return found

    def append(self, line: Mapping[str, Any]) -> None:
        """Append one line and fsync it, cutting a torn tail (a crash mid-append) first."""
        append_line(self.path, encode(line))

    def write(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """Replace the file atomically: one line per job key, in key order (removed when there is none)."""
        by_key = {line["key"]: line for line in lines}
        if not by_key:
            self.path.unlink(missing_ok=True)
            return
        atomic_write_text(self.path, "".join(encode(by_key[key]) for key in sorted(by_key)))
