"""The podman engine: engine choice and Podman's create request without an engine, then real containers.

Podman is driven through the socket `podman system service` serves (core/containers.py): images are built and
containers followed by the same docker-py calls as Docker's, only the container is created through Podman's own
API. The real-container tests build the CPU test image (docker/cpu/Dockerfile) with Podman on the Debian base
and wheels the docker tests use (tests/test_docker_runner.py), run a calibration model through `--engine podman`
and check its images are byte-identical to a local run and its container as locked down as Docker's.
scripts/ci_podman.sh (run by .ci/run through scripts/ci_system.sh) installs Podman, starts its service, loads the
base image into it and writes the containers.conf settings a host like CI's needs; the tests skip, saying what is
missing, where it could not.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from test_docker_runner import (
    ON_BASE,
    add_model,
    assert_complete,
    check_calibration_run,
    check_lockdown,
    cli,
    image_inputs_problem,
    manifest_lines,
    plan,
    wait_for,
)

from collapsebench.cli import main
from collapsebench.core import containers
from collapsebench.core.errors import BenchError
from collapsebench.generation import launch, slurm
from collapsebench.generation.runners import docker as runner

ON_PODMAN = ["--engine", "podman", *ON_BASE]


# ---------------------------------------------------------------- without an engine

def test_the_engine_comes_from_the_flag_then_params_then_docker(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    assert containers.choose_engine(None, {}, path) == "docker"
    assert containers.choose_engine(None, {"generate": {"engine": "podman"}}, path) == "podman"
    assert containers.choose_engine("apptainer", {"generate": {"engine": "podman"}}, path) == "apptainer"
    with pytest.raises(BenchError, match="generate.engine must be one of docker, podman, apptainer, got 'lxc'"):
        containers.choose_engine(None, {"generate": {"engine": "lxc"}}, path)
    assert yaml.safe_load((REPO / "params.yaml").read_text())["generate"]["engine"] == "docker"


def locked_down(workdir: Path, gpu: str | None = None) -> containers.ContainerSpec:
    add_model(workdir, "collage-docker", "collage")
    run = plan(workdir, "collage-docker", shard="1/4")
    spec = runner.container_spec(run, runner.generate_command(run))
    spec.gpu = gpu
    return spec


def test_podmans_create_request_locks_the_container_down_as_dockers(workdir: Path) -> None:
    spec = locked_down(workdir)
    environment = containers.container_env(spec, "sha256:" + "a" * 64, "podman")
    docker = containers.docker_options(spec, "10001:10001", environment)
    podman = containers.podman_spec("sha256:" + "a" * 64, spec, "10001:10001", environment)
    docker_mounts = sorted((m["Target"], m["Source"], m["ReadOnly"]) for m in docker["mounts"])
    binds = [m for m in podman["mounts"] if m["type"] == "bind"]
    assert sorted((m["destination"], m["source"], m["options"] == ["ro"]) for m in binds) == docker_mounts
    assert [m["destination"] for m in binds if m["options"] == ["rw"]] == ["/work/results/models/collage-docker/shards/1-of-4"]
    tmp = [m for m in podman["mounts"] if m["type"] == "tmpfs"]
    assert [(m["destination"], ",".join(m["options"])) for m in tmp] == list(docker["tmpfs"].items())
    assert (docker["network_mode"], podman["netns"]) == ("none", {"nsmode": "none"})
    assert docker["cap_drop"] == podman["cap_drop"] == ["ALL"]
    assert docker["security_opt"] == ["no-new-privileges"] and podman["no_new_privileges"] is True
    assert docker["read_only"] is True and podman["read_only_filesystem"] is True
    assert docker["user"] == podman["user"] and docker["working_dir"] == podman["work_dir"] == "/work"
    assert docker["environment"] == podman["env"] and podman["env"]["COLLAPSEBENCH_RUNNER"] == "podman"
    assert docker["labels"] == podman["labels"] and docker["name"] == podman["name"] == spec.name
    assert docker["device_requests"] is None and "devices" not in podman
    assert podman["command"] == spec.command


def test_a_podman_gpu_is_a_cdi_device(workdir: Path) -> None:
    image = "sha256:" + "a" * 64
    assert containers.podman_spec(image, locked_down(workdir, "all"), "0:0", {})["devices"] == [
        {"path": "nvidia.com/gpu=all"}]
    assert containers.podman_spec(image, locked_down(workdir, "1,3"), "0:0", {})["devices"] == [
        {"path": "nvidia.com/gpu=1"}, {"path": "nvidia.com/gpu=3"}]


def test_a_rootless_podman_keeps_the_callers_uid(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = locked_down(workdir)
    monkeypatch.setattr(containers.os, "getuid", lambda: 1000)
    assert containers.podman_spec("i", spec, "1000:1000", {})["userns"] == {"nsmode": "keep-id"}
    monkeypatch.setattr(containers.os, "getuid", lambda: 0)
    assert "userns" not in containers.podman_spec("i", spec, "10001:10001", {})


def test_podmans_socket_is_container_host_then_docker_host_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(containers.os, "getuid", lambda: 0)
    assert containers.podman_url() == "unix:///run/podman/podman.sock"
    monkeypatch.setattr(containers.os, "getuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert containers.podman_url() == "unix:///run/user/1000/podman/podman.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///b.sock")
    assert containers.podman_url() == "unix:///b.sock"
    monkeypatch.setenv("CONTAINER_HOST", "unix:///a.sock")
    assert containers.podman_url() == "unix:///a.sock"


def test_no_podman_service_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(BenchError, match="cannot reach a Podman service at unix://.*no-such.sock.*podman system service"):
        containers.connect("podman")


class FakeClient:
    """Just enough of docker-py's client for `connect` to ask which engine answers."""

    def __init__(self, component: str) -> None:
        self.component, self.closed = component, False
        self.api = Namespace(base_url="http+docker://localhost")

    def ping(self) -> bool:
        return True

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": self.component}]}

    def close(self) -> None:
        self.closed = True


def test_docker_answering_where_podman_was_asked_for_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import docker

    dockerd = FakeClient("Engine")
    monkeypatch.setenv("CONTAINER_HOST", "unix:///var/run/docker.sock")
    monkeypatch.setattr(docker, "DockerClient", lambda **_: dockerd)
    with pytest.raises(BenchError, match="docker.sock is docker, not podman: run with --engine docker"):
        containers.connect("podman")
    assert dockerd.closed
    # Podman behind Docker's socket (podman-docker) serves the docker engine: run_container asks which it is.
    podman = FakeClient("Podman Engine")
    monkeypatch.setattr(docker, "from_env", lambda **_: podman)
    assert containers.connect("docker") is podman and containers.engine_of(podman) == "podman"


def test_a_failed_start_names_the_missing_host_setting(workdir: Path) -> None:
    spec = locked_down(workdir)
    rlimit = "runc create failed: error setting rlimits for ready process: error setting rlimit type 6: operation not permitted"
    assert "default_ulimits in containers.conf" in str(containers._start_error("podman", spec, rlimit))
    hybrid = "crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2"
    assert 'runtime = "runc"' in str(containers._start_error("podman", spec, hybrid))
    spec.gpu = "all"
    cdi = "setting up CDI devices: unresolvable CDI devices nvidia.com/gpu=all"
    assert "nvidia-ctk cdi generate" in str(containers._start_error("podman", spec, cdi))
    assert "restart dockerd" in str(containers._start_error("docker", spec, "could not select device driver"))


def test_the_engine_flag_reaches_the_runner(workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    add_model(workdir, "collage-docker", "collage")
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    assert main(["generate", "collage-docker", "--engine", "podman"]) == 2
    assert "cannot reach a Podman service" in capsys.readouterr().err


def test_each_slurm_task_gets_the_engine_and_a_daemons_container_gets_the_tasks_gpus(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(slurm.subprocess, "call", lambda argv, **_: calls.append(argv) or 0)
    monkeypatch.setenv("SLURM_JOB_GPUS", "1,3")
    for engine in ("docker", "podman", "apptainer", None):
        slurm.ShardTask(["collapsebench", "generate", "m"], engine)()
    assert calls == [["collapsebench", "generate", "m", "--engine", "docker", "--gpu", "1,3"],
                     ["collapsebench", "generate", "m", "--engine", "podman", "--gpu", "1,3"],
                     ["collapsebench", "generate", "m", "--engine", "apptainer"],  # keeps the task's CUDA_VISIBLE_DEVICES
                     ["collapsebench", "generate", "m"]]
    params = workdir / "params.yaml"
    document = yaml.safe_load(params.read_text())
    document["generate"]["engine"] = "podman"
    params.write_text(yaml.safe_dump(document))
    loaded = yaml.safe_load(params.read_text())
    assert launch.shard_engine("docker", None, loaded, params) == "podman"  # params.yaml's
    assert launch.shard_engine("docker", "apptainer", loaded, params) == "apptainer"  # the flag's
    assert launch.shard_engine("local", None, loaded, params) is None


def test_the_podman_script_is_valid_bash_and_ci_system_calls_it_after_docker() -> None:
    assert subprocess.run(["bash", "-n", str(REPO / "scripts/ci_podman.sh")], check=False).returncode == 0
    assert os.access(REPO / "scripts/ci_podman.sh", os.X_OK)
    system = (REPO / "scripts/ci_system.sh").read_text()
    assert system.index("scripts/ci_docker.sh") < system.index("scripts/ci_podman.sh")  # it reuses Docker's wheels


# ---------------------------------------------------------------- real containers

def setup_problem() -> str | None:
    """What scripts/ci_podman.sh has not made: the Podman service, the Debian base image in it, or the CPU
    image's wheels for the current pins (made by scripts/ci_docker.sh)."""
    try:
        client = containers.connect("podman")
    except BenchError as error:
        return f"no Podman service answers here: {error}"
    try:
        return image_inputs_problem(client, " from Podman")
    finally:
        client.close()


@pytest.fixture(scope="session")
def podman():
    """A live Podman service with the Debian base image and the CPU image's wheels, as scripts/ci_podman.sh
    leaves them."""
    problem = setup_problem()
    if problem:
        print(f"\nSKIP podman tests: {problem}; run scripts/ci_podman.sh (.ci/run does)", file=sys.stderr)
        pytest.skip(f"{problem}; run scripts/ci_podman.sh (.ci/run does)")
    client = containers.connect("podman")
    yield client
    client.close()


@pytest.fixture
def podman_workdir(workdir: Path, podman) -> Path:
    add_model(workdir, "collage-podman", "collage")
    add_model(workdir, "floor-podman", "floor", settings={"size": 1536})  # noisy PNGs: slow enough to interrupt
    return workdir


@pytest.mark.slow
@pytest.mark.images
def test_a_calibration_model_runs_in_a_podman_container(podman_workdir: Path, podman) -> None:
    check_calibration_run(podman_workdir, podman, "collage-podman", "podman", ON_PODMAN)


@pytest.mark.slow
@pytest.mark.images
def test_the_podman_container_has_no_network_no_root_and_read_only_inputs(podman_workdir: Path, podman) -> None:
    check_lockdown(podman_workdir, podman, "collage-podman")


@pytest.mark.slow
@pytest.mark.images
def test_a_gpu_model_without_a_cdi_gpu_is_a_clear_podman_error(podman_workdir: Path, podman) -> None:
    if any(Path(folder).is_dir() and any(Path(folder).iterdir()) for folder in ("/etc/cdi", "/var/run/cdi")):
        pytest.skip("this host has CDI specifications (a GPU Podman can give)")
    add_model(podman_workdir, "gpu-podman", "collage", gpu_memory_gb=8)
    run = plan(podman_workdir, "gpu-podman")
    image = containers.ensure_image(podman, runner.image_source(run), io.StringIO())
    for _ in range(2):  # nothing is left behind that would block the next try
        with pytest.raises(BenchError, match="model gpu-podman needs a GPU but Podman cannot provide one"):
            containers.run_container(podman, image, runner.container_spec(run, ["true"]), io.StringIO())
    assert podman.containers.list(all=True, filters={"name": "collapsebench-gpu-podman"}) == []


@pytest.mark.slow
@pytest.mark.images
def test_killing_the_podman_container_keeps_finished_images_and_stopping_the_host_process_stops_it(
        podman_workdir: Path, podman) -> None:
    out = podman_workdir / "results/models/floor-podman/shards/0-of-8"
    first = cli("generate", "floor-podman", "--shard", "0/8", "--engine", "podman", cwd=podman_workdir)
    wait_for(lambda: manifest_lines(out) >= 2 or first.poll() is not None)
    second = cli("generate", "floor-podman", "--shard", "0/8", "--engine", "podman", cwd=podman_workdir)
    assert second.wait(120) == 2
    message = second.stderr.read()
    assert "already running" in message and "`podman stop collapsebench-floor-podman-shard-0-of-8`" in message
    podman.containers.get("collapsebench-floor-podman-shard-0-of-8").kill()
    assert first.wait(60) != 0
    done = manifest_lines(out)
    assert 2 <= done < 10
    assert_complete(out, done)

    again = cli("generate", "floor-podman", "--shard", "0/8", "--engine", "podman", cwd=podman_workdir)
    wait_for(lambda: manifest_lines(out) > done or again.poll() is not None)
    again.send_signal(signal.SIGTERM)
    again.wait(60)
    wait_for(lambda: not podman.containers.list(all=True, filters={"name": "collapsebench-floor-podman"}), timeout=30)
    assert_complete(out, manifest_lines(out))
    assert main(["generate", "floor-podman", "--shard", "0/8", *ON_PODMAN]) == 0
    assert_complete(out, 10)
    for process in (first, second, again):
        process.stdout.close()
        process.stderr.close()


@pytest.mark.slow
@pytest.mark.images
def test_each_slurm_task_runs_its_shard_with_params_engine(podman_workdir: Path, podman) -> None:
    from test_slurm_launcher import cluster_problem

    problem = cluster_problem()
    if problem:
        pytest.skip(f"no Slurm cluster here: {problem}; scripts/ci_slurm.sh starts a one-node cluster")
    params = yaml.safe_load((podman_workdir / "params.yaml").read_text())
    params["generate"]["slurm"].update(cpus_per_task=1, mem_gb=None, gpus_per_task=0, time=10)
    params["generate"]["engine"] = "podman"
    (podman_workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert main(["generate", "collage-podman", "--launcher", "slurm", "--shards", "2", *ON_BASE]) == 0
    merged = assert_complete(podman_workdir / "results/models/collage-podman", 75)
    assert {record["runner"] for record in merged} == {"podman"}
    logs = sorted((podman_workdir / ".cache/generate/collage-podman/slurm").glob("*/*_log.out"))
    commands = [line for log in logs for line in log.read_text().splitlines() if line.startswith("== Slurm task")]
    assert len(commands) == 2 and all(line.endswith("--runner docker --base-image collapsebench-base:bookworm "
                                                    "--engine podman") for line in commands)
