"""Stages in pinned, locked-down containers: the engine-generic part every docker runner shares.

A stage that runs in a container (generate for a model, score, report) is
the same `collapsebench` command run with `--runner local` inside an image,
so the numbers depend on the image's pinned packages and not on the host's.
This module knows how to:

- reach the engine (`connect`): Docker, or Podman through its Docker-compatible
  API (the socket `podman system service` serves), so that images are built,
  pulled, followed and removed by the same docker-py calls on both; and find
  the checkout to build from (`build_root`);
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
  writable), the image id in COLLAPSEBENCH_IMAGE_DIGEST and the engine's
  name in COLLAPSEBENCH_RUNNER (docker or podman); a GPU only when asked for;
- stream its log to ours, kill it on Ctrl-C or SIGTERM, and always remove it.

Podman differs from Docker in one call: the container is created through
Podman's own API (`podman_spec`), with the same lockdown spelled in its terms,
because its Docker-compatible create (Podman 4) ignores Docker's GPU request
(DeviceRequests) and cannot name CDI devices, Podman's way to a GPU
(`nvidia.com/gpu=all`). The container is then started, followed and removed
through the Docker-compatible API like a Docker one. A rootless Podman gets
`keep-id`, so the caller's uid inside is the caller's uid outside and the
output folder is writable without a chown. Where the engine cannot start a
container at all, the error says which host setting is missing (a GPU's CDI
specification, containers.conf's runtime or default_ulimits; see
scripts/ci_podman.sh). Apptainer, which has no daemon, is the generation
runner's own (generation/runners/apptainer.py).

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
ENGINES = ("docker", "podman", "apptainer")  # what runs a `runner: docker` stage's container (generate.engine)
PODMAN_SOCKET = "/run/podman/podman.sock"  # rootful Podman's default; rootless: $XDG_RUNTIME_DIR/podman/podman.sock
PODMAN_CREATE = "/v4.0.0/libpod/containers/create"  # Podman's own create endpoint (served on the same socket)
TMP_OPTIONS = ("rw", "exec", "nosuid", "size=8g")  # the private /tmp on the read-only root


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


def connect(engine: str = "docker") -> Any:
    """A docker-py client talking to a live engine (docker: DOCKER_HOST or Docker's socket; podman: see
    `podman_url`), or a BenchError saying how to get one. Podman answering Docker's socket (a podman-docker
    setup) is fine, since run_container asks which engine it talks to; Docker answering where Podman was asked
    for is refused, as the run would not be what was asked."""
    from docker.errors import DockerException

    import docker

    try:
        if engine == "podman":
            client = docker.DockerClient(base_url=podman_url(), version="auto")
        else:
            client = docker.from_env(version="auto")
        client.ping()
        found = engine_of(client) if engine == "podman" else engine
    except DockerException as error:
        if engine == "podman":
            raise BenchError(f"cannot reach a Podman service at {podman_url()} ({error}); start one with "
                             f"`podman system service --time=0 {podman_url()}` (or set CONTAINER_HOST), "
                             "or run with --engine docker or --runner local") from error
        raise BenchError(f"cannot reach a Docker engine ({error}); start dockerd (or Docker Desktop), "
                         "or run with --runner local") from error
    if found != engine:
        client.close()
        raise BenchError(f"the engine at {podman_url()} is {found}, not podman: run with --engine {found}, "
                         "or point CONTAINER_HOST at a Podman service")
    return client


def podman_url() -> str:
    """Where Podman's API is served: CONTAINER_HOST (Podman's own setting), else DOCKER_HOST, else the default
    socket of a rootful (root caller) or rootless Podman."""
    for variable in ("CONTAINER_HOST", "DOCKER_HOST"):
        if os.environ.get(variable):
            return os.environ[variable]
    if os.getuid() == 0:
        return f"unix://{PODMAN_SOCKET}"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix://{runtime}/podman/podman.sock"


def engine_of(client: Any) -> str:
    """podman when the engine says it is Podman (its version lists a "Podman Engine" component), else docker."""
    components = client.version().get("Components") or []
    return "podman" if any("podman" in str(part.get("Name", "")).lower() for part in components) else "docker"


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


def choose_engine(flag: str | None, params: Mapping[str, Any], params_path: Path) -> str:
    """`--engine` when given, else params.yaml `generate.engine`, else docker: what runs the model's container."""
    engine = flag or (params.get("generate") or {}).get("engine") or "docker"
    if engine not in ENGINES:
        raise BenchError(f"{params_path}: generate.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


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

def run_stage(source: ImageSource, spec: ContainerSpec, stream: TextIO = sys.stderr, engine: str = "docker") -> int:
    """Get the image (building it if needed), run the container, and return its exit status."""
    client = connect(engine)
    try:
        return run_container(client, ensure_image(client, source, stream), spec, stream)
    finally:
        client.close()


def container_user(writable: Sequence[Path]) -> str:
    """The caller's uid:gid; for a root caller the images' non-root user, who is given the writable folders."""
    for folder in writable:  # a folder that is itself a link would be mounted, and walked below, at its target
        if folder.is_symlink():
            raise BenchError(f"{folder}: a symlink where a writable folder belongs; refusing to chown or mount it")
    if os.getuid() != 0:
        return f"{os.getuid()}:{os.getgid()}"
    for folder in writable:
        # Never through a link: a symlink planted in an output folder must not hand a host file to uid 10001.
        os.chown(folder, IMAGE_UID, IMAGE_UID, follow_symlinks=False)
        for parent, folders, files in os.walk(folder, followlinks=False):
            for name in folders + files:
                os.chown(os.path.join(parent, name), IMAGE_UID, IMAGE_UID, follow_symlinks=False)
    return f"{IMAGE_UID}:{IMAGE_UID}"


def container_env(spec: ContainerSpec, image_id: str, engine: str) -> dict[str, str]:
    """What every stage container is given: the image id and engine (provenance), offline hub settings."""
    return {"COLLAPSEBENCH_IMAGE_DIGEST": image_id, "COLLAPSEBENCH_RUNNER": engine, "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": HUB_CACHE, "HOME": "/tmp", "PYTHONUNBUFFERED": "1",
            **spec.env}


def gpu_ids(gpu: str) -> list[str]:
    """The device ids in a `--gpu` value other than "all" (one id, or Slurm's comma-separated list)."""
    return [part.strip() for part in gpu.split(",") if part.strip()]


def run_container(client: Any, image: Any, spec: ContainerSpec, stream: TextIO = sys.stderr) -> int:
    """Start the locked-down container, stream its log, and return its exit status (it is removed afterwards)."""
    from docker.errors import APIError, NotFound

    engine = engine_of(client)
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
                             f"wait for it or stop it with `{engine} stop {spec.name}`")
        existing.remove(force=True)  # a finished, killed or never started earlier run
    environment = container_env(spec, image.id, engine)
    user = container_user(writable)
    try:
        if engine == "podman":
            container = _start_podman(client, podman_spec(image.id, spec, user, environment))
        else:
            container = client.containers.run(image.id, spec.command, detach=True,
                                              **docker_options(spec, user, environment))
    except APIError as error:
        _remove_if_present(client, spec.name)  # created before it failed to start
        raise _start_error(engine, spec, str(error.explanation or error)) from error
    return _follow(container, spec, stream, engine)


def docker_options(spec: ContainerSpec, user: str, environment: dict[str, str]) -> dict[str, Any]:
    """docker-py's `containers.run` options for the locked-down container (see the module docstring)."""
    from docker.types import DeviceRequest
    from docker.types import Mount as DockerMount

    gpu = None
    if spec.gpu is not None:
        ids = None if spec.gpu == "all" else [spec.gpu]
        gpu = [DeviceRequest(count=-1 if ids is None else None, device_ids=ids, capabilities=[["gpu"]])]
    return {"name": spec.name, "user": user, "working_dir": WORKDIR, "network_mode": "none", "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"], "read_only": True, "tmpfs": {"/tmp": ",".join(TMP_OPTIONS)},
            "environment": environment, "device_requests": gpu, "labels": spec.labels,
            "mounts": [DockerMount(m.target, str(m.source), type="bind", read_only=m.read_only) for m in spec.mounts]}


def podman_spec(image_id: str, spec: ContainerSpec, user: str, environment: dict[str, str]) -> dict[str, Any]:
    """Podman's create request (its SpecGenerator) for the same locked-down container as `docker_options`; a GPU
    is its CDI device (`nvidia.com/gpu=all`, or one per id)."""
    body: dict[str, Any] = {
        "name": spec.name, "image": image_id, "command": spec.command, "user": user, "work_dir": WORKDIR,
        "env": environment, "labels": spec.labels, "netns": {"nsmode": "none"}, "cap_drop": ["ALL"],
        "no_new_privileges": True, "read_only_filesystem": True,
        "mounts": [{"destination": "/tmp", "source": "tmpfs", "type": "tmpfs", "options": list(TMP_OPTIONS)}]
        + [{"destination": m.target, "source": str(m.source), "type": "bind", "options": ["ro" if m.read_only else "rw"]}
           for m in spec.mounts],
    }
    if spec.gpu is not None:
        ids = ["all"] if spec.gpu == "all" else gpu_ids(spec.gpu)
        body["devices"] = [{"path": f"nvidia.com/gpu={device}"} for device in ids]
    if os.getuid() != 0:
        body["userns"] = {"nsmode": "keep-id"}  # rootless: the caller's uid inside owns the output folder outside
    return body


def _start_podman(client: Any, body: dict[str, Any]) -> Any:
    """Create the container through Podman's own API, then start it through the Docker-compatible one."""
    from docker.errors import APIError

    response = client.api.post(f"{client.api.base_url}{PODMAN_CREATE}", json=body)
    if response.status_code != 201:
        try:
            message = str(response.json().get("message") or response.text)
        except ValueError:  # not Podman's JSON error (a proxy, a truncated answer)
            message = response.text or str(response.reason)
        raise APIError(f"podman create: {message}", response=response, explanation=message)
    container = client.containers.get(response.json()["Id"])
    container.start()
    return container


def _start_error(engine: str, spec: ContainerSpec, text: str) -> BenchError:
    """Why the container did not start, with the host setting that is missing where the engine's error says."""
    lowered = text.lower()
    if engine == "podman" and spec.gpu is not None and ("cdi" in lowered or "nvidia.com/gpu" in lowered):
        return BenchError(f"{spec.purpose} needs a GPU but Podman cannot provide one ({text}); install the NVIDIA "
                          "driver and the NVIDIA Container Toolkit and write its CDI specification "
                          "(`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`)")
    if engine == "docker" and spec.gpu is not None and ("device driver" in text or "gpu" in lowered):
        return BenchError(f"{spec.purpose} needs a GPU but Docker cannot provide one ({text}); install the "
                          "NVIDIA driver and the NVIDIA Container Toolkit, then restart dockerd")
    if engine == "podman" and "rlimit" in lowered:
        return BenchError(f"cannot start container {spec.name}: {text}. Podman asks for resource limits above its "
                          "own (it cannot raise them without CAP_SYS_RESOURCE, e.g. inside a container): set "
                          "default_ulimits in containers.conf to the Podman service's own hard limits, as "
                          "scripts/ci_podman.sh does")
    if engine == "podman" and "hybrid mode" in lowered:
        return BenchError(f"cannot start container {spec.name}: {text}. crun cannot run on this host's mixed "
                          "cgroup v1/v2 hierarchy: set runtime = \"runc\" under [engine] in containers.conf, as "
                          "scripts/ci_podman.sh does")
    return BenchError(f"cannot start container {spec.name}: {text}")


def _remove_if_present(client: Any, name: str) -> None:
    from docker.errors import NotFound

    try:
        client.containers.get(name).remove(force=True)
    except NotFound:
        pass


def _follow(container: Any, spec: ContainerSpec, stream: TextIO, engine: str) -> int:
    """Stream the log until the container exits; on Ctrl-C or SIGTERM kill it. Always remove it."""
    kept = f"; {spec.kept}" if spec.kept else ""
    try:
        with sigterm_interrupts():
            try:
                for chunk in container.logs(stream=True, follow=True):
                    stream.write(chunk.decode("utf-8", "replace"))
                    stream.flush()
                status = int(container.wait()["StatusCode"])
                container.reload()
                if container.attrs.get("State", {}).get("OOMKilled"):
                    print(f"{engine}: {spec.name} was killed for lack of memory{kept}", file=stream)
                return status
            except KeyboardInterrupt:
                container.kill()
                print(f"{engine}: interrupted, killed {spec.name}{kept}", file=stream)
                raise
    finally:
        container.remove(force=True)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile (in the main thread), so that whoever follows a container stops
    it on `kill`, Slurm's stop or a launcher's stop as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    restore = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, restore)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
