"""The docker runner: its plan (mounts, tags, checks) without an engine, then real containers.

The real-container tests build the CPU test image (docker/cpu/Dockerfile) on
the Debian base that scripts/make_base_image.sh makes with debootstrap (no
image registry needed), run calibration models through the runner and check
outputs, manifest, isolation and crash behaviour. scripts/ci_docker.sh
installs and starts the engine where it can; they skip, printing why, only
where no engine can run at all.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from collapsebench.benchmark.model_config import load_model_config
from collapsebench.cli import load_params, main
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.generation.runners import docker as runner

BASE_IMAGE = "collapsebench-base:bookworm"


def add_model(root: Path, name: str, adapter: str, **extra) -> None:
    """A calibration entry that runs in the CPU test image."""
    document = {"schema_version": 1, "name": name, "display_name": name, "kind": "calibration",
                "authors": ["tests"], "license": "CC0-1.0", "adapter": adapter, "runner": "docker",
                "settings": {"size": 256}, "gpu_memory_gb": 0, "docker": {"dockerfile": "docker/cpu/Dockerfile"}}
    document.update(extra)
    (root / "models" / name).mkdir(parents=True, exist_ok=True)
    (root / "models" / name / "model.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def plan(root: Path, name: str, shard: str | None = None, hub_cache: Path | None = None) -> runner.DockerRun:
    params = load_params(root / "params.yaml")
    return runner.DockerRun(config=load_model_config(root / "models", name), repo_root=REPO,
                            params_path=root / "params.yaml", params=params, models_dir=root / "models",
                            results_dir=root / "results", shard=shard, hub_cache=hub_cache)


# ---------------------------------------------------------------- without an engine

def test_only_the_output_folder_is_writable(workdir: Path) -> None:
    add_model(workdir, "collage-docker", "collage")
    run = plan(workdir, "collage-docker", shard="1/4")
    run.host_out.mkdir(parents=True)
    mounts = {m.target: m for m in runner.plan_mounts(run)}
    assert [t for t, m in mounts.items() if not m.read_only] == ["/work/results/models/collage-docker/shards/1-of-4"]
    assert mounts["/work/params.yaml"].source == (workdir / "params.yaml").resolve()
    assert mounts["/work/data"].source == (workdir / "data").resolve()
    assert mounts["/work/benchmark/prompts.yaml"].read_only
    assert run.container_name == "collapsebench-collage-docker-shard-1-of-4"
    command = runner.generate_command(run)
    assert command[-4:] == ["--runner", "local", "--shard", "1/4"] and "generate" in command


def test_image_tag_follows_the_build_context(tmp_path: Path, workdir: Path) -> None:
    root = tmp_path / "checkout"
    (root / "docker" / "cpu").mkdir(parents=True)
    (root / "src" / "collapsebench").mkdir(parents=True)
    (root / "docker" / "cpu" / "Dockerfile").write_text("FROM scratch\n")
    (root / "src" / "collapsebench" / "a.py").write_text("x = 1\n")
    (root / "results").mkdir()
    (root / ".dockerignore").write_text("*\n!docker\n!src/collapsebench\n")
    add_model(workdir, "collage-docker", "collage")
    run = plan(workdir, "collage-docker")
    run.repo_root = root
    tag = runner.image_tag(run)
    assert tag.startswith("collapsebench/cpu:") and runner.image_tag(run) == tag
    (root / "results" / "ignored.png").write_bytes(b"outside the context")
    assert runner.image_tag(run) == tag
    (root / "src" / "collapsebench" / "a.py").write_text("x = 2\n")
    assert runner.image_tag(run) != tag
    run.base_image = "somewhere/else:1"
    assert runner.build_args(run) == {"BASE_IMAGE": "somewhere/else:1"}


def test_missing_weights_are_named_with_the_command_that_fetches_them(workdir: Path, tmp_path: Path) -> None:
    run = plan(workdir, "mosaic", hub_cache=tmp_path / "no-cache")
    with pytest.raises(BenchError, match="model cache .* does not exist"):
        runner.check_weights(run)
    cache = tmp_path / "hub"
    (cache / "models--black-forest-labs--FLUX.1-dev" / "snapshots" / ("a" * 40)).mkdir(parents=True)
    run.hub_cache = cache
    with pytest.raises(BenchError, match="huggingface-cli download ByteDance-FanQie/MOSAIC") as error:
        runner.check_weights(run)
    assert "FLUX.1-dev" not in str(error.value).split("missing")[1].split(".")[0]
    run = plan(workdir, "flux2-klein-4b", hub_cache=cache)
    with pytest.raises(BenchError, match="--revision e7b7dc27f91deacad38e78976d1f2b499d76a294"):
        runner.check_weights(run)
    runner.check_weights(plan(workdir, "collage", hub_cache=None))  # calibration: nothing to check


def test_no_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(BenchError, match="cannot reach a Docker engine"):
        runner.connect()


# ---------------------------------------------------------------- real containers

def engine_problem() -> str | None:
    try:
        runner.connect().close()
    except BenchError as error:
        return str(error)
    return None


@pytest.fixture(scope="session")
def engine():
    """A live engine with the Debian base image and the CPU image's wheels; scripts/ci_docker.sh makes them."""
    ready = (REPO / "docker/cpu/wheels/.complete").is_file()
    if engine_problem() or not ready or subprocess.run(["docker", "image", "inspect", BASE_IMAGE],
                                                       capture_output=True).returncode:
        subprocess.run(["bash", str(REPO / "scripts/ci_docker.sh")], check=False)
    problem = engine_problem()
    if problem:
        print(f"\nSKIP container tests: {problem}", file=sys.stderr)
        pytest.skip(f"no Docker engine can run here: {problem}")
    client = runner.connect()
    yield client
    client.close()


@pytest.fixture
def docker_workdir(workdir: Path, engine) -> Path:
    add_model(workdir, "collage-docker", "collage")
    add_model(workdir, "floor-docker", "floor", settings={"size": 1536})  # noisy PNGs: slow enough to interrupt
    return workdir


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "collapsebench.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def manifest_lines(folder: Path) -> int:
    path = folder / "manifest.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def assert_complete(folder: Path, expected: int) -> list[dict]:
    records = Manifest(folder).records()
    assert len(records) == len({r["key"] for r in records}) == expected
    for record in records:
        assert sha256_file(folder / record["image"]) == record["sha256"]
    return records


@pytest.mark.slow
def test_a_calibration_model_runs_in_its_container(docker_workdir: Path, engine) -> None:
    assert main(["generate", "collage-docker", "--shard", "0/15"]) == 0
    out = docker_workdir / "results/models/collage-docker/shards/0-of-15"
    records = assert_complete(out, 5)
    image_id = engine.images.get(runner.image_tag(plan(docker_workdir, "collage-docker"))).id
    for record in records:
        assert record["runner"] == "docker" and record["container_digest"] == image_id
        assert record["uid"] != 0 and record["device"].startswith("cpu")
    # The same adapter in this process makes byte-identical images.
    assert main(["--results", "here", "generate", "collage-docker", "--shard", "0/15", "--runner", "local"]) == 0
    local = {r["key"]: r["sha256"] for r in Manifest(docker_workdir / "here/models/collage-docker/shards/0-of-15").records()}
    assert local == {r["key"]: r["sha256"] for r in records}
    assert engine.containers.list(all=True, filters={"name": "collapsebench-collage-docker"}) == []


PROBE = r"""
import json, os, socket
report = {"interfaces": sorted(os.listdir("/sys/class/net")), "uid": os.getuid()}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
report["cap_eff"] = status["CapEff"].strip()
report["no_new_privs"] = status["NoNewPrivs"].strip()
def writable(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        return True
    except OSError:
        return False
report["write_data"] = writable("/work/data/probe")
report["write_root"] = writable("/probe")
report["write_output"] = writable(os.environ["OUT"] + "/probe")
try:
    socket.create_connection(("127.0.0.2", 9), timeout=1)
    report["loopback_only"] = False
except OSError:
    report["loopback_only"] = True
print("PROBE " + json.dumps(report))
"""


@pytest.mark.slow
def test_the_container_has_no_network_no_root_and_read_only_inputs(docker_workdir: Path, engine) -> None:
    run = plan(docker_workdir, "collage-docker")
    run.extra_env = {"OUT": run.container_out}
    image = runner.ensure_image(engine, run, io.StringIO())
    log = io.StringIO()
    assert runner.run_container(engine, image, run, ["python3", "-c", PROBE], log) == 0
    report = json.loads(log.getvalue().split("PROBE ", 1)[1])
    assert report["interfaces"] == ["lo"]
    assert report["uid"] != 0 and report["cap_eff"] == "0000000000000000" and report["no_new_privs"] == "1"
    assert (report["write_data"], report["write_root"], report["write_output"]) == (False, False, True)
    assert report["loopback_only"]


@pytest.mark.slow
def test_a_gpu_model_without_a_gpu_is_a_clear_error(docker_workdir: Path, engine) -> None:
    add_model(docker_workdir, "gpu-docker", "collage", gpu_memory_gb=8)
    run = plan(docker_workdir, "gpu-docker")
    image = runner.ensure_image(engine, run, io.StringIO())
    if "nvidia" in engine.info().get("Runtimes", {}):
        pytest.skip("this engine has a GPU runtime")
    for _ in range(2):  # nothing is left behind that would block the next try
        with pytest.raises(BenchError, match="needs a GPU but Docker cannot provide one"):
            runner.run_container(engine, image, run, ["true"], io.StringIO())
    assert engine.containers.list(all=True, filters={"name": "collapsebench-gpu-docker"}) == []


@pytest.mark.slow
def test_killing_the_container_keeps_finished_images_and_the_rerun_resumes(docker_workdir: Path, engine) -> None:
    out = docker_workdir / "results/models/floor-docker/shards/0-of-8"
    first = cli("generate", "floor-docker", "--shard", "0/8", cwd=docker_workdir)
    wait_for(lambda: manifest_lines(out) >= 2 or first.poll() is not None)
    engine.containers.get("collapsebench-floor-docker-shard-0-of-8").kill()
    assert first.wait(60) != 0
    done = manifest_lines(out)
    assert 2 <= done < 10
    assert_complete(out, done)

    assert main(["generate", "floor-docker", "--shard", "0/8"]) == 0
    records = assert_complete(out, 10)
    # Every line names the image that made it (a rebuild between the runs, if the tree changed, shows here).
    assert all(r["container_digest"].startswith("sha256:") for r in records)


@pytest.mark.slow
def test_stopping_the_host_process_stops_the_container_and_a_second_run_is_refused(docker_workdir: Path,
                                                                                     engine) -> None:
    out = docker_workdir / "results/models/floor-docker/shards/1-of-8"
    first = cli("generate", "floor-docker", "--shard", "1/8", cwd=docker_workdir)
    wait_for(lambda: manifest_lines(out) >= 1 or first.poll() is not None)
    second = cli("generate", "floor-docker", "--shard", "1/8", cwd=docker_workdir)
    assert second.wait(120) == 2
    assert "already running" in second.stderr.read()

    first.send_signal(signal.SIGTERM)
    first.wait(60)
    wait_for(lambda: not engine.containers.list(all=True, filters={"name": "collapsebench-floor-docker-shard-1-of-8"}),
             timeout=30)
    done = manifest_lines(out)
    assert_complete(out, done)
    assert main(["generate", "floor-docker", "--shard", "1/8"]) == 0
    assert_complete(out, 10)
    for stream in (first.stdout, first.stderr, second.stdout, second.stderr):
        stream.close()


def test_ci_script_and_base_image_script_are_valid_bash() -> None:
    for script in ("scripts/ci_docker.sh", "scripts/make_base_image.sh"):
        assert subprocess.run(["bash", "-n", str(REPO / script)]).returncode == 0
    assert shutil.which("bash")
    assert os.access(REPO / "scripts/make_base_image.sh", os.X_OK)
