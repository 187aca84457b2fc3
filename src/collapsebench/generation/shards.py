"""Sharded runs: where a shard writes, and the deterministic merge of shards into the model folder.

`generate --shard i/n` and `score --shard i/n` work in
`results/models/<model>/shards/<i>-of-<n>/`, a complete model folder of its
own (manifest, images, lock, scores), so shards can run at the same time on
one host or on separate machines (a CI matrix) without touching each other.
`collapsebench merge <model>` then folds every shard folder into the model
folder: images are copied (atomically), manifest lines are unioned by job key
and written sorted, and shard score tables are concatenated in job order when
they cover exactly the merged images. The result does not depend on the order
the shards finished in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapsebench.benchmark.suite import parse_shard
from collapsebench.core.errors import BenchError
from collapsebench.core.io import (
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    read_csv,
    sha256_file,
)
from collapsebench.core.manifest import Manifest
from collapsebench.core.untrusted import check_tree

SHARDS = "shards"
ADDITIVE_SCORING_KEYS = ("n_images", "n_rows", "clip_t_truncated_prompts")
SAME_SCORING_KEYS = ("profile", "backbones", "resolved_revisions")


@dataclass
class MergeReport:
    shards: int
    images: int
    copied: int
    scores: bool  # whether scores.csv was merged too


def shard_dir(model_dir: Path, shard: str | None) -> Path:
    """The folder a run writes to: the model folder, or its shard folder for `--shard i/n`."""
    if not shard:
        return model_dir
    index, count = parse_shard(shard)
    return model_dir / SHARDS / f"{index}-of-{count}"


def merge_shards(model_dir: Path) -> MergeReport:
    """Fold every shard folder of `model_dir` into it (see the module docstring); idempotent.

    Shard folders were written by model containers: the whole model folder is checked to hold only folders and
    regular files (core/untrusted.py) before any image is read or copied, so a planted link merges nothing."""
    shard_dirs = sorted(p for p in (model_dir / SHARDS).glob("*-of-*") if p.is_dir()) if (model_dir / SHARDS).is_dir() else []
    if not shard_dirs:
        raise BenchError(f"{model_dir / SHARDS}: no shard folders to merge (run `generate --shard i/n` first)")
    check_tree(model_dir)
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    for folder in [model_dir, *shard_dirs]:
        for record in _verified_records(folder):
            key = record["key"]
            if key in merged and merged[key]["sha256"] != record["sha256"]:
                raise BenchError(
                    f"prompt {record['prompt_id']} seed {record['seed']} was made twice with different images "
                    f"({origin[key] / record['image']} and {folder / record['image']}); delete the stale one and merge again"
                )
            if key not in merged:
                merged[key], origin[key] = record, folder
    copied = 0
    for key, record in merged.items():
        target = model_dir / record["image"]
        if origin[key] != model_dir and not (target.is_file() and sha256_file(target) == record["sha256"]):
            atomic_write_bytes(target, (origin[key] / record["image"]).read_bytes())
            copied += 1
    Manifest(model_dir).write(merged.values())
    scores = _merge_scores(model_dir, shard_dirs, {(r["prompt_id"], r["seed"]) for r in merged.values()})
    return MergeReport(shards=len(shard_dirs), images=len(merged), copied=copied, scores=scores)


def _verified_records(folder: Path) -> list[dict[str, Any]]:
    """A folder's manifest records whose image is on disk with the recorded sha256 (others are redone later)."""
    return list(Manifest(folder).verified().values())


def _merge_scores(model_dir: Path, shard_dirs: list[Path], jobs: set[tuple[int, int]]) -> bool:
    """Concatenate shard scores.csv when every shard was scored with one setup and together they cover `jobs`."""
    if not all((d / "scores.csv").is_file() and (d / "scoring.json").is_file() for d in shard_dirs):
        return False
    rows = [row for d in shard_dirs for row in read_csv(d / "scores.csv")]
    if {(int(r["prompt_id"]), int(r["seed"])) for r in rows} != jobs:
        return False  # some images were made after scoring: score the merged folder instead
    rows.sort(key=lambda r: (int(r["prompt_id"]), int(r["seed"]), int(r["slot"])))
    scoring = _merge_scoring([json.loads((d / "scoring.json").read_text(encoding="utf-8")) for d in shard_dirs], shard_dirs)
    fieldnames = list(read_csv_header(shard_dirs[0] / "scores.csv"))
    atomic_write_csv(model_dir / "scores.csv", fieldnames, rows)
    atomic_write_json(model_dir / "scoring.json", scoring)
    return True


def _merge_scoring(documents: list[dict[str, Any]], shard_dirs: list[Path]) -> dict[str, Any]:
    """Shared fields once, counts summed, every shard's own record kept under `shards`.

    Shards scored with different backbones or revisions cannot be pooled: that is an error.
    """
    first = documents[0]
    for document, folder in zip(documents[1:], shard_dirs[1:]):
        for key in SAME_SCORING_KEYS:
            if document.get(key) != first.get(key):
                raise BenchError(f"{folder / 'scoring.json'}: '{key}' differs from {shard_dirs[0] / 'scoring.json'}; "
                                 "shards must be scored with the same backbones")
    merged = {key: value for key, value in first.items() if all(d.get(key) == value for d in documents)}
    merged.update({key: sum(d.get(key, 0) for d in documents) for key in ADDITIVE_SCORING_KEYS if key in first})
    merged["shards"] = {folder.name: document for folder, document in zip(shard_dirs, documents)}
    return merged


def read_csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.readline().rstrip("\n").split(",")
