"""Each model image's pinned packages run its adapter's tests, so an API our code uses that an image lacks fails in
CI, not on the GPU runner.

The model images (docker/mosaic, docker/xverse, docker/diffusers) install collapsebench with `--no-deps` next to
their upstream's pins (MOSAIC: transformers 4.47.1, diffusers 0.32.0), while the package is developed against
current releases. The slow test builds each image's Python environment from docker/<name>/requirements.txt, with
CPU torch 2.13.0 standing in for the image's CUDA torch, in a venv cached under .cache/image-envs
(scripts/image_env.py), and runs tests/test_adapters_<name>.py in it. The fast test checks that the Dockerfile
installs exactly that file, so what the image gets and what is tested cannot drift apart.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from types import ModuleType

import pytest
from conftest import REPO


def load_image_env() -> ModuleType:
    """scripts/image_env.py as a module."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import image_env
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return image_env


image_env = load_image_env()
IMAGES = image_env.model_images()
REQUIREMENT_OPTIONS = ("-r", "--requirement")


def pip_installs(dockerfile_text: str) -> list[list[str]]:
    """The arguments of every `pip install` in a Dockerfile's RUN instructions."""
    installs = []
    for line in re.sub(r"\\\n", " ", dockerfile_text).splitlines():
        if line.lstrip().upper().startswith("RUN "):
            for command in re.split(r"&&|\|\||;", line.lstrip()[4:]):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:
                    installs.append(words[2:])
    return installs


def test_every_model_image_has_adapter_tests_to_run() -> None:
    assert {image.name for image in IMAGES} >= {"diffusers", "mosaic", "xverse"}


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_the_dockerfile_installs_exactly_its_requirements_file(image: image_env.ModelImage) -> None:
    pins = image_env.requirement_lines(image.requirements)
    assert [pin for pin in pins if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", pin)] == [], \
        f"{image.requirements.relative_to(REPO)}: every requirement of an image is pinned, name==version"
    assert "torch" in {image_env.distribution(pin) for pin in pins}

    text = (image.folder / "Dockerfile").read_text(encoding="utf-8")
    copied = re.findall(rf"^COPY\s+docker/{image.name}/requirements\.txt\s+(\S+)\s*$", text, flags=re.MULTILINE)
    assert len(copied) == 1, f"docker/{image.name}/Dockerfile must COPY docker/{image.name}/requirements.txt once"
    installs = pip_installs(text)
    from_file = [args[index + 1] for args in installs for index, word in enumerate(args[:-1])
                 if word in REQUIREMENT_OPTIONS]
    assert from_file == copied, f"docker/{image.name}/Dockerfile must `pip install -r` the requirements it copies"
    for args in installs:  # nothing else: a package named here would be in the image but not in the test
        named = [word for index, word in enumerate(args) if not word.startswith("-")
                 and (index == 0 or args[index - 1] not in REQUIREMENT_OPTIONS)]
        assert named in ([], ["/opt/collapsebench"]), \
            f"docker/{image.name}/Dockerfile installs {named}: put pins in docker/{image.name}/requirements.txt"


@pytest.mark.slow
@pytest.mark.images
@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_adapter_tests_pass_with_the_image_pins(image: image_env.ModelImage) -> None:
    try:
        result = image_env.run_tests(image)
    except image_env.IndexUnreachable as error:
        if os.environ.get("CI"):
            pytest.fail(f"{error}; CI installs from the package index, so this test must run there")
        print(f"SKIP reason: {error}")
        pytest.skip(str(error))
    assert result.returncode == 0, (
        f"tests/test_adapters_{image.name}.py fails with docker/{image.name}/requirements.txt "
        f"(venv: {image_env.env_folder(image).relative_to(REPO)}):\n{result.stdout[-8000:]}{result.stderr[-2000:]}")
