"""The docker runner: one locked-down container per model (and shard) runs `collapsebench generate`.

The host side finds or builds the model's image (docker/<name>/Dockerfile,
context = repository root filtered by .dockerignore, tagged by a hash of
that context so an unchanged tree is never rebuilt), checks the weights are
in the model cache, and starts the container with:

- the GPU requested when the entry needs one (`gpu_memory_gb > 0`);
- no network (`network_mode="none"`), all capabilities dropped,
  `no-new-privileges`, a read-only root file system with a private /tmp;
- a non-root user: the caller's uid, or the images' `bench` user (10001)
  when the caller is root;
- params, models/, the prompts, the subject pool and the model cache mounted
  read-only, and only the model's (or shard's) output folder writable.

Inside, the command is `collapsebench generate MODEL --runner local`, so the
resumable, locked generation of generate.py runs unchanged; the image id is
handed in as COLLAPSEBENCH_IMAGE_DIGEST and lands in every manifest line. The
container's log is streamed to ours. Stopping the host process (Ctrl-C or
SIGTERM) kills the container; finished images are kept and a rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.generation.shards import shard_dir
from collapsebench.models.weights import cached, pins_of

IMAGE_UID = 10001  # the `bench` user every image under docker/ creates
WORKDIR = "/work"
HUB_CACHE = "/cache/huggingface/hub"


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # in the container
    read_only: bool = True


@dataclass
class DockerRun:
    """What one container needs, as resolved on the host."""

    config: ModelConfig
    repo_root: Path  # the build context
    params_path: Path
    params: dict[str, Any]
    models_dir: Path
    results_dir: Path
    shard: str | None = None
    hub_cache: Path | None = None
    base_image: str | None = None  # BASE_IMAGE build argument; None keeps the Dockerfile's default
    gpu: str = "all"  # "all" or one device id (shards on a multi-GPU host)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def needs_gpu(self) -> bool:
        return float(self.config.raw.get("gpu_memory_gb") or 0) > 0

    @property
    def host_out(self) -> Path:
        return shard_dir(self.results_dir / "models" / self.config.name, self.shard)

    @property
    def container_out(self) -> str:
        relative = self.host_out.relative_to(self.results_dir)
        return f"{WORKDIR}/results/{relative.as_posix()}"

    @property
    def container_name(self) -> str:
        suffix = f"-shard-{self.shard.replace('/', '-of-')}" if self.shard else ""
        return f"collapsebench-{self.config.name}{suffix}"


def connect() -> Any:
    """A docker-py client talking to a live engine, or a BenchError saying how to get one."""
    from docker.errors import DockerException

    import docker

    try:
        client = docker.from_env(version="auto")
        client.ping()
    except DockerException as error:
        raise BenchError(f"cannot reach a Docker engine ({error}); start dockerd (or Docker Desktop), "
                         "or run calibration models with --runner local") from error
    return client


def build_root(cwd: Path | None = None) -> Path:
    """The build context: the working folder if it is a checkout (docker/ + pyproject.toml), else the checkout
    this package is imported from (an editable install), so runs from a results-only folder still build."""
    for candidate in (Path(cwd or Path.cwd()), Path(__file__).resolve().parents[4]):
        if (candidate / "docker").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise BenchError("no collapsebench checkout to build images from: run from the repository root")


def run_in_docker(run: DockerRun, stream: TextIO = sys.stderr) -> int:
    """Generate `run.config`'s images in its container; the container's exit status (0 = all made)."""
    check_weights(run)
    client = connect()
    image = ensure_image(client, run, stream)
    return run_container(client, image, run, generate_command(run), stream)


def generate_command(run: DockerRun) -> list[str]:
    command = ["collapsebench", "--params", f"{WORKDIR}/params.yaml", "--results", f"{WORKDIR}/results",
               "--models-dir", f"{WORKDIR}/models", "generate", run.config.name, "--runner", "local"]
    return command + (["--shard", run.shard] if run.shard else [])


def check_weights(run: DockerRun) -> None:
    """Every pinned checkpoint must be in the host's model cache before a container is started."""
    pins = pins_of(run.config.adapter_settings())
    if not pins:
        return
    local = [pin.repo for pin in pins if pin.is_local]
    if local:
        raise BenchError(f"model {run.config.name}: local weight folders {local} cannot be mounted by the docker "
                         "runner; put the checkpoints in the Hugging Face cache instead")
    if run.hub_cache is None or not run.hub_cache.is_dir():
        raise BenchError(f"model {run.config.name} needs weights but the model cache {run.hub_cache} does not exist; "
                         "pass --model-cache or set HF_HUB_CACHE / HF_HOME")
    missing = [pin for pin in pins if not cached(pin, run.hub_cache)]
    if missing:
        names = ", ".join(f"{pin.repo}@{pin.revision or 'main'}" for pin in missing)
        commands = "; ".join(pin.download_command() for pin in missing)
        raise BenchError(f"model {run.config.name}: weights missing from the model cache {run.hub_cache}: {names}. "
                         f"With network and HF_HUB_CACHE={run.hub_cache}, run: {commands}")


def image_tag(run: DockerRun) -> str:
    """`collapsebench/<docker folder>:<hash of the filtered build context, Dockerfile and build args>`."""
    from docker.utils.build import exclude_paths

    dockerfile = _dockerfile(run)
    ignore = run.repo_root / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")] if ignore.is_file() else []
    digest = hashlib.sha256(json.dumps(build_args(run), sort_keys=True).encode())
    for relative in sorted(exclude_paths(str(run.repo_root), patterns, dockerfile=dockerfile)):
        path = run.repo_root / relative
        if path.is_file():
            digest.update(f"{relative}\0{sha256_file(path)}\0".encode())
    return f"collapsebench/{Path(dockerfile).parent.name}:{digest.hexdigest()[:16]}"


def build_args(run: DockerRun) -> dict[str, str]:
    args = {str(k): str(v) for k, v in (run.config.raw.get("docker", {}).get("build_args") or {}).items()}
    if run.base_image:
        args["BASE_IMAGE"] = run.base_image
    return args


def _dockerfile(run: DockerRun) -> str:
    spec = run.config.raw.get("docker") or {}
    dockerfile = spec.get("dockerfile")
    if not dockerfile:
        raise BenchError(f"{run.models_dir / run.config.name / 'model.yaml'}: runner docker needs docker.dockerfile "
                         "or docker.image")
    if not (run.repo_root / dockerfile).is_file():
        raise BenchError(f"{run.models_dir / run.config.name / 'model.yaml'}: docker.dockerfile {dockerfile} not found "
                         f"under {run.repo_root}")
    return dockerfile


def ensure_image(client: Any, run: DockerRun, stream: TextIO) -> Any:
    """The model's image: a pinned `docker.image`, or the image built from its Dockerfile (built if absent)."""
    from docker.errors import APIError, ImageNotFound

    pinned = (run.config.raw.get("docker") or {}).get("image")
    if pinned:
        try:
            return client.images.get(pinned)
        except ImageNotFound:
            try:
                return client.images.pull(pinned)
            except APIError as error:
                raise BenchError(f"image {pinned} is not here and cannot be pulled ({error.explanation})") from error
    tag = image_tag(run)
    try:
        return client.images.get(tag)
    except ImageNotFound:
        pass
    dockerfile = _dockerfile(run)
    print(f"docker: building {tag} from {dockerfile}", file=stream)
    try:
        for event in client.api.build(path=str(run.repo_root), dockerfile=dockerfile, tag=tag, buildargs=build_args(run),
                                      rm=True, forcerm=True, decode=True):
            if "error" in event:
                raise BenchError(f"building {dockerfile} failed: {event['error'].strip()}")
            if event.get("stream"):
                stream.write(event["stream"])
    except APIError as error:
        raise BenchError(f"building {dockerfile} failed: {error.explanation}") from error
    return client.images.get(tag)


def plan_mounts(run: DockerRun) -> list[Mount]:
    """Inputs read-only at the paths params.yaml names (relative ones under /work); the output folder writable."""
    suite = run.params["suite"]
    mounts = [Mount(run.params_path.resolve(), f"{WORKDIR}/params.yaml"),
              Mount(run.models_dir.resolve(), f"{WORKDIR}/models")]
    for key in ("prompts", "pool"):
        host = Path(suite[key])
        target = host.as_posix() if host.is_absolute() else f"{WORKDIR}/{host.as_posix()}"
        if not host.exists():
            raise BenchError(f"{run.params_path}: suite.{key} {host} does not exist")
        mounts.append(Mount(host.resolve(), target))
    if run.hub_cache is not None and run.hub_cache.is_dir():
        mounts.append(Mount(run.hub_cache.resolve(), HUB_CACHE))
    mounts.append(Mount(run.host_out.resolve(), run.container_out, read_only=False))
    return mounts


def container_user(out_dir: Path) -> str:
    """The caller's uid:gid; for a root caller the images' non-root user, who is given the output folder."""
    if os.getuid() != 0:
        return f"{os.getuid()}:{os.getgid()}"
    for path in [out_dir, *out_dir.rglob("*")]:
        os.chown(path, IMAGE_UID, IMAGE_UID)
    return f"{IMAGE_UID}:{IMAGE_UID}"


def run_container(client: Any, image: Any, run: DockerRun, command: list[str], stream: TextIO) -> int:
    """Start the locked-down container, stream its log, and return its exit status (it is removed afterwards)."""
    from docker.errors import APIError, NotFound
    from docker.types import DeviceRequest
    from docker.types import Mount as DockerMount

    run.host_out.mkdir(parents=True, exist_ok=True)
    mounts = plan_mounts(run)
    name = run.container_name
    try:
        existing = client.containers.get(name)
    except NotFound:
        existing = None
    if existing is not None:
        if existing.status in ("running", "restarting", "paused"):
            raise BenchError(f"container {name} is already running this model (another run); "
                             f"wait for it or stop it with `docker stop {name}`")
        existing.remove(force=True)  # a finished, killed or never started earlier run
    gpu = None
    if run.needs_gpu:
        ids = None if run.gpu == "all" else [run.gpu]
        gpu = [DeviceRequest(count=-1 if ids is None else None, device_ids=ids, capabilities=[["gpu"]])]
    environment = {"COLLAPSEBENCH_IMAGE_DIGEST": image.id, "COLLAPSEBENCH_RUNNER": "docker", "HF_HUB_OFFLINE": "1",
                   "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": HUB_CACHE, "HOME": "/tmp", "PYTHONUNBUFFERED": "1",
                   **run.extra_env}
    try:
        container = client.containers.run(
            image.id, command, name=name, detach=True, user=container_user(run.host_out), working_dir=WORKDIR,
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], read_only=True,
            tmpfs={"/tmp": "rw,exec,nosuid,size=8g"}, environment=environment, device_requests=gpu,
            mounts=[DockerMount(m.target, str(m.source), type="bind", read_only=m.read_only) for m in mounts],
            labels={"collapsebench.model": run.config.name, "collapsebench.shard": run.shard or ""},
        )
    except APIError as error:
        _remove_if_present(client, name)  # docker-py creates the container before starting it
        text = str(error.explanation or error)
        if gpu and ("device driver" in text or "gpu" in text.lower()):
            raise BenchError(f"model {run.config.name} needs a GPU but Docker cannot provide one ({text}); install the "
                             "NVIDIA driver and the NVIDIA Container Toolkit, then restart dockerd") from error
        raise BenchError(f"cannot start container {name}: {text}") from error
    return _follow(container, name, stream)


def _remove_if_present(client: Any, name: str) -> None:
    from docker.errors import NotFound

    try:
        client.containers.get(name).remove(force=True)
    except NotFound:
        pass


def _follow(container: Any, name: str, stream: TextIO) -> int:
    """Stream the log until the container exits; on Ctrl-C or SIGTERM kill it. Always remove it."""
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
            print(f"docker: {name} was killed for lack of memory; finished images are kept, rerun to resume",
                  file=stream)
        return status
    except KeyboardInterrupt:
        container.kill()
        print(f"docker: interrupted, killed {name}; finished images are kept, rerun to resume", file=stream)
        raise
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
        container.remove(force=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def default_hub_cache() -> Path:
    """Where the host's Hugging Face hub cache is (the same rules the hub library uses)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"))
    return home / "hub"
