"""`generate MODEL --gpus ...`: one shard per device at once, one progress bar, merge, resume, failed shards.

Without CUDA the listed "devices" are stand-ins: `--gpus 0,1,2` starts three real
CPU worker processes (each with CUDA_VISIBLE_DEVICES set to its id), which is
what runs on a multi-GPU host minus the GPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_docker_runner import docker_workdir, engine  # noqa: F401  (fixtures: a live engine, docker entries)

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import Manifest
from collapsebench.generation.fanout import parse_gpus
from collapsebench.generation.generate import job_stamps
from collapsebench.generation.scaleout import GenerateCall, ScaleOut, finished_keys


def add_calibration(root: Path, name: str, adapter: str, size: int) -> None:
    """A local-runner calibration entry of another image size (a larger floor is slow enough to interrupt)."""
    document = yaml.safe_load((root / "models" / adapter / "model.yaml").read_text())
    document.update(name=name, settings={"size": size})
    (root / "models" / name).mkdir()
    (root / "models" / name / "model.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def sha_by_key(folder: Path) -> dict[str, str]:
    return {record["key"]: record["sha256"] for record in Manifest(folder).records()}


def assert_complete(folder: Path, expected: int) -> dict[str, dict]:
    records = {record["key"]: record for record in Manifest(folder).load_checked()}
    assert len(records) == expected
    return records


def test_devices_are_named_as_cuda_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_gpus("0,1,3") == ["0", "1", "3"]
    assert parse_gpus("all", {"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert parse_gpus("GPU-8f3a,GPU-77c1") == ["GPU-8f3a", "GPU-77c1"]
    for bad in ("0,0", "", "0;1", "0,,1"):
        with pytest.raises(BenchError, match="distinct device ids"):
            parse_gpus(bad)
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    with pytest.raises(BenchError, match="no GPU found"):
        parse_gpus("all", {})


def test_each_shard_runs_the_plain_command_with_its_device(tmp_path: Path) -> None:
    docker = GenerateCall("mosaic", "docker", Path("params.yaml"), Path("results"), Path("models"),
                          model_cache=tmp_path / "hub", base_image="base:1")
    argv = docker.argv("2/8", gpu="2")
    assert argv[:3] == [sys.executable, "-m", "collapsebench.cli"]
    assert argv[argv.index("generate"):] == ["generate", "mosaic", "--shard", "2/8", "--runner", "docker", "--gpu", "2",
                                             "--model-cache", str(tmp_path / "hub"), "--base-image", "base:1"]
    assert all(Path(argv[argv.index(flag) + 1]).is_absolute() for flag in ("--params", "--results", "--models-dir"))
    local = GenerateCall("collage", "local", Path("params.yaml"), Path("results"), Path("models"), engine="podman")
    assert local.argv("0/2", gpu="0")[-4:] == ["--shard", "0/2", "--runner", "local"]  # the GPU goes in the env
    podman = GenerateCall("mosaic", "docker", Path("params.yaml"), Path("results"), Path("models"), engine="podman")
    assert podman.argv("1/4", gpu="1")[-4:] == ["--gpu", "1", "--engine", "podman"]  # --engine reaches each shard


def test_shards_are_exclusive_with_a_fan_out(workdir: Path) -> None:
    assert main(["generate", "collage", "--gpus", "0,1", "--shard", "0/2"]) == 2
    assert main(["generate", "collage", "--gpus", "0,1", "--launcher", "slurm"]) == 2


def plan_for(root: Path, model: str, count: int) -> ScaleOut:
    instance = cast_suite(root / "benchmark/prompts.yaml", load_pool(root / "data"))
    jobs = make_jobs(instance.prompts, [0])
    stamps = job_stamps(load_model_config(root / "models", model), jobs, instance.pool)
    return ScaleOut.plan(model, root / "results/models" / model, jobs, stamps, count)


@pytest.mark.slow
def test_three_devices_make_the_images_of_one_process_and_a_rerun_makes_nothing(
        workdir: Path, capfd: pytest.CaptureFixture) -> None:
    assert main(["generate", "collage", "--gpus", "0,1,2"]) == 0
    model = workdir / "results/models/collage"
    merged = assert_complete(model, 75)
    logs = sorted((workdir / ".cache/generate/collage").glob("shard-*.log"))
    assert [log.name for log in logs] == [f"shard-{i}-of-3.log" for i in range(3)]
    for index, log in enumerate(logs):
        assert f"shard {index}/3 on GPU {index}" in log.read_text()
    assert len({record["created_utc"] for record in merged.values()}) >= 1
    assert {record["runner"] for record in merged.values()} == {"local"}
    err = capfd.readouterr().err
    assert "generate collage" in err and "75/75" in err  # one bar over all shards

    # The same images as one plain process.
    assert main(["--results", "plain", "generate", "collage"]) == 0
    assert sha_by_key(workdir / "plain/models/collage") == {key: r["sha256"] for key, r in merged.items()}

    assert main(["generate", "collage", "--gpus", "0,1,2"]) == 0
    assert "all 75 images already made" in capfd.readouterr().out


@pytest.mark.slow
def test_a_model_folder_made_by_one_process_is_reused_by_any_fan_out(workdir: Path,
                                                                      capfd: pytest.CaptureFixture) -> None:
    assert main(["generate", "clone"]) == 0
    model = workdir / "results/models/clone"
    before = {key: record["created_utc"] for key, record in assert_complete(model, 75).items()}
    (model / Manifest(model).records()[0]["image"]).unlink()  # one image lost: only it is made again
    plan = plan_for(workdir, "clone", 2)
    assert [shard.spec for shard in plan.prepare()] == ["0/2"]
    assert plan.count_finished() == 74
    assert main(["generate", "clone", "--gpus", "3,4"]) == 0
    after = assert_complete(model, 75)
    assert sum(after[key]["created_utc"] != stamp for key, stamp in before.items()) <= 1
    assert not (workdir / ".cache/generate/clone/shard-1-of-2.log").exists()  # a complete shard is not started


def child_of(parent: int, *words: str) -> int:
    """The pid of `parent`'s child whose command line contains every word."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and all(word.encode() in argv for word in words):
            return int(entry.name)
    raise AssertionError(f"no child of {parent} runs {words}")


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_shard_is_reported_with_its_log_the_others_finish_and_a_rerun_resumes(workdir: Path) -> None:
    add_calibration(workdir, "floor-big", "floor", 768)
    shard0 = workdir / "results/models/floor-big/shards/0-of-2"
    run = subprocess.Popen([sys.executable, "-m", "collapsebench.cli", "generate", "floor-big", "--gpus", "0,1"],
                           cwd=workdir, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    plan = plan_for(workdir, "floor-big", 2)
    wait_for(lambda: plan.finished(plan.shards[0]) >= 2 or run.poll() is not None)
    os.kill(child_of(run.pid, "floor-big", "0/2"), signal.SIGKILL)  # a crashed worker (OOM killer, segfault)
    out, err = run.communicate(timeout=180)
    assert run.returncode == 1, err
    assert "shard 0/2 (GPU 0) failed: exit status -9" in err and "shard-0-of-2.log" in err
    assert "== " in err.split("Last lines of its log")[1]  # the log's tail is shown
    assert "nothing merged" in err and not (workdir / "results/models/floor-big/manifest.jsonl").exists()
    kept = {key: r["created_utc"] for key, r in assert_complete(shard0, plan.finished(plan.shards[0])).items()}
    assert 2 <= len(kept) < 38
    assert_complete(shard0.parent / "1-of-2", 37)  # the other shard finished

    assert main(["generate", "floor-big", "--gpus", "0,1"]) == 0
    merged = assert_complete(workdir / "results/models/floor-big", 75)
    assert all(merged[key]["created_utc"] == stamp for key, stamp in kept.items())  # nothing made twice


@pytest.mark.slow
def test_stopping_the_fan_out_stops_every_shard_and_keeps_their_images(workdir: Path) -> None:
    add_calibration(workdir, "floor-big", "floor", 768)
    run = subprocess.Popen([sys.executable, "-m", "collapsebench.cli", "generate", "floor-big", "--gpus", "0,1"],
                           cwd=workdir, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    plan = plan_for(workdir, "floor-big", 2)
    # Every shard has made an image (on a loaded machine one shard can start well after the other).
    wait_for(lambda: all(plan.finished(shard) >= 1 for shard in plan.shards) or run.poll() is not None)
    workers = [child_of(run.pid, "floor-big", f"{i}/2") for i in range(2)]
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode != 0 and "interrupted, stopping 2 shards" in err
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    made = plan.count_finished()
    assert 2 <= made < 75
    for shard in plan.shards:
        assert_complete(shard.folder, len(finished_keys(shard.folder, plan.stamps)))


@pytest.mark.slow
def test_with_the_docker_runner_each_device_gets_its_own_container(docker_workdir: Path, engine) -> None:  # noqa: F811 - fixtures
    from test_docker_runner import ON_BASE

    assert main(["generate", "collage-docker", "--gpus", "0,1", *ON_BASE]) == 0
    merged = assert_complete(docker_workdir / "results/models/collage-docker", 75)
    assert {record["runner"] for record in merged.values()} == {"docker"}
    assert len({record["container_digest"] for record in merged.values()}) == 1  # built once, before the shards
    for index in range(2):
        log = (docker_workdir / f".cache/generate/collage-docker/shard-{index}-of-2.log").read_text()
        assert f"--shard {index}/2 --runner docker --gpu {index}" in log
    assert engine.containers.list(all=True, filters={"name": "collapsebench-collage-docker"}) == []
