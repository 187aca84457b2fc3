"""The apptainer engine of the docker runner: the model's container as `apptainer exec` of a SIF image.

UNTESTED AGAINST A REAL APPTAINER: Apptainer is not packaged in Debian and no
installation was reachable where this was written. Only the command line is
checked (tests/test_apptainer_runner.py), against the mount and lockdown
contract the docker and podman engines obey; run one calibration model with
it on a cluster before relying on it.

Clusters often have Apptainer and no container daemon. With `--engine
apptainer` (or params.yaml `generate.engine: apptainer`) each model, shard or
Slurm task runs

    apptainer exec --containall --cleanenv --no-home --no-privs --net --network none
        --workdir TMP --pwd /work [--nv] --bind SRC:DST:ro ... --bind OUT:DST
        --env NAME=VALUE ... IMAGE.sif collapsebench ... generate MODEL --runner local

- the image: params.yaml `generate.apptainer_images.<model>` (a .sif path; for
  a cluster with no Docker, convert the image elsewhere) when given, else the
  model's Docker image converted once with `apptainer build`: from
  `docker://REF` for a pinned `docker.image` (Apptainer pulls it itself), or
  from `docker-daemon://TAG` after the docker engine built it from its
  Dockerfile (so converting needs Docker on that host). Conversions are kept
  in .cache/apptainer/ of the checkout, named by the image's digest;
- the lockdown, as docker's: the SIF is a read-only root; `--containall` gives
  the container its own PID, IPC and mount namespaces, a clean environment and
  empty /tmp and home (in a private host folder, `--workdir`, removed
  afterwards; Apptainer's default session space is too small for /tmp);
  `--no-privs` drops every capability and sets no_new_privs; `--net --network
  none` leaves only loopback; the process runs as the caller, or as the
  images' user 10001 for a root caller (`--security uid:...`, which only root
  may pass); the bind mounts are docker's (core/containers.py's Mount list),
  read-only where docker's are, with only the output folder writable;
- the GPU: `--nv`, with CUDA_VISIBLE_DEVICES set to the requested ids, or
  passed through from the host (where Slurm set it for the task) when all are
  asked for, since `--cleanenv` would drop it;
- the image's digest (sha256 of the SIF) and the engine's name go into the
  manifest, as docker's image id does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from collapsebench.core.containers import (
    IMAGE_UID,
    WORKDIR,
    ContainerSpec,
    connect,
    container_env,
    container_user,
    ensure_image,
    gpu_ids,
    sigterm_interrupts,
)
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.generation.runners.docker import DockerRun, image_source

SIF_CACHE = ".cache/apptainer"
STOP_GRACE_S = 30  # apptainer forwards SIGTERM to the container's command; then it is killed


def apptainer_binary() -> str:
    """`apptainer` on PATH (or its older name `singularity`), else a BenchError saying what to do."""
    for name in ("apptainer", "singularity"):
        found = shutil.which(name)
        if found:
            return found
    raise BenchError("the apptainer engine needs `apptainer` on PATH (module load apptainer?); "
                     "or run with --engine docker / --engine podman")


def sif_image(run: DockerRun, stream: TextIO = sys.stderr) -> Path:
    """The SIF the model runs from: params.yaml `generate.apptainer_images.<model>`, else its Docker image
    converted (see above). A SIF path is the cluster's business, not the model's, so it is a parameter: a model.yaml
    (the unit of a pull request) never names a file on the host."""
    configured = ((run.params.get("generate") or {}).get("apptainer_images") or {}).get(run.config.name)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise BenchError(f"params.yaml generate.apptainer_images.{run.config.name}: {configured} is not a file")
        return path.resolve()
    source = image_source(run)
    if source.pinned:
        reference, digest = f"docker://{source.pinned}", source.pinned.rsplit("@sha256:", 1)[-1]
    else:
        client = connect("docker")
        try:
            image = ensure_image(client, source, stream)
        finally:
            client.close()
        if not image.tags:
            raise BenchError(f"model {run.config.name}: the built image {image.id} has no tag to convert from")
        reference, digest = f"docker-daemon://{image.tags[0]}", image.id.removeprefix("sha256:")
    target = run.repo_root / SIF_CACHE / f"{run.config.name}-{digest[:16]}.sif"
    if not target.is_file():
        convert(reference, target, stream)
    return target


def convert(reference: str, target: Path, stream: TextIO) -> None:
    """`apptainer build` into a temporary name first, so that a killed conversion (or a concurrent one of another
    Slurm task) never leaves a partial SIF under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    print(f"apptainer: converting {reference} to {target}", file=stream)
    result = subprocess.run([apptainer_binary(), "build", "--force", str(partial), reference],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    stream.write(result.stdout)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BenchError(f"apptainer build {reference} failed (exit status {result.returncode}); converting a "
                         "Dockerfile-built image needs Docker on this host: convert it where Docker is and name the SIF "
                         "in params.yaml generate.apptainer_images")
    os.replace(partial, target)


def bind_spec(spec: ContainerSpec) -> list[str]:
    """`--bind SRC:DST[:ro]` for each of the spec's mounts, in its order."""
    arguments = []
    for mount in spec.mounts:
        for path in (str(mount.source), mount.target):
            if any(character in path for character in ",:"):
                raise BenchError(f"{path}: Apptainer's --bind cannot name a path containing ',' or ':'")
        arguments += ["--bind", f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")]
    return arguments


def exec_command(binary: str, image: Path, spec: ContainerSpec, digest: str, user: str, workdir: Path,
                 host_env: dict[str, str]) -> list[str]:
    """The `apptainer exec` command line for this container (see the module docstring)."""
    environment = container_env(spec, digest, "apptainer")
    environment.pop("HOME")  # Apptainer refuses to override HOME; --containall gives an empty, writable one
    argv = [binary, "exec", "--containall", "--cleanenv", "--no-home", "--no-privs", "--net", "--network", "none",
            "--workdir", str(workdir), "--pwd", WORKDIR]
    if os.getuid() == 0:  # container_user gave a root caller the images' user
        uid, gid = user.split(":")
        argv += ["--security", f"uid:{uid},gid:{gid}"]
    if spec.gpu is not None:
        argv.append("--nv")
        visible = host_env.get("CUDA_VISIBLE_DEVICES") if spec.gpu == "all" else ",".join(gpu_ids(spec.gpu))
        if visible:
            environment["CUDA_VISIBLE_DEVICES"] = visible
    argv += bind_spec(spec)
    for name, value in environment.items():
        argv += ["--env", f"{name}={value}"]
    return [*argv, str(image), *spec.command]


def run_in_apptainer(run: DockerRun, spec: ContainerSpec, stream: TextIO = sys.stderr) -> int:
    """Run the container's command with Apptainer, stream its output, and return its exit status. Ctrl-C or
    SIGTERM stops it (finished images are kept; the generation inside resumes on a rerun)."""
    binary = apptainer_binary()
    image = sif_image(run, stream)
    writable = [m.source for m in spec.mounts if not m.read_only]
    for folder in writable:
        folder.mkdir(parents=True, exist_ok=True)
    user = container_user(writable)
    with tempfile.TemporaryDirectory(prefix="collapsebench-apptainer-") as scratch:
        if os.getuid() == 0:
            os.chown(scratch, IMAGE_UID, IMAGE_UID)  # the container's /tmp and home, for the images' user
        argv = exec_command(binary, image, spec, f"sha256:{sha256_file(image)}", user, Path(scratch),
                            dict(os.environ))
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            with sigterm_interrupts():
                try:
                    assert process.stdout is not None
                    for chunk in iter(lambda: process.stdout.read1(65536), b""):
                        stream.write(chunk.decode("utf-8", "replace"))
                        stream.flush()
                    return process.wait()
                except KeyboardInterrupt:
                    kept = f"; {spec.kept}" if spec.kept else ""
                    print(f"apptainer: interrupted, stopped {spec.purpose}{kept}", file=stream)
                    raise
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
