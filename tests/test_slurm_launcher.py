"""`generate MODEL --launcher slurm`: settings, then a real Slurm cluster (one job array, cancel, requeue).

The cluster tests need a Slurm cluster that answers `sinfo`; scripts/ci_slurm.sh
(called by scripts/ci_system.sh, which .ci/run calls) starts a one-node CPU
cluster from Debian's slurm-wlm and munge. These tests never install or start
anything: without a cluster they skip and say why.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_fanout import add_calibration, assert_complete, plan_for, sha_by_key, wait_for

from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.generation.scaleout import ScaleOut
from collapsebench.generation.slurm import SlurmSettings, minutes

# ---------------------------------------------------------------- without a cluster


def test_settings_come_from_params_and_flags_win() -> None:
    block = yaml.safe_load((REPO / "params.yaml").read_text())["generate"]["slurm"]
    settings = SlurmSettings.from_params(block, shards=3, partition="gpu", gpus_per_task=None, time="1-02:30:00")
    assert (settings.shards, settings.partition, settings.gpus_per_task, settings.time_min) == (3, "gpu", 1, 1590)
    parameters = settings.executor_parameters("collapsebench-mosaic", tasks=3)
    assert parameters["additional_parameters"]["requeue"] is True and parameters["stderr_to_stdout"]
    assert parameters["gpus_per_task"] == 1 and parameters["mem"] == 64 and parameters["array_parallelism"] == 3
    assert "account" not in parameters  # unset settings leave the cluster's defaults
    assert "gpus_per_task" not in SlurmSettings.from_params(block, gpus_per_task=0).executor_parameters("x", 1)
    assert [minutes(v) for v in (90, "90", "01:30", "00:10:01")] == [90, 90, 90, 11]
    with pytest.raises(BenchError, match="minutes or"):
        minutes("soon")
    with pytest.raises(BenchError, match="unknown settings \\['gpu'\\]"):
        SlurmSettings.from_params({"gpu": 1})


def test_the_cluster_script_is_valid_bash_and_ci_system_calls_it() -> None:
    assert subprocess.run(["bash", "-n", str(REPO / "scripts/ci_slurm.sh")], check=False).returncode == 0
    assert "scripts/ci_slurm.sh" in (REPO / "scripts/ci_system.sh").read_text()


# ---------------------------------------------------------------- a real cluster

@functools.cache
def cluster_problem() -> str | None:
    """Asked once per session: without a configuration sinfo retries for a minute before it gives up."""
    if shutil.which("sinfo") is None:
        return "sinfo is not installed"
    try:
        result = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, check=False,
                                timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    if result.returncode != 0:
        return f"sinfo does not answer ({result.stderr.strip()})"
    if not any(state.strip("*~#") in ("idle", "mix", "alloc") for state in result.stdout.split()):
        return f"no node is up (sinfo: {result.stdout.split()})"
    return None


@pytest.fixture
def cluster(workdir: Path) -> Path:
    """The work folder, with Slurm settings a one-node CPU cluster can meet."""
    problem = cluster_problem()
    if problem:
        print(f"\nSKIP Slurm tests: {problem}; scripts/ci_slurm.sh starts a one-node cluster", file=sys.stderr)
        pytest.skip(f"no Slurm cluster here: {problem}")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["generate"]["slurm"].update(cpus_per_task=1, mem_gb=None, gpus_per_task=0, time=10)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    add_calibration(workdir, "floor-big", "floor", 768)  # slow enough to interrupt
    return workdir


def launch(root: Path, model: str, shards: int) -> tuple[subprocess.Popen, str]:
    """Start the launcher in a child process; return it and the id of the array it submitted."""
    run = subprocess.Popen([sys.executable, "-m", "collapsebench.cli", "generate", model, "--launcher", "slurm",
                            "--shards", str(shards)], cwd=root, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = run.stdout.readline()
    assert "submitted Slurm array" in line, line + run.stderr.read()
    return run, line.split("submitted Slurm array ")[1].split()[0]


def made_so_far(plan: ScaleOut, index: int) -> dict[str, str]:
    """Key -> creation time of the images shard `index` has made (all intact)."""
    shard = plan.shards[index]
    return {key: r["created_utc"] for key, r in assert_complete(shard.folder, plan.finished(shard)).items()}


@pytest.mark.slow
def test_a_four_task_array_makes_the_images_of_a_local_run(cluster: Path, capfd: pytest.CaptureFixture) -> None:
    assert main(["generate", "collage", "--launcher", "slurm", "--shards", "4"]) == 0
    out = capfd.readouterr().out
    assert "4 tasks: shards 0/4, 1/4, 2/4, 3/4" in out
    merged = assert_complete(cluster / "results/models/collage", 75)
    script = next((cluster / ".cache/generate/collage/slurm").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%4" in script and "#SBATCH --requeue" in script
    assert main(["--results", "plain", "generate", "collage"]) == 0
    assert sha_by_key(cluster / "plain/models/collage") == {key: r["sha256"] for key, r in merged.items()}
    assert main(["generate", "collage", "--launcher", "slurm", "--shards", "4"]) == 0
    assert "all 75 images already made" in capfd.readouterr().out  # nothing submitted


@pytest.mark.slow
def test_a_cancelled_task_is_reported_and_the_rerun_loses_nothing(cluster: Path, capfd: pytest.CaptureFixture) -> None:
    plan = plan_for(cluster, "floor-big", 2)
    run, array = launch(cluster, "floor-big", 2)
    wait_for(lambda: plan.finished(plan.shards[0]) >= 2 or run.poll() is not None)
    subprocess.run(["scancel", f"{array}_0"], check=True)
    _, err = run.communicate(timeout=180)
    assert run.returncode == 1, err
    assert f"shard 0/2 (Slurm task {array}_0) failed: ended without a result (Slurm state CANCELLED)" in err
    assert "Last lines of its log" in err and f"== Slurm task {array}_0" in err
    kept = made_so_far(plan, 0)
    assert 2 <= len(kept) < 38
    assert_complete(plan.shards[1].folder, 37)

    assert main(["generate", "floor-big", "--launcher", "slurm", "--shards", "2"]) == 0
    assert "1 tasks: shards 0/2" in capfd.readouterr().out  # the finished shard is not submitted again
    merged = assert_complete(cluster / "results/models/floor-big", 75)
    assert all(merged[key]["created_utc"] == stamp for key, stamp in kept.items())


@pytest.mark.slow
def test_a_requeued_task_resumes_where_it_stopped(cluster: Path) -> None:
    plan = plan_for(cluster, "floor-big", 2)
    run, array = launch(cluster, "floor-big", 2)
    wait_for(lambda: plan.finished(plan.shards[0]) >= 2 or run.poll() is not None)
    kept = made_so_far(plan, 0)
    started = time.monotonic()
    subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True)  # as Slurm does on preemption
    _, err = run.communicate(timeout=240)
    assert run.returncode == 0, err
    merged = assert_complete(cluster / "results/models/floor-big", 75)
    assert all(merged[key]["created_utc"] == stamp for key, stamp in kept.items())
    log = next((cluster / ".cache/generate/floor-big/slurm").glob(f"{array}_0/*_log.out")).read_text()
    assert "(restart 0)" in log and "(restart 1)" in log and "stopped by SIGTERM" in log
    print(f"requeued task finished {time.monotonic() - started:.0f} s after the requeue")
