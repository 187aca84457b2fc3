"""The manifest: one JSON line per finished image, the contract between every stage.

`generate` (and shard merges and results-submission imports) write it; `score`,
the gallery, the model cards and provenance read it. It lives here, in one
place, because it is the resume log and the audit trail at once:

- **Writing** is append-only with an fsync per line, after the image itself was
  written atomically, so killing a run at any instant loses at most the job in
  flight. Before the first append of a run, a torn tail (a last line with no
  newline, left by a crash mid-append) is cut off; otherwise the next record
  would be glued onto it and the file would be wedged for good.
- **Reading** for resume is tolerant (a line that does not parse is dropped with
  a warning and its job is simply made again); reading for consumption is
  strict: every image must be present with the sha256 its line records.
- **Compacting** rewrites the file atomically with one current line per job, in
  job-key order, which is what makes a model folder byte-stable across reruns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapsebench.core.errors import BenchError
from collapsebench.core.io import (
    append_line,
    atomic_write_text,
    cut_torn_tail,
    sha256_file,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
IMAGES = "images"
# What every line carries, whoever wrote it (generate, a merge, a submission import).
REQUIRED_FIELDS = ("key", "prompt_id", "seed", "subjects", "n_subjects", "scene", "prompt", "image", "sha256")
Record = dict[str, Any]
# A model folder whose images were made by the model's authors (a results submission) and scored here says so in
# provenance.json ({"source": "submitted", "label": SUBMITTED_LABEL, ...}), and every page that shows it says so too.
PROVENANCE = "provenance.json"
SUBMITTED_LABEL = "results submitted by the authors, scored here"


def job_key(prompt_id: int, seed: int) -> str:
    """The name of one job (`p07_s2`): its PNG is `images/<key>.png` and its manifest line carries it."""
    return f"p{int(prompt_id):02d}_s{int(seed)}"


def image_name(key: str) -> str:
    """The manifest's `image` field of a job: relative to the model folder."""
    return f"{IMAGES}/{key}.png"


def encode(record: Mapping[str, Any]) -> str:
    """One manifest line (sorted keys, UTF-8 kept), newline included."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass
class ReadResult:
    records: list[Record]
    dropped: list[int]  # line numbers that did not parse or lacked required fields
    torn_tail: bool  # the last line had no newline (a crash mid-append)


class Manifest:
    """The manifest of one model (or shard) folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST

    def exists(self) -> bool:
        return self.path.is_file()

    # ------------------------------------------------------------------ reading

    def read(self) -> ReadResult:
        """Every well-formed line. Malformed lines are dropped (their jobs will be redone), never fatal."""
        if not self.path.exists():
            return ReadResult([], [], False)
        data = self.path.read_bytes()
        torn = bool(data) and not data.endswith(b"\n")
        records: list[Record] = []
        dropped: list[int] = []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                dropped.append(number)
                continue
            if not isinstance(record, dict) or any(field not in record for field in REQUIRED_FIELDS):
                dropped.append(number)
                continue
            records.append(record)
        if dropped:
            log.warning("%s: dropped unreadable line(s) %s; their jobs count as not done", self.path, dropped)
        return ReadResult(records, dropped, torn)

    def records(self) -> list[Record]:
        return self.read().records

    def intact(self, record: Mapping[str, Any]) -> bool:
        """The record's image is inside the folder, present, and has the recorded sha256."""
        image = self.image_path(record)
        return image is not None and image.is_file() and sha256_file(image) == record["sha256"]

    def image_path(self, record: Mapping[str, Any]) -> Path | None:
        """Where the record's image is; None when its path would leave the folder."""
        path = (self.folder / str(record["image"])).resolve()
        return path if path.is_relative_to(self.folder.resolve()) else None

    def verified(self, stamps: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Record]:
        """Per job key, the last record whose image is intact and, when `stamps` is given, whose stamp
        fields (fingerprint, inputs hash) equal the current ones: what a resume may keep."""
        done: dict[str, Record] = {}
        for record in self.records():
            key = record["key"]
            if stamps is not None:
                wanted = stamps.get(key)
                if wanted is None or any(record.get(field) != value for field, value in wanted.items()):
                    continue
            if self.intact(record):
                done[key] = record
        return done

    def load_checked(self) -> list[Record]:
        """The records a consumer (score) may use, in job order; any image that is missing or whose
        bytes differ from its recorded sha256 stops everything with both hashes named."""
        if not self.exists():
            raise BenchError(f"{self.path}: no manifest; run `collapsebench generate` first")
        result = self.read()
        if result.dropped:
            raise BenchError(f"{self.path}: line(s) {result.dropped} are not valid manifest records; rerun "
                             "`collapsebench generate` to repair the manifest (finished images are kept)")
        latest = {record["key"]: record for record in result.records}
        for record in latest.values():
            image = self.image_path(record)
            if image is None:
                raise BenchError(f"{self.path}: image path {record['image']!r} leaves {self.folder}")
            if not image.is_file():
                raise BenchError(f"{image}: missing (manifest line of prompt {record['prompt_id']} seed "
                                 f"{record['seed']}); rerun `collapsebench generate` to make it again")
            actual = sha256_file(image)
            if actual != record["sha256"]:
                raise BenchError(f"{image}: sha256 {actual} differs from {record['sha256']} recorded in {self.path}; "
                                 "the image was replaced or damaged after it was made. Delete it and rerun "
                                 "`collapsebench generate` to make it again")
        return sorted(latest.values(), key=lambda r: (int(r["prompt_id"]), int(r["seed"])))

    # ------------------------------------------------------------------ writing

    def repair(self) -> bool:
        """Cut a torn tail (a last line with no newline) so the next append starts on a fresh line."""
        if not cut_torn_tail(self.path):
            return False
        log.warning("%s: removed a torn last line left by an interrupted run", self.path)
        return True

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one line and fsync it (repairing a torn tail first)."""
        if append_line(self.path, encode(record)):
            log.warning("%s: removed a torn last line left by an interrupted run", self.path)

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Replace the manifest atomically with `records`, one line per job key, in key order."""
        by_key = {record["key"]: record for record in records}
        atomic_write_text(self.path, "".join(encode(by_key[key]) for key in sorted(by_key)))


def remove_stale_temp_files(folder: Path) -> int:
    """Delete the temp files (`.<name>.*.tmp`) an interrupted atomic write left in `folder`.

    Called by the stage that writes into `folder`, while it holds the folder's lock, so no live
    writer can own them. Returns how many were removed.
    """
    removed = 0
    if folder.is_dir():
        for path in folder.glob(".*.tmp"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed
