"""Generation is resumable and crash-safe: nothing finished is lost, nothing truncated is kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_bytes, sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.generation import generate as generate_module
from collapsebench.models.collage import CollageAdapter


@pytest.fixture
def setup(pool_dir: Path, tmp_path: Path):
    pool = load_pool(pool_dir)
    jobs = make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [0])[:12]
    config = load_model_config(REPO / "models", "collage")
    return config, jobs, pool, tmp_path / "out"


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing catches it."""


def crash_after(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    original, calls = CollageAdapter.generate, {"n": 0}

    def generate(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > count:
            raise Crash()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CollageAdapter, "generate", generate)


def test_rerun_after_a_crash_makes_only_what_is_missing(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    config, jobs, pool, out = setup
    crash_after(monkeypatch, 5)
    with pytest.raises(Crash):
        generate_module.run_generate(config, jobs, pool, out)
    records = Manifest(out).records()
    assert len(records) == 5
    first_bytes = {r["key"]: (out / r["image"]).read_bytes() for r in records}
    monkeypatch.undo()

    report = generate_module.run_generate(config, jobs, pool, out)
    assert (report.made, report.skipped, report.failed) == (7, 5, [])
    records = Manifest(out).records()
    assert sorted(r["key"] for r in records) == sorted(j.key for j in jobs)
    for record in records:
        assert sha256_file(out / record["image"]) == record["sha256"]
        if record["key"] in first_bytes:  # untouched by the rerun
            assert (out / record["image"]).read_bytes() == first_bytes[record["key"]]
    assert not list(out.rglob("*.tmp"))

    again = generate_module.run_generate(config, jobs, pool, out)
    assert (again.made, again.skipped) == (0, 12)


def test_a_torn_manifest_line_and_a_corrupt_png_are_redone(setup) -> None:
    config, jobs, pool, out = setup
    generate_module.run_generate(config, jobs, pool, out)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # crash mid-append
    victim = json.loads(lines[0])
    (out / victim["image"]).write_bytes(b"\x89PNG truncated")  # e.g. a disk problem

    report = generate_module.run_generate(config, jobs, pool, out)
    assert report.made == 2 and report.skipped == 10
    Image.open(out / victim["image"]).verify()
    assert len(Manifest(out).records()) == 12


def test_changed_settings_make_old_images_stale(setup, tmp_path: Path) -> None:
    config, jobs, pool, out = setup
    generate_module.run_generate(config, jobs[:3], pool, out)
    bigger = config.__class__(**{**config.__dict__, "settings": {"size": 256}})
    report = generate_module.run_generate(bigger, jobs[:3], pool, out)
    assert report.made == 3
    assert {r["width"] for r in Manifest(out).records()} == {256}


def test_a_failing_job_is_reported_with_prompt_and_seed_and_the_others_go_on(setup, monkeypatch) -> None:
    config, jobs, pool, out = setup
    original = CollageAdapter.generate

    def generate(self, prompt, subjects, references, seed):
        if prompt == jobs[2].prompt.natural(pool):
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, prompt, subjects, references, seed)

    monkeypatch.setattr(CollageAdapter, "generate", generate)
    report = generate_module.run_generate(config, jobs, pool, out)
    assert report.made == 11
    assert report.failed == [f"prompt {jobs[2].prompt.id} seed 0: RuntimeError: CUDA out of memory (simulated)"]


def test_a_second_run_of_the_same_model_is_locked_out(setup) -> None:
    config, jobs, pool, out = setup
    with generate_module.model_lock(out):
        with pytest.raises(BenchError, match="another run of this model holds the lock"):
            generate_module.run_generate(config, jobs, pool, out)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "table.csv"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temp file left behind


def test_manifest_records_what_the_design_requires(setup) -> None:
    config, jobs, pool, out = setup
    generate_module.run_generate(config, jobs[:1], pool, out)
    record = Manifest(out).records()[0]
    for key in ("prompt_id", "seed", "subjects", "prompt", "sent_prompt", "image", "sha256", "width", "height",
                "params", "model", "model_revision", "container_digest", "runner", "device", "wall_s", "packages"):
        assert key in record, key
    assert record["packages"]["torch"]


def test_a_replaced_reference_or_changed_template_makes_only_those_jobs_stale(setup, pool_dir: Path) -> None:
    config, jobs, pool, out = setup
    generate_module.run_generate(config, jobs, pool, out)
    victim = jobs[0].prompt.subjects[0]
    Image.new("RGB", (96, 96), (1, 2, 3)).save(pool_dir / "subjects" / f"{victim}.png")  # a new reference image
    pool = load_pool(pool_dir)
    using_victim = {job.key for job in jobs if victim in job.prompt.subjects}
    report = generate_module.run_generate(config, jobs, pool, out)
    assert report.made == len(using_victim) and report.skipped == len(jobs) - len(using_victim)

    changed = [jobs[1].__class__(jobs[1].prompt.__class__(**{**jobs[1].prompt.__dict__,
                                                          "template": jobs[1].prompt.template + " at night"}),
                                 jobs[1].seed)] + jobs[2:]
    report = generate_module.run_generate(config, [jobs[0]] + changed, pool, out)
    assert (report.made, report.skipped) == (1, len(jobs) - 1)
    record = next(r for r in Manifest(out).records() if r["key"] == jobs[1].key)
    assert record["prompt"].endswith(" at night")


KILL_AFTER_ONE_APPEND = """
import os, signal, sys
from pathlib import Path
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate

repo, pool_dir, out = map(Path, sys.argv[1:4])
original = Manifest.append

def append_then_die(self, record):
    original(self, record)
    os.kill(os.getpid(), signal.SIGKILL)  # the real thing: no cleanup, no finally

Manifest.append = append_then_die
pool = load_pool(pool_dir)
jobs = make_jobs(cast_suite(repo / "benchmark/prompts.yaml", pool).prompts, [0])[:12]
run_generate(load_model_config(repo / "models", "collage"), jobs, pool, out)
"""


def test_torn_tail_then_sigkill_after_one_append_never_wedges_the_manifest(setup, pool_dir: Path,
                                                                            tmp_path: Path) -> None:
    """The issue's recipe: tear the last line, delete images, kill -9 a rerun after one append, rerun."""
    import subprocess
    import sys

    config, jobs, pool, out = setup
    generate_module.run_generate(config, jobs, pool, out)
    manifest = out / "manifest.jsonl"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) - 40])  # torn tail: the last line lost its end and its newline
    for key in (jobs[0].key, jobs[3].key, jobs[7].key):
        (out / "images" / f"{key}.png").unlink()

    script = tmp_path / "kill_after_one_append.py"
    script.write_text(KILL_AFTER_ONE_APPEND)
    killed = subprocess.run([sys.executable, str(script), str(REPO), str(pool_dir), str(out)], capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    lines = manifest.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the append must start on a fresh line and end with one"
    for line in lines[:-1]:
        json.loads(line)  # no two records glued together

    report = generate_module.run_generate(config, jobs, pool, out)
    assert report.failed == [] and report.made == 3  # the two still missing + the torn one
    checked = Manifest(out).load_checked()  # what score reads: every image present with its sha256
    assert [r["key"] for r in checked] == [job.key for job in jobs]


def test_temp_files_of_a_killed_run_are_removed_by_the_next_run(setup) -> None:
    config, jobs, pool, out = setup
    generate_module.run_generate(config, jobs[:2], pool, out)
    leftovers = [out / "images" / f".{jobs[5].key}.png.k3j4.tmp", out / ".manifest.jsonl.x9a.tmp"]
    for path in leftovers:
        path.write_bytes(b"half an image")
    generate_module.run_generate(config, jobs[:2], pool, out)
    assert not any(path.exists() for path in leftovers)
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{job.key}.png" for job in jobs[:2]]
