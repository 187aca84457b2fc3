"""The benchmark definition is validated on load, and a broken file names the prompt and the problem."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs, select_shard
from collapsebench.core.errors import BenchError

PROMPTS = REPO / "benchmark" / "prompts.yaml"


def test_shipped_benchmark_is_the_papers_grid(pool_dir: Path) -> None:
    prompts = cast_suite(PROMPTS, load_pool(pool_dir)).prompts
    assert len(prompts) == 75
    assert Counter((p.n_subjects, p.scene) for p in prompts) == {
        (n, s): 5 for n in (2, 4, 6, 8, 10) for s in ("neutral", "occlusion", "interaction")}
    assert len(make_jobs(prompts, [0, 1, 2])) == 225


def _broken(tmp_path: Path, edit) -> Path:
    document = yaml.safe_load(PROMPTS.read_text())
    edit(document["prompts"])
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda ps: ps[3].update(subjects=["S001", "S002"]), "prompt 4: version 2 prompts name no subjects"),
    (lambda ps: ps[3].update(kinds={1: "robot"}), "prompt 4: kinds must map slots 1..2 to one of"),
    (lambda ps: ps[3].update(kinds={3: "person"}), "prompt 4: kinds must map slots 1..2 to one of"),
    (lambda ps: ps[0].update(template="{1} alone on a beach"), "prompt 1: every slot {1}..{2} must appear exactly once"),
    (lambda ps: ps[0].update(template="{1} and {2} and {2}"), "repeated [2]"),
    (lambda ps: ps[0].update(template="{1} and {2} and {3}"), "unknown [3]"),
    (lambda ps: ps[20].update(scene="party"), "prompt 21: scene must be one of"),
    (lambda ps: ps[5].update(n_subjects=3), "prompt 6: n_subjects must be one of"),
    (lambda ps: ps.pop(), "expected 5 prompts with n_subjects=10, scene=interaction; found 4"),
    (lambda ps: ps[1].update(scene="occlusion"), "expected 5 prompts with n_subjects=2, scene=neutral; found 4"),
    (lambda ps: ps[2].update(id=1), "duplicate prompt ids [1]"),
])
def test_broken_benchmark_is_rejected_with_a_precise_message(tmp_path: Path, pool_dir: Path, edit, message: str) -> None:
    path = _broken(tmp_path, edit)
    with pytest.raises(BenchError) as error:
        cast_suite(path, load_pool(pool_dir)).prompts
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_render_replaces_each_slot_with_its_subjects_phrase(pool_dir: Path) -> None:
    pool = load_pool(pool_dir)
    prompt = cast_suite(PROMPTS, pool).prompts[0]
    text = prompt.natural(pool)
    assert "{" not in text
    for subject in prompt.subjects:
        assert pool[subject].phrase in text


def test_shards_partition_the_jobs_deterministically(pool_dir: Path) -> None:
    jobs = make_jobs(cast_suite(PROMPTS, load_pool(pool_dir)).prompts, [0, 1, 2])
    shards = [select_shard(jobs, f"{i}/4") for i in range(4)]
    keys = [job.key for shard in shards for job in shard]
    assert sorted(keys) == sorted(job.key for job in jobs) and len(set(keys)) == len(jobs)
    assert [j.key for j in select_shard(jobs, "1/4")] == [j.key for j in shards[1]]
    with pytest.raises(BenchError, match="--shard"):
        select_shard(jobs, "4/4")


def test_pool_rejects_a_missing_reference(pool_dir: Path) -> None:
    (pool_dir / "subjects" / "S003.png").unlink()
    with pytest.raises(BenchError, match="subject S003: reference image not found"):
        load_pool(pool_dir)
