"""Stages in pinned, locked-down containers: the engine-generic part every docker runner shares.

A stage that runs in a container (generate for a model, score, report) is
the same `collapsebench` command run with `--runner local` inside an image,
so the numbers depend on the image's pinned packages and not on the host's.
This module knows how to:

- reach the engine (`connect`) and find the checkout to build from (`build_root`);
- get the image: a pinned reference, or a Dockerfile of the checkout built
  with the repository root as context and tagged by a hash of that context
  and the build arguments (`image_tag`), so an unchanged tree is never
  rebuilt. A Dockerfile that declares `ARG BENCH_BASE` builds on the shared
  base (docker/base/Dockerfile): that is built first, gets BASE_IMAGE, and
  its image id becomes the model image's BENCH_BASE, so the model image's
  tag changes whenever the base does;
- start the container locked down: no network, all capabilities dropped,
  `no-new-privileges`, a read-only root file system with a private /tmp, a
  non-root user, the given bind mounts (inputs read-only, outputs and caches
  writable), the image id in COLLAPSEBENCH_IMAGE_DIGEST and
  COLLAPSEBENCH_RUNNER=docker; a GPU only when asked for;
- stream its log to ours, kill it on Ctrl-C or SIGTERM, and always remove it.

What is mounted where, and which command runs, is each stage's business
(generation/runners/docker.py, scoring/container.py, reporting/container.py);
score and report share the scoring image (`scoring_image`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from collapsebench.core.errors import BenchError
from collapsebench.core.hub import COMMIT
from collapsebench.core.io import sha256_file

IMAGE_UID = 10001  # the `bench` user of the shared base image (docker/base/Dockerfile)
WORKDIR = "/work"
HUB_CACHE = "/cache/huggingface/hub"
SHARED_BASE = "docker/base/Dockerfile"
SHARED_BASE_ARG = "BENCH_BASE"  # a Dockerfile declaring `ARG BENCH_BASE` builds FROM the shared base
SCORING_DOCKERFILE = "docker/eval/Dockerfile"  # the image score and report run in (--runner docker)
RUNNERS = ("local", "docker")


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # in the container
    read_only: bool = True


@dataclass(frozen=True)
class ImageSource:
    """Where a stage's image comes from: a pinned reference, or a Dockerfile of the checkout."""

    repo_root: Path  # the build context
    origin: str  # what named the image, for error messages (a model.yaml, --image-dockerfile)
    dockerfile: str | None = None  # relative to repo_root
    pinned: str | None = None  # an image reference used as is (pulled when absent)
    build_args: Mapping[str, str] = field(default_factory=dict)
    base_image: str | None = None  # BASE_IMAGE: the OS image under the shared base (or under the Dockerfile itself)


@dataclass
class ContainerSpec:
    """One container: its name, command, mounts and what it is for (used in messages)."""

    name: str
    command: list[str]
    mounts: list[Mount]
    purpose: str  # e.g. "model mosaic", "scoring of mosaic"
    gpu: str | None = None  # None: no GPU; "all" or one device id
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    kept: str = ""  # what an interrupted run leaves behind, said when it is killed


def connect() -> Any:
    """A docker-py client talking to a live engine, or a BenchError saying how to get one."""
    from docker.errors import DockerException

    import docker

    try:
        client = docker.from_env(version="auto")
        client.ping()
    except DockerException as error:
        raise BenchError(f"cannot reach a Docker engine ({error}); start dockerd (or Docker Desktop), "
                         "or run with --runner local") from error
    return client


def build_root(cwd: Path | None = None) -> Path:
    """The build context: the working folder if it is a checkout (docker/ + pyproject.toml), else the checkout
    this package is imported from (an editable install), so runs from a results-only folder still build."""
    for candidate in (Path(cwd or Path.cwd()), Path(__file__).resolve().parents[3]):
        if (candidate / "docker").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise BenchError("no collapsebench checkout to build images from: run from the repository root")


def choose_runner(flag: str | None, params: Mapping[str, Any], section: str, params_path: Path) -> str:
    """`--runner` when given, else params.yaml `<section>.runner`, else local."""
    runner = flag or (params.get(section) or {}).get("runner", "local")
    if runner not in RUNNERS:
        raise BenchError(f"{params_path}: {section}.runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    return runner


def inside(path: Path) -> str:
    """Where a params.yaml path is seen in the container: relative ones under /work, absolute ones unchanged."""
    return path.as_posix() if path.is_absolute() else f"{WORKDIR}/{path.as_posix()}"


def input_mounts(params_path: Path, params: Mapping[str, Any], models_dir: Path) -> list[Mount]:
    """What every stage reads, read-only: params.yaml, models/, the subject pool, and the folder of the prompts
    file, because the pool castings the prompts are cast with live beside it (benchmark/castings/)."""
    suite = params["suite"]
    for key in ("prompts", "pool"):
        if not Path(suite[key]).exists():
            raise BenchError(f"{params_path}: suite.{key} {suite[key]} does not exist")
    definition, pool = Path(suite["prompts"]).parent, Path(suite["pool"])
    if definition.resolve() == Path.cwd().resolve():
        raise BenchError(f"{params_path}: suite.prompts {suite['prompts']} must be in a folder of its own (with its "
                         "castings) to be mounted into a container, e.g. benchmark/prompts.yaml")
    return [Mount(params_path.resolve(), f"{WORKDIR}/params.yaml"), Mount(models_dir.resolve(), f"{WORKDIR}/models"),
            Mount(definition.resolve(), inside(definition)), Mount(pool.resolve(), inside(pool))]


def stage_command(*stage: str) -> list[str]:
    """`collapsebench` with the container's params, results and models folders, then the stage's arguments."""
    return ["collapsebench", "--params", f"{WORKDIR}/params.yaml", "--results", f"{WORKDIR}/results",
            "--models-dir", f"{WORKDIR}/models", *stage]


# ---------------------------------------------------------------- images

def scoring_image(dockerfile: str | None, base_image: str | None) -> ImageSource:
    """The image score and report share: docker/eval/Dockerfile (pinned, CUDA base by default), or the one
    `--image-dockerfile` names (the tests' CPU image)."""
    return ImageSource(repo_root=build_root(), origin="--image-dockerfile", dockerfile=dockerfile or SCORING_DOCKERFILE,
                       base_image=base_image)


def image_tag(repo_root: Path, dockerfile: str, args: Mapping[str, str]) -> str:
    """`collapsebench/<docker folder>:<hash of the filtered build context, Dockerfile and build args>`."""
    from docker.utils.build import exclude_paths

    ignore = repo_root / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")] if ignore.is_file() else []
    digest = hashlib.sha256(json.dumps(dict(args), sort_keys=True).encode())
    for relative in sorted(exclude_paths(str(repo_root), patterns, dockerfile=dockerfile)):
        path = repo_root / relative
        if path.is_file():
            digest.update(f"{relative}\0{sha256_file(path)}\0".encode())
    return f"collapsebench/{Path(dockerfile).parent.name}:{digest.hexdigest()[:16]}"


def uses_shared_base(source: ImageSource) -> bool:
    """Whether the Dockerfile builds on the shared base (it declares `ARG BENCH_BASE`)."""
    text = (source.repo_root / _dockerfile(source)).read_text(encoding="utf-8")
    return re.search(rf"^\s*ARG\s+{SHARED_BASE_ARG}\b", text, flags=re.MULTILINE | re.IGNORECASE) is not None


def base_args(source: ImageSource) -> dict[str, str]:
    """BASE_IMAGE when one is given; otherwise the Dockerfile's default (the pinned CUDA image) applies."""
    return {"BASE_IMAGE": source.base_image} if source.base_image else {}


# What a model.yaml may set in docker.build_args: only the upstream commit, as a full 40-hex commit. The base
# images are the runner's to choose, and the upstream repository is the one the reviewed Dockerfile names.
ALLOWED_BUILD_ARGS = ("UPSTREAM_COMMIT",)


def build_arg_problems(args: Mapping[str, object]) -> list[str]:
    """Why these model.yaml build args are refused (empty when they are acceptable)."""
    problems = [f"build arg {name!r} is not allowed (allowed: {', '.join(ALLOWED_BUILD_ARGS)})"
                for name in args if name not in ALLOWED_BUILD_ARGS]
    problems += [f"build arg {name} must be a full 40-hex commit, got {value!r}" for name, value in args.items()
                 if name in ALLOWED_BUILD_ARGS and not COMMIT.match(str(value))]
    return problems


def build_args(source: ImageSource, shared_base_id: str | None) -> dict[str, str]:
    """The image's build args: its own, plus BENCH_BASE = the shared base's image id when it builds on the
    shared base (BASE_IMAGE went to that base), else BASE_IMAGE itself."""
    args = {str(k): str(v) for k, v in source.build_args.items()}
    problems = build_arg_problems(args)
    if problems:
        raise BenchError(f"{source.origin}: " + "; ".join(problems))
    if shared_base_id is not None:
        return {**args, SHARED_BASE_ARG: shared_base_id}
    return {**args, **base_args(source)}


def ensure_image(client: Any, source: ImageSource, stream: TextIO) -> Any:
    """The stage's image: the pinned one (pulled if absent), or the one built from its Dockerfile (built, with
    the shared base first when it uses it, only if no image has its tag yet)."""
    from docker.errors import APIError, ImageNotFound

    if source.pinned:
        try:
            return client.images.get(source.pinned)
        except ImageNotFound:
            try:
                return client.images.pull(source.pinned)
            except APIError as error:
                raise BenchError(f"image {source.pinned} is not here and cannot be pulled ({error.explanation})") from error
    base_id = None
    if uses_shared_base(source):
        if not (source.repo_root / SHARED_BASE).is_file():
            raise BenchError(f"{source.origin}: {_dockerfile(source)} builds on the shared base but {SHARED_BASE} "
                             f"is not under {source.repo_root}")
        base_id = _build(client, source.repo_root, SHARED_BASE, base_args(source), stream).id
    return _build(client, source.repo_root, _dockerfile(source), build_args(source, base_id), stream)


def _dockerfile(source: ImageSource) -> str:
    if not source.dockerfile:
        raise BenchError(f"{source.origin}: names neither a Dockerfile nor a pinned image")
    if not (source.repo_root / source.dockerfile).is_file():
        raise BenchError(f"{source.origin}: {source.dockerfile} not found under {source.repo_root}")
    return source.dockerfile


def _build(client: Any, repo_root: Path, dockerfile: str, args: dict[str, str], stream: TextIO) -> Any:
    """The image with this context's tag, built from `dockerfile` if absent."""
    from docker.errors import APIError, ImageNotFound

    tag = image_tag(repo_root, dockerfile, args)
    try:
        return client.images.get(tag)
    except ImageNotFound:
        pass
    print(f"docker: building {tag} from {dockerfile}", file=stream)
    try:
        for event in client.api.build(path=str(repo_root), dockerfile=dockerfile, tag=tag, buildargs=args,
                                      rm=True, forcerm=True, decode=True):
            if "error" in event:
                raise BenchError(f"building {dockerfile} failed: {event['error'].strip()}")
            if event.get("stream"):
                stream.write(event["stream"])
    except APIError as error:
        raise BenchError(f"building {dockerfile} failed: {error.explanation}") from error
    return client.images.get(tag)


# ---------------------------------------------------------------- containers

def run_stage(source: ImageSource, spec: ContainerSpec, stream: TextIO = sys.stderr) -> int:
    """Get the image (building it if needed), run the container, and return its exit status."""
    client = connect()
    try:
        return run_container(client, ensure_image(client, source, stream), spec, stream)
    finally:
        client.close()


def container_user(writable: Sequence[Path]) -> str:
    """The caller's uid:gid; for a root caller the images' non-root user, who is given the writable folders."""
    if os.getuid() != 0:
        return f"{os.getuid()}:{os.getgid()}"
    for folder in writable:
        # Never through a link: a symlink planted in an output folder must not hand a host file to uid 10001.
        os.chown(folder, IMAGE_UID, IMAGE_UID, follow_symlinks=False)
        for parent, folders, files in os.walk(folder, followlinks=False):
            for name in folders + files:
                os.chown(os.path.join(parent, name), IMAGE_UID, IMAGE_UID, follow_symlinks=False)
    return f"{IMAGE_UID}:{IMAGE_UID}"


def run_container(client: Any, image: Any, spec: ContainerSpec, stream: TextIO = sys.stderr) -> int:
    """Start the locked-down container, stream its log, and return its exit status (it is removed afterwards)."""
    from docker.errors import APIError, NotFound
    from docker.types import DeviceRequest
    from docker.types import Mount as DockerMount

    writable = [m.source for m in spec.mounts if not m.read_only]
    for folder in writable:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        existing = client.containers.get(spec.name)
    except NotFound:
        existing = None
    if existing is not None:
        if existing.status in ("running", "restarting", "paused"):
            raise BenchError(f"container {spec.name} is already running ({spec.purpose}, another run); "
                             f"wait for it or stop it with `docker stop {spec.name}`")
        existing.remove(force=True)  # a finished, killed or never started earlier run
    gpu = None
    if spec.gpu is not None:
        ids = None if spec.gpu == "all" else [spec.gpu]
        gpu = [DeviceRequest(count=-1 if ids is None else None, device_ids=ids, capabilities=[["gpu"]])]
    environment = {"COLLAPSEBENCH_IMAGE_DIGEST": image.id, "COLLAPSEBENCH_RUNNER": "docker", "HF_HUB_OFFLINE": "1",
                   "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": HUB_CACHE, "HOME": "/tmp", "PYTHONUNBUFFERED": "1",
                   **spec.env}
    try:
        container = client.containers.run(
            image.id, spec.command, name=spec.name, detach=True, user=container_user(writable), working_dir=WORKDIR,
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], read_only=True,
            tmpfs={"/tmp": "rw,exec,nosuid,size=8g"}, environment=environment, device_requests=gpu,
            mounts=[DockerMount(m.target, str(m.source), type="bind", read_only=m.read_only) for m in spec.mounts],
            labels=spec.labels,
        )
    except APIError as error:
        _remove_if_present(client, spec.name)  # docker-py creates the container before starting it
        text = str(error.explanation or error)
        if gpu and ("device driver" in text or "gpu" in text.lower()):
            raise BenchError(f"{spec.purpose} needs a GPU but Docker cannot provide one ({text}); install the "
                             "NVIDIA driver and the NVIDIA Container Toolkit, then restart dockerd") from error
        raise BenchError(f"cannot start container {spec.name}: {text}") from error
    return _follow(container, spec, stream)


def _remove_if_present(client: Any, name: str) -> None:
    from docker.errors import NotFound

    try:
        client.containers.get(name).remove(force=True)
    except NotFound:
        pass


def _follow(container: Any, spec: ContainerSpec, stream: TextIO) -> int:
    """Stream the log until the container exits; on Ctrl-C or SIGTERM kill it. Always remove it."""
    kept = f"; {spec.kept}" if spec.kept else ""
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for chunk in container.logs(stream=True, follow=True):
            stream.write(chunk.decode("utf-8", "replace"))
            stream.flush()
        status = int(container.wait()["StatusCode"])
        container.reload()
        if container.attrs.get("State", {}).get("OOMKilled"):
            print(f"docker: {spec.name} was killed for lack of memory{kept}", file=stream)
        return status
    except KeyboardInterrupt:
        container.kill()
        print(f"docker: interrupted, killed {spec.name}{kept}", file=stream)
        raise
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
        container.remove(force=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
