"""The apptainer engine: its `apptainer exec` command line against the docker engine's contract.

No Apptainer runs here (it is not packaged in Debian): these tests check the command line the engine builds
(the same bind mounts as docker's, read-only where docker's are, the lockdown flags, the GPU and user options),
where its SIF comes from, and its process handling with a stand-in `apptainer` script. The engine itself is
untested against a real Apptainer (see generation/runners/apptainer.py).
"""

from __future__ import annotations

import io
import os
from itertools import pairwise
from pathlib import Path

import pytest
from test_docker_runner import add_model, plan

from collapsebench.core import containers
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.generation.runners import apptainer
from collapsebench.generation.runners import docker as runner

SIF = Path("/images/collage.sif")
DIGEST = "sha256:" + "b" * 64


def spec_of(workdir: Path, gpu: str | None = None) -> tuple[runner.DockerRun, containers.ContainerSpec]:
    add_model(workdir, "collage-docker", "collage")
    run = plan(workdir, "collage-docker", shard="1/4")
    run.engine = "apptainer"
    spec = runner.container_spec(run, runner.generate_command(run))
    spec.gpu = gpu
    return run, spec


def binds(argv: list[str]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each `--bind SRC:DST[:ro]`."""
    found = []
    for flag, value in pairwise(argv):
        if flag == "--bind":
            source, target, *options = value.split(":")
            found.append((source, target, options == ["ro"]))
    return found


def options(argv: list[str]) -> list[str]:
    """The command line up to the image: Apptainer's own options."""
    return argv[:argv.index(str(SIF))]


def test_the_binds_are_dockers_mounts_and_only_the_output_is_writable(workdir: Path) -> None:
    _, spec = spec_of(workdir)
    argv = apptainer.exec_command("apptainer", SIF, spec, DIGEST, f"{os.getuid()}:{os.getgid()}", Path("/scratch"), {})
    docker = containers.docker_options(spec, "10001:10001", {})
    assert sorted(binds(argv)) == sorted((m["Source"], m["Target"], m["ReadOnly"]) for m in docker["mounts"])
    assert [target for _, target, read_only in binds(argv) if not read_only] == [
        "/work/results/models/collage-docker/shards/1-of-4"]
    assert argv[:2] == ["apptainer", "exec"]
    assert argv[argv.index(str(SIF)) + 1:] == spec.command  # the image, then the stage's command


def test_the_container_is_locked_down_as_dockers(workdir: Path) -> None:
    _, spec = spec_of(workdir)
    argv = options(apptainer.exec_command("apptainer", SIF, spec, DIGEST, "0:0", Path("/scratch"), {}))
    for flag in ("--containall", "--cleanenv", "--no-home", "--no-privs", "--net"):
        assert flag in argv, flag
    assert argv[argv.index("--network") + 1] == "none"  # loopback only, as docker's network_mode none
    assert argv[argv.index("--pwd") + 1] == "/work" and argv[argv.index("--workdir") + 1] == "/scratch"
    assert "--nv" not in argv and "--writable" not in argv and "--writable-tmpfs" not in argv
    environment = dict(value.split("=", 1) for flag, value in pairwise(argv) if flag == "--env")
    expected = containers.container_env(spec, DIGEST, "apptainer")
    del expected["HOME"]  # Apptainer refuses to set it; --containall gives an empty one
    assert environment == expected and environment["COLLAPSEBENCH_RUNNER"] == "apptainer"


def test_a_root_caller_runs_as_the_images_user(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, spec = spec_of(workdir)
    monkeypatch.setattr(apptainer.os, "getuid", lambda: 0)
    argv = apptainer.exec_command("apptainer", SIF, spec, DIGEST, "10001:10001", Path("/scratch"), {})
    assert argv[argv.index("--security") + 1] == "uid:10001,gid:10001"
    monkeypatch.setattr(apptainer.os, "getuid", lambda: 1000)
    assert "--security" not in apptainer.exec_command("apptainer", SIF, spec, DIGEST, "1000:1000", Path("/s"), {})


def test_a_gpu_is_nv_with_the_requested_or_the_tasks_devices(workdir: Path) -> None:
    def visible(gpu: str, host: dict[str, str]) -> tuple[bool, str | None]:
        _, spec = spec_of(workdir, gpu)
        argv = options(apptainer.exec_command("apptainer", SIF, spec, DIGEST, "1:1", Path("/s"), host))
        environment = dict(value.split("=", 1) for flag, value in pairwise(argv) if flag == "--env")
        return "--nv" in argv, environment.get("CUDA_VISIBLE_DEVICES")

    assert visible("1", {}) == (True, "1")
    assert visible("0,2", {"CUDA_VISIBLE_DEVICES": "5"}) == (True, "0,2")
    assert visible("all", {"CUDA_VISIBLE_DEVICES": "2,3"}) == (True, "2,3")  # Slurm's, for the task
    assert visible("all", {}) == (True, None)


def test_a_path_apptainer_cannot_bind_is_refused(workdir: Path) -> None:
    _, spec = spec_of(workdir)
    spec.mounts.append(containers.Mount(Path("/data/a:b"), "/work/x"))
    with pytest.raises(BenchError, match="cannot name a path containing"):
        apptainer.exec_command("apptainer", SIF, spec, DIGEST, "1:1", Path("/s"), {})


def test_the_sif_is_the_params_or_the_models_docker_image_converted(workdir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = spec_of(workdir)
    run.repo_root = tmp_path / "checkout"
    converted: list[tuple[str, Path]] = []
    monkeypatch.setattr(apptainer, "convert", lambda reference, target, stream: converted.append((reference, target)))
    # A SIF named in params.yaml (generate.apptainer_images) is used as it is.
    sif = tmp_path / "given.sif"
    run.params.setdefault("generate", {})["apptainer_images"] = {run.config.name: str(sif)}
    with pytest.raises(BenchError, match="generate.apptainer_images.* is not a file"):
        apptainer.sif_image(run)
    sif.write_bytes(b"sif")
    assert apptainer.sif_image(run) == sif and converted == []
    run.params["generate"]["apptainer_images"] = {}
    # A pinned docker.image is converted by Apptainer from the registry, named by its digest.
    run.config.raw["docker"] = {"image": "example.org/model@sha256:" + "c" * 64}
    target = apptainer.sif_image(run)
    assert converted == [("docker://example.org/model@sha256:" + "c" * 64, target)]
    assert target == run.repo_root / ".cache/apptainer" / f"collage-docker-{'c' * 16}.sif"
    # A Dockerfile's image is built by the docker engine, then converted from Docker's store.
    image = type("Image", (), {"id": "sha256:" + "d" * 64, "tags": ["collapsebench/cpu:0123"]})()
    client = type("Client", (), {"close": lambda self: None})()
    monkeypatch.setattr(apptainer, "connect", lambda engine: client if engine == "docker" else None)
    monkeypatch.setattr(apptainer, "ensure_image", lambda client, source, stream: image)
    run.config.raw["docker"] = {"dockerfile": "docker/cpu/Dockerfile"}
    target = apptainer.sif_image(run)
    assert converted[-1] == ("docker-daemon://collapsebench/cpu:0123", target) and target.name.endswith(f"{'d' * 16}.sif")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"sif")
    assert apptainer.sif_image(run) == target and len(converted) == 2  # converted once


FAKE = """#!/bin/sh
# Stands in for apptainer: `build` writes its target, `exec` prints its arguments and exits 3.
if [ "$1" = build ]; then echo "built $4"; echo sif > "$3"; exit 0; fi
echo "args: $*"
exit 3
"""


def test_the_process_is_followed_and_its_status_returned(workdir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").write_text(FAKE)
    (bin_dir / "apptainer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run, spec = spec_of(workdir)
    run.repo_root = tmp_path / "checkout"
    run.config.raw["docker"] = {"image": "example.org/model@sha256:" + "c" * 64}
    log = io.StringIO()
    assert apptainer.run_in_apptainer(run, spec, log) == 3
    sif = run.repo_root / ".cache/apptainer" / f"collage-docker-{'c' * 16}.sif"
    assert "built docker://example.org/model@sha256:" in log.getvalue() and sif.read_text() == "sif\n"
    assert f"COLLAPSEBENCH_IMAGE_DIGEST=sha256:{sha256_file(sif)}" in log.getvalue()
    assert f"{sif} {' '.join(spec.command)}" in log.getvalue()
    assert run.host_out.is_dir()  # the writable folder exists before it is bound
    assert list(sif.parent.glob(".*partial")) == []


def test_no_apptainer_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BenchError, match="the apptainer engine needs `apptainer` on PATH"):
        apptainer.apptainer_binary()
