"""`--shard i/n` for generate and score, and `collapsebench merge`: a partition in a fixed order, merged deterministically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs, select_shard
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_text, read_csv, sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.generation.shards import merge_shards, shard_dir


def test_shards_partition_the_jobs_in_a_fixed_order(pool_dir: Path) -> None:
    jobs = make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", load_pool(pool_dir)).prompts, [0, 1, 2])
    assert [(j.prompt.id, j.seed) for j in jobs] == [(p, s) for p in range(1, 76) for s in (0, 1, 2)]
    for count in (1, 4, 7):
        parts = [select_shard(jobs, f"{i}/{count}") for i in range(count)]
        assert sorted(j.key for part in parts for j in part) == sorted(j.key for j in jobs)
        assert sum(len(part) for part in parts) == len(jobs) == 225
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert all(part == sorted(part, key=jobs.index) for part in parts)
    for bad in ("3/3", "1/0", "-1/2", "a/b", "1-2"):
        with pytest.raises(BenchError, match="i/n"):
            select_shard(jobs, bad)
    assert shard_dir(Path("m"), None) == Path("m") and shard_dir(Path("m"), "2/5") == Path("m/shards/2-of-5")


def generate_shards(count: int) -> Path:
    for index in range(count):
        assert main(["generate", "collage", "--shard", f"{index}/{count}"]) == 0
    return Path("results/models/collage")


def key_to_sha(folder: Path) -> dict[str, str]:
    return {r["key"]: r["sha256"] for r in Manifest(folder).records()}


def test_merged_shards_equal_an_unsharded_run_and_merging_is_idempotent(workdir: Path) -> None:
    model = generate_shards(3)
    assert not (model / "manifest.jsonl").exists()  # shards never write the model folder
    assert sum(len(key_to_sha(model / "shards" / f"{i}-of-3")) for i in range(3)) == 75

    assert main(["merge", "collage"]) == 0
    merged = (model / "manifest.jsonl").read_bytes()
    assert main(["merge", "collage"]) == 0
    assert (model / "manifest.jsonl").read_bytes() == merged
    keys = [json.loads(line)["key"] for line in merged.decode().splitlines()]
    assert keys == sorted(keys) and len(keys) == 75
    for key, sha in key_to_sha(model).items():
        assert sha256_file(model / "images" / f"{key}.png") == sha

    assert main(["--results", "unsharded", "generate", "collage"]) == 0
    assert key_to_sha(Path("unsharded/models/collage")) == key_to_sha(model)


def test_merge_refuses_two_different_images_for_one_job(workdir: Path) -> None:
    model = generate_shards(2)
    twin = model / "shards" / "0-of-1"
    shutil.copytree(model / "shards" / "0-of-2", twin)
    records = Manifest(twin).records()
    (twin / records[0]["image"]).write_bytes(b"not the same image")
    records[0]["sha256"] = sha256_file(twin / records[0]["image"])
    atomic_write_text(twin / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(BenchError, match=f"prompt {records[0]['prompt_id']} seed 0 was made twice"):
        merge_shards(model)
    with pytest.raises(BenchError, match="no shard folders"):
        merge_shards(Path("results/models/clone"))


@pytest.mark.slow
def test_sharded_scores_merge_to_the_scores_of_the_merged_folder(workdir: Path) -> None:
    model = generate_shards(2)
    for index in range(2):
        assert main(["score", "collage", "--shard", f"{index}/2"]) == 0
    assert main(["merge", "collage"]) == 0
    merged_rows = read_csv(model / "scores.csv")
    merged_scoring = json.loads((model / "scoring.json").read_text())
    assert merged_scoring["n_images"] == 75 and sorted(merged_scoring["shards"]) == ["0-of-2", "1-of-2"]

    shutil.copytree(model, Path("whole/models/collage"), ignore=shutil.ignore_patterns("shards", "scores.csv"))
    assert main(["--results", "whole", "score", "collage"]) == 0
    whole_rows = read_csv(Path("whole/models/collage/scores.csv"))
    assert len(merged_rows) == len(whole_rows) == sum(p for p in (2, 4, 6, 8, 10) for _ in range(15))
    for merged, whole in zip(merged_rows, whole_rows):
        assert {k: merged[k] for k in ("prompt_id", "seed", "slot", "subject_id")} == \
               {k: whole[k] for k in ("prompt_id", "seed", "slot", "subject_id")}
        for column in ("dinov2", "dino", "clip_i", "clip_t"):
            assert float(merged[column]) == pytest.approx(float(whole[column]), abs=2e-6)
