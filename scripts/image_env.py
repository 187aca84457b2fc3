#!/usr/bin/env python3
"""A model image's Python packages in a local virtualenv, to run that adapter's tests against the image's pins.

Why this exists: each model image (docker/<name>/Dockerfile) installs collapsebench with `--no-deps` next to its
upstream's pins (MOSAIC's transformers 4.47.1 and diffusers 0.32.0, for instance), while the package is developed
against current releases. An API our code uses that the image's versions lack would otherwise show up only on the
GPU runner. This installs the image's own list, docker/<name>/requirements.txt (the file its Dockerfile
installs), into a Python 3.11 venv (the images' Python, docker/base) and runs tests/test_adapters_<name>.py there.

    python scripts/image_env.py docker/mosaic [PYTEST_ARGS...]    # build (or reuse) the venv, run the tests

What differs from the image, and why:

* torch is the CPU build of torch==2.13.0 (from TORCH_CPU_INDEX when set, as in scripts/install.sh) in place of
  the image's CUDA build, which is gigabytes of CUDA libraries no CPU test uses. torchvision is left out: each
  release requires its own torch (0.19.1 requires 2.4.1), and our code must not need it (the upstream code that
  imports it is stood in for by the tests). So the venv tests our code against the image's transformers,
  diffusers, huggingface_hub, numpy, ..., not against its torch.
* Wheels only (`--only-binary=:all:`): installs stay fast and need no compiler, and a pin without a wheel for
  Python 3.11 on this platform is named as such instead of failing somewhere in a source build.
* Added for the tests alone: the `dev` extra of pyproject.toml (pytest) and docker/eval/requirements-no-deps.txt
  (open_clip_torch, whose CLIP vocabulary file the diffusers tests build a tokenizer from), and collapsebench
  itself as an editable install, so the venv always tests the working tree.

The venv lives in .cache/image-envs/<name>-<hash>, the hash taken over everything installed (the requirements
file's text, the extras, the torch pin and index, this checkout's path), so a changed pin builds a new venv and
an unchanged one is reused without touching the network.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "image-envs"
PYTHON = "3.11"  # the images' Python (docker/base/Dockerfile)
TORCH = "torch==2.13.0"  # the CPU stand-in for each image's CUDA torch, the version scripts/install.sh installs
DROPPED = ("torch", "torchvision")  # the image's own, replaced by TORCH and left out (see above)
NO_DEPS_EXTRAS = REPO / "docker" / "eval" / "requirements-no-deps.txt"
HASH_LENGTH = 12  # hex digits of the content hash in a venv folder's name
READY = ".ready"  # written last: a venv folder without it is a build that did not finish
# urllib3's and the resolver's words for a registry that cannot be reached (as opposed to a pin it does not have).
UNREACHABLE = re.compile(r"NewConnectionError|ConnectTimeoutError|ReadTimeoutError|ProxyError|Max retries exceeded"
                         r"|Temporary failure in name resolution|Name or service not known|Network is unreachable"
                         r"|Connection refused|Failed to establish a new connection")
NO_WHEEL = re.compile(r"No matching distribution found for (\S+)")


class ImageEnvError(Exception):
    """The venv cannot be built; the message says why and what to change."""


class IndexUnreachable(ImageEnvError):
    """The package index cannot be reached: nothing is wrong with the pins, the test cannot run here."""


@dataclass(frozen=True)
class ModelImage:
    """A model image (docker/<name>/) and the adapter tests that run against its pins."""

    name: str

    @property
    def folder(self) -> Path:
        return REPO / "docker" / self.name

    @property
    def requirements(self) -> Path:
        return self.folder / "requirements.txt"

    @property
    def tests(self) -> Path:
        return REPO / "tests" / f"test_adapters_{self.name}.py"


def model_images() -> list[ModelImage]:
    """Every docker/<name>/ with adapter tests of the same name (the scoring images docker/eval and docker/cpu
    have none: their pins are the development environment's own, tested by the whole suite)."""
    return [ModelImage(folder.name) for folder in sorted((REPO / "docker").iterdir())
            if folder.is_dir() and ModelImage(folder.name).tests.is_file()]


def canonical(name: str) -> str:
    """A distribution name as the package index compares them (PEP 503): `Pillow` and `pillow` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip requirements file without comments and blank lines; only plain requirements,
    because an option (-r, --index-url, ...) would install something this test does not see."""
    if not path.is_file():
        raise ImageEnvError(f"{path.relative_to(REPO)} is missing: a model image keeps its pins there "
                            "(its Dockerfile installs it with `pip install -r`)")
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*", "", raw).strip()  # pip's rule: `#` at the start or after a space
        if line.startswith("-"):
            raise ImageEnvError(f"{path.relative_to(REPO)}:{number}: {line!r}: only plain requirements belong here")
        if line:
            lines.append(line)
    return lines


def distribution(requirement: str) -> str:
    """The canonical distribution name a requirement line starts with."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        raise ImageEnvError(f"cannot read a distribution name in requirement {requirement!r}")
    return canonical(match.group(0))


def image_pins(image: ModelImage) -> list[str]:
    """The image's requirements with torch and torchvision taken out (TORCH stands in for both)."""
    return [line for line in requirement_lines(image.requirements) if distribution(line) not in DROPPED]


def dev_extras() -> list[str]:
    """pyproject.toml's `dev` extra: what the tests themselves need (pytest)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["optional-dependencies"]["dev"])


def torch_index() -> list[str]:
    """pip's index option for torch: PyTorch's CPU-only index where TORCH_CPU_INDEX names it (CI), as
    scripts/install.sh does; otherwise the default index, whose Linux torch==2.13.0 is the CUDA build."""
    index = os.environ.get("TORCH_CPU_INDEX", "")
    return ["--index-url", index] if index else []


def install_plan(image: ModelImage, folder: Path) -> list[list[str]]:
    """The `pip install` arguments that make the venv in `folder`, in order. torch goes first, alone, so the
    image's packages find it installed; the constraint then keeps any of them from replacing it."""
    return [
        [*torch_index(), "--only-binary=:all:", TORCH],
        ["--only-binary=:all:", "--constraint", str(folder / "constraints.txt"),
         "--requirement", str(folder / "requirements.txt"), *dev_extras()],
        ["--only-binary=:all:", "--no-deps", "--requirement", str(NO_DEPS_EXTRAS)],
        ["--no-deps", "--editable", str(REPO)],
    ]


def env_folder(image: ModelImage) -> Path:
    """.cache/image-envs/<name>-<hash of everything the venv is made of>."""
    content = {"python": PYTHON, "pins": image_pins(image), "no_deps": requirement_lines(NO_DEPS_EXTRAS),
               "plan": install_plan(image, Path("<venv>"))}  # the plan has the extras, torch's index, REPO
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:HASH_LENGTH]
    return CACHE / f"{image.name}-{digest}"


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def base_python() -> str:
    """A Python 3.11 to make the venv with: this one when it is 3.11, else python3.11 on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON:
        return sys.executable
    found = shutil.which(f"python{PYTHON}")
    if found is None:
        raise ImageEnvError(f"no Python {PYTHON} found (the images' Python, docker/base): put python{PYTHON} on PATH")
    return found


@contextmanager
def locked(image: ModelImage) -> Iterator[None]:
    """One build of an image's venv at a time (two test runs in one checkout would otherwise collide)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{image.name}.lock", "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pip(folder: Path, arguments: Sequence[str], image: ModelImage) -> None:
    """`pip install ARGUMENTS` in the venv; a failure is explained: unreachable index, missing wheel, or pip's own
    last lines (a conflict between the pins and TORCH, for instance)."""
    # --no-compile: byte-compiling every module of torch and transformers at install time takes longer than the
    # install itself; the tests compile, once, only what they import.
    command = [str(venv_python(folder)), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile",
               *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    unreachable = UNREACHABLE.search(output)
    if unreachable:
        raise IndexUnreachable(f"the package index cannot be reached ({unreachable.group(0)}), so the "
                               f"{image.name} image's packages cannot be installed")
    missing = NO_WHEEL.search(output)
    if missing:
        raise ImageEnvError(
            f"{image.requirements.relative_to(REPO)}: no wheel of {missing.group(1)} for Python {PYTHON} on "
            f"{platform.system()} {platform.machine()} (installs here take wheels only; the image's pip would "
            "try to build it from source). Pin a version with such a wheel.")
    tail = "\n".join([line for line in output.strip().splitlines() if not line.startswith("WARNING: ")][-25:])
    raise ImageEnvError(f"pip install {' '.join(arguments)} failed for the {image.name} image:\n{tail}")


def probe_index(folder: Path, image: ModelImage) -> None:
    """IndexUnreachable within a minute when the index cannot be reached, rather than after pip's own retries at
    the configured timeout for every package (many minutes where connections hang instead of failing)."""
    command = [str(venv_python(folder)), "-m", "pip", "index", "versions", "--disable-pip-version-check",
               "--retries", "2", "--timeout", "20", distribution(dev_extras()[0])]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    unreachable = UNREACHABLE.search(result.stdout + result.stderr)
    if result.returncode != 0 and unreachable:
        raise IndexUnreachable(f"the package index cannot be reached ({unreachable.group(0)}), so the "
                               f"{image.name} image's packages cannot be installed")


def ensure(image: ModelImage) -> Path:
    """The image's venv, built now unless a finished one with the same content exists; older ones are removed."""
    folder = env_folder(image)
    with locked(image):
        if (folder / READY).is_file():
            return folder
        for stale in CACHE.glob(f"{image.name}-*"):  # this image's older venvs, not those of an image `<name>-x`
            if re.fullmatch(rf"{re.escape(image.name)}-[0-9a-f]{{{HASH_LENGTH}}}", stale.name):
                shutil.rmtree(stale)
        made = subprocess.run([base_python(), "-m", "venv", str(folder)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise ImageEnvError(f"python{PYTHON} -m venv failed: {made.stderr.strip()}")
        probe_index(folder, image)
        (folder / "requirements.txt").write_text("\n".join(image_pins(image)) + "\n", encoding="utf-8")
        (folder / "constraints.txt").write_text(TORCH + "\n", encoding="utf-8")
        for arguments in install_plan(image, folder):
            pip(folder, arguments, image)
        (folder / READY).write_text(json.dumps(install_plan(image, folder), indent=1) + "\n", encoding="utf-8")
    return folder


def run_tests(image: ModelImage, pytest_args: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """tests/test_adapters_<name>.py in the image's venv (built if needed), from the repository root."""
    folder = ensure(image)
    # Bytecode goes into the venv folder, also where PYTHONDONTWRITEBYTECODE is set: installs skip compiling
    # (see `pip`), so the first run compiles what the tests import and later runs reuse it; the checkout gets none.
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    environment["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    command = [str(venv_python(folder)), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               str(image.tests.relative_to(REPO)), *pytest_args]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the image's folder, docker/<name>")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    args = parser.parse_args(argv)
    image = ModelImage(args.folder.resolve().name)
    if image not in model_images():
        parser.error(f"{args.folder} is not a model image (known: {', '.join(i.name for i in model_images())})")
    try:
        result = run_tests(image, args.pytest_args)
    except ImageEnvError as error:
        print(f"image_env: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
