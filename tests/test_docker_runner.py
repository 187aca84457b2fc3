"""The docker runner: its plan (mounts, tags, checks) without an engine, then real containers.

The real-container tests build the CPU test image (docker/cpu/Dockerfile) on
the shared base (docker/base/Dockerfile) made from the Debian base that
scripts/make_base_image.sh makes with debootstrap (no image registry needed),
run calibration models through the runner and check outputs, manifest,
isolation and crash behaviour. scripts/ci_docker.sh
installs and starts the engine where it can; they skip, printing why, only
where no engine can run at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

from collapsebench.benchmark.model_config import load_model_config
from collapsebench.cli import load_params, main
from collapsebench.core import containers
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.generation.runners import docker as runner

BASE_IMAGE = "collapsebench-base:bookworm"
ON_BASE = ["--base-image", BASE_IMAGE]  # no registry here: the shared base builds on the local Debian image


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
                            results_dir=root / "results", shard=shard, hub_cache=hub_cache, base_image=BASE_IMAGE)


# ---------------------------------------------------------------- without an engine

def test_only_the_output_folder_is_writable(workdir: Path) -> None:
    add_model(workdir, "collage-docker", "collage")
    run = plan(workdir, "collage-docker", shard="1/4")
    run.host_out.mkdir(parents=True)
    mounts = {m.target: m for m in runner.plan_mounts(run)}
    assert [t for t, m in mounts.items() if not m.read_only] == ["/work/results/models/collage-docker/shards/1-of-4"]
    assert mounts["/work/params.yaml"].source == (workdir / "params.yaml").resolve()
    assert mounts["/work/data"].source == (workdir / "data").resolve()
    assert mounts["/work/benchmark"].read_only  # prompts.yaml and the castings beside it
    assert run.container_name == "collapsebench-collage-docker-shard-1-of-4"
    command = runner.generate_command(run)
    assert command[-4:] == ["--runner", "local", "--shard", "1/4"] and "generate" in command


def checkout(tmp_path: Path, dockerfile: str) -> Path:
    """A minimal build context: docker/cpu/Dockerfile with this text, a source file, an ignored results/."""
    root = tmp_path / "checkout"
    (root / "docker" / "cpu").mkdir(parents=True)
    (root / "src" / "collapsebench").mkdir(parents=True)
    (root / "docker" / "cpu" / "Dockerfile").write_text(dockerfile)
    (root / "src" / "collapsebench" / "a.py").write_text("x = 1\n")
    (root / "results").mkdir()
    (root / ".dockerignore").write_text("*\n!docker\n!src/collapsebench\n")
    return root


def test_image_tag_follows_the_build_context(tmp_path: Path, workdir: Path) -> None:
    root = checkout(tmp_path, "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    add_model(workdir, "collage-docker", "collage")
    run = plan(workdir, "collage-docker")
    run.repo_root = root
    dockerfile = runner.image_source(run).dockerfile
    tag = containers.image_tag(root, dockerfile, {})
    assert tag.startswith("collapsebench/cpu:") and containers.image_tag(root, dockerfile, {}) == tag
    (root / "results" / "ignored.png").write_bytes(b"outside the context")
    assert containers.image_tag(root, dockerfile, {}) == tag
    (root / "src" / "collapsebench" / "a.py").write_text("x = 2\n")
    assert containers.image_tag(root, dockerfile, {}) != tag
    # A Dockerfile that does not build on the shared base gets BASE_IMAGE itself.
    run.base_image = "somewhere/else:1"
    assert not containers.uses_shared_base(runner.image_source(run))
    assert containers.build_args(runner.image_source(run), None) == {"BASE_IMAGE": "somewhere/else:1"}


def test_an_image_on_the_shared_base_is_tagged_by_the_base_it_was_built_on(tmp_path: Path, workdir: Path) -> None:
    root = checkout(tmp_path, "ARG BENCH_BASE=collapsebench/base:local\nFROM ${BENCH_BASE}\n")
    add_model(workdir, "collage-docker", "collage", docker={"dockerfile": "docker/cpu/Dockerfile",
                                                             "build_args": {"UPSTREAM_COMMIT": "c" * 40}})
    run = plan(workdir, "collage-docker")
    run.repo_root = root
    source = runner.image_source(run)
    assert containers.uses_shared_base(source)
    # BASE_IMAGE goes to the shared base; the image gets the base's image id (and keeps its own build args).
    assert containers.base_args(source) == {"BASE_IMAGE": BASE_IMAGE}
    args = containers.build_args(source, "sha256:" + "a" * 64)
    assert args == {"UPSTREAM_COMMIT": "c" * 40, "BENCH_BASE": "sha256:" + "a" * 64}
    rebuilt_base = containers.build_args(source, "sha256:" + "b" * 64)
    assert containers.image_tag(root, source.dockerfile, args) != containers.image_tag(root, source.dockerfile,
                                                                                       rebuilt_base)
    with pytest.raises(BenchError, match="builds on the shared base but docker/base/Dockerfile is not under"):
        containers.ensure_image(None, source, io.StringIO())


SHARED_BLOCK = ("useradd", "python3.11 -m venv", "PIP_DISABLE_PIP_VERSION_CHECK", "PYTHONDONTWRITEBYTECODE",
                "HF_HUB_OFFLINE", "HF_HUB_CACHE", "SHELL")


def test_every_image_builds_on_the_shared_base_and_keeps_only_its_own_pins() -> None:
    base = (REPO / containers.SHARED_BASE).read_text()
    assert f"--uid {containers.IMAGE_UID} " in base and "WORKDIR /work" in base
    assert all(line in base for line in SHARED_BLOCK)
    images = sorted(path for path in (REPO / "docker").glob("*/Dockerfile") if path.parent.name != "base")
    assert {path.parent.name for path in images} >= {"cpu", "eval", "diffusers", "mosaic", "xverse"}
    for path in images:
        instructions = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("#"))
        source = containers.ImageSource(repo_root=REPO, origin="test", dockerfile=str(path.relative_to(REPO)))
        assert containers.uses_shared_base(source) and "FROM ${BENCH_BASE}" in instructions, path
        assert [line for line in SHARED_BLOCK if line in instructions] == [], path
        assert instructions.rstrip().splitlines()[-1] == f"USER {containers.IMAGE_UID}", path


def test_missing_weights_are_named_with_the_command_that_fetches_them(workdir: Path, tmp_path: Path) -> None:
    run = plan(workdir, "mosaic", hub_cache=tmp_path / "no-cache")
    with pytest.raises(BenchError, match="model cache .* does not exist"):
        runner.check_weights(run)
    cache = tmp_path / "hub"
    (cache / "models--black-forest-labs--FLUX.1-dev" / "snapshots" / ("a" * 40)).mkdir(parents=True)
    run.hub_cache = cache
    with pytest.raises(BenchError, match="hf download ByteDance-FanQie/MOSAIC") as error:
        runner.check_weights(run)
    assert "FLUX.1-dev" not in str(error.value).split("missing")[1].split(".")[0]
    run = plan(workdir, "flux2-klein-4b", hub_cache=cache)
    with pytest.raises(BenchError, match="--revision e7b7dc27f91deacad38e78976d1f2b499d76a294"):
        runner.check_weights(run)
    runner.check_weights(plan(workdir, "collage", hub_cache=None))  # calibration: nothing to check


def test_no_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(BenchError, match="cannot reach a Docker engine"):
        containers.connect()


# ---------------------------------------------------------------- real containers

def engine_problem() -> str | None:
    try:
        containers.connect().close()
    except BenchError as error:
        return str(error)
    return None


WHEELS = REPO / "docker/cpu/wheels"
REQUIREMENTS = ("docker/cpu/requirements.txt", "docker/eval/requirements.txt", "docker/eval/requirements-no-deps.txt")


def setup_problem() -> str | None:
    """What scripts/ci_docker.sh (run by .ci/run) has not made: the engine, the Debian base image, or the CPU
    image's wheels for the current pins (its marker holds their requirements' sha256). The tests never install
    packages or start daemons themselves: they use what is there and say what is missing."""
    problem = engine_problem()
    if problem:
        return f"no Docker engine can run here: {problem}"
    client = containers.connect()
    try:
        return image_inputs_problem(client, "")
    finally:
        client.close()


def image_inputs_problem(client: Any, where: str) -> str | None:
    """What the CPU test image is built from, if missing: the Debian base image in this engine (`where` says
    which, in the message) or scripts/ci_docker.sh's wheels for the current pins (its marker holds their sha256)."""
    try:
        client.images.get(BASE_IMAGE)
    except Exception:  # docker.errors.ImageNotFound, or an engine that cannot answer
        return f"the base image {BASE_IMAGE} is missing{where}"
    wanted = hashlib.sha256(b"".join((REPO / name).read_bytes() for name in REQUIREMENTS)).hexdigest()
    marker = WHEELS / ".complete"
    if not marker.is_file() or marker.read_text().strip() != wanted:
        return f"{WHEELS} is missing or stale for the current pins"
    return None


@pytest.fixture(scope="session")
def engine():
    """A live engine with the Debian base image and the CPU image's wheels, as scripts/ci_docker.sh leaves them."""
    problem = setup_problem()
    if problem:
        print(f"\nSKIP container tests: {problem}; run scripts/ci_docker.sh (.ci/run does)", file=sys.stderr)
        pytest.skip(f"{problem}; run scripts/ci_docker.sh (.ci/run does)")
    client = containers.connect()
    yield client
    client.close()


@pytest.fixture
def docker_workdir(workdir: Path, engine) -> Path:
    add_model(workdir, "collage-docker", "collage")
    add_model(workdir, "floor-docker", "floor", settings={"size": 1536})  # noisy PNGs: slow enough to interrupt
    return workdir


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "collapsebench.cli", *args, *ON_BASE], cwd=cwd, text=True,
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


def check_calibration_run(workdir: Path, client: Any, model: str, engine: str, flags: list[str]) -> None:
    """Shard 0/15 of a calibration model in its container: every line names the engine and the image id, the
    container ran as non-root on the CPU, and the same adapter in this process makes byte-identical images.
    Shared by every engine's tests (test_podman_runner.py too)."""
    assert main(["generate", model, "--shard", "0/15", *flags]) == 0
    out = workdir / f"results/models/{model}/shards/0-of-15"
    records = assert_complete(out, 5)
    image_id = containers.ensure_image(client, runner.image_source(plan(workdir, model)), io.StringIO()).id
    for record in records:
        assert record["runner"] == engine and record["container_digest"] == image_id
        assert record["uid"] != 0 and record["device"].startswith("cpu")
    assert main(["--results", "here", "generate", model, "--shard", "0/15", "--runner", "local"]) == 0
    local = {r["key"]: r["sha256"] for r in Manifest(workdir / f"here/models/{model}/shards/0-of-15").records()}
    assert local == {r["key"]: r["sha256"] for r in records}
    assert client.containers.list(all=True, filters={"name": f"collapsebench-{model}"}) == []


@pytest.mark.slow
def test_a_calibration_model_runs_in_its_container(docker_workdir: Path, engine) -> None:
    check_calibration_run(docker_workdir, engine, "collage-docker", "docker", ON_BASE)


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


def check_lockdown(workdir: Path, client: Any, model: str) -> None:
    """A probe inside the model's container: only loopback, not root, no capabilities, no-new-privileges, inputs
    and root read-only, the output writable. Shared by every engine's tests."""
    run = plan(workdir, model)
    run.extra_env = {"OUT": run.container_out}
    image = containers.ensure_image(client, runner.image_source(run), io.StringIO())
    log = io.StringIO()
    assert containers.run_container(client, image, runner.container_spec(run, ["python3", "-c", PROBE]), log) == 0
    report = json.loads(log.getvalue().split("PROBE ", 1)[1])
    assert report["interfaces"] == ["lo"]
    assert report["uid"] != 0 and report["cap_eff"] == "0000000000000000" and report["no_new_privs"] == "1"
    assert (report["write_data"], report["write_root"], report["write_output"]) == (False, False, True)
    assert report["loopback_only"]


@pytest.mark.slow
def test_the_container_has_no_network_no_root_and_read_only_inputs(docker_workdir: Path, engine) -> None:
    check_lockdown(docker_workdir, engine, "collage-docker")


@pytest.mark.slow
def test_a_gpu_model_without_a_gpu_is_a_clear_error(docker_workdir: Path, engine) -> None:
    add_model(docker_workdir, "gpu-docker", "collage", gpu_memory_gb=8)
    run = plan(docker_workdir, "gpu-docker")
    image = containers.ensure_image(engine, runner.image_source(run), io.StringIO())
    if "nvidia" in engine.info().get("Runtimes", {}):
        pytest.skip("this engine has a GPU runtime")
    for _ in range(2):  # nothing is left behind that would block the next try
        with pytest.raises(BenchError, match="model gpu-docker needs a GPU but Docker cannot provide one"):
            containers.run_container(engine, image, runner.container_spec(run, ["true"]), io.StringIO())
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

    assert main(["generate", "floor-docker", "--shard", "0/8", *ON_BASE]) == 0
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
    assert main(["generate", "floor-docker", "--shard", "1/8", *ON_BASE]) == 0
    assert_complete(out, 10)
    for stream in (first.stdout, first.stderr, second.stdout, second.stderr):
        stream.close()


def test_the_suite_never_installs_packages_or_starts_daemons() -> None:
    """Whoever runs the README's test command as root must not get packages installed or dockerd left running:
    only .ci/run prepares the machine (scripts/ci_system.sh)."""
    run_script = '["bash", str(REPO / "scripts/' + 'ci_'  # running one (not `bash -n` checking it)
    for path in (REPO / "tests").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for forbidden in ('"apt' + '-get"', '"docker' + 'd"', run_script):
            assert forbidden not in text, f"{path.name} runs {forbidden}"


def test_ci_script_and_base_image_script_are_valid_bash() -> None:
    for script in ("scripts/ci_docker.sh", "scripts/make_base_image.sh"):
        assert subprocess.run(["bash", "-n", str(REPO / script)], check=False).returncode == 0
    assert shutil.which("bash")
    assert os.access(REPO / "scripts/make_base_image.sh", os.X_OK)
