"""Building results submissions for tests: one honest submission made by `generate`, and ways to break it.

The honest submission is what an author gets by running `collapsebench
generate` with their own adapter and copying the manifest and images: here
the clone calibration adapter at 256 px (the smallest accepted size; its flat
images keep copies and decoding fast) over the real 75 prompts x 3 seeds, on
the synthetic test pool.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, make_pool
from PIL import Image

from collapsebench.benchmark.casting import cast_suite, load_instance
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.runlog import RUNLOG
from collapsebench.generation.generate import run_generate
from collapsebench.intake.submission import Benchmark

SEEDS = (0, 1, 2)
NAME = "acme-net"
MODEL_YAML = {
    "schema_version": 1, "name": NAME, "display_name": "ACME-Net (results submitted by the authors)", "kind": "model",
    "authors": ["A. Author"], "license": "MIT", "code": "https://example.org/acme-net", "adapter": "acme-net",
    "runner": "submitted", "settings": {"steps": 28, "guidance": 3.5}, "gpu_memory_gb": 24,
}
# A model folder (not a submission) of the kind a model pull request adds: a diffusers pipeline at a pinned commit.
FLUX2 = {
    "schema_version": 1, "name": "acme-flux", "display_name": "FLUX.2 [dev]", "kind": "model",
    "authors": ["Black Forest Labs"], "license": "other", "paper": "https://example.org/flux2",
    "adapter": "diffusers", "runner": "docker", "docker": {"dockerfile": "docker/acme-flux/Dockerfile"},
    "pipeline": {"class": "Flux2Pipeline", "repo": "black-forest-labs/FLUX.2-dev",
                 "revision": "0123456789abcdef0123456789abcdef01234567"},
    "settings": {"height": 1024, "width": 1024, "steps": 28, "guidance": 4.0}, "gpu_memory_gb": 80,
}


SMALL_PROMPTS = 6  # the first prompts only: same checks, 18 files per copy instead of 225 (file creation is slow)


@functools.cache
def pool_folder() -> Path:
    """The synthetic pool submissions are made on (make_pool is deterministic: same bytes, same pool id)."""
    return make_pool(Path(tempfile.mkdtemp(prefix="collapsebench-kit-")) / "data")


def benchmark(prompts: int | None = None) -> Benchmark:
    """The real benchmark (75 prompts x 3 seeds) as cast for the kit's pool, or its first `prompts` prompts."""
    params = {"suite": {"prompts": str(REPO / "benchmark/prompts.yaml"), "pool": str(pool_folder()),
                        "seeds": list(SEEDS)}}
    full = Benchmark.from_instance(load_instance(REPO / "benchmark/prompts.yaml", pool_folder()), params)
    if prompts is None:
        return full
    return Benchmark({i: full.prompts[i] for i in range(1, prompts + 1)}, full.seeds, full.labels)


# Fixtures are registered under their `name`; test modules import the functions to make them visible.
@pytest.fixture(scope="session", name="pristine")
def pristine_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a valid submission folder, the pool it was made from); copy it before changing anything."""
    root = tmp_path_factory.mktemp("pristine")
    pool_dir = pool_folder()
    pool = load_pool(pool_dir)
    config = dataclasses.replace(load_model_config(REPO / "models", "clone"), settings={"size": 256})
    folder = root / "submissions" / NAME
    jobs = make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, list(SEEDS))
    report = run_generate(config, jobs, pool, folder)
    assert report.made == 75 * len(SEEDS) and not report.failed
    (folder / ".lock").unlink()
    (folder / RUNLOG).unlink()  # the author's own run log stays behind: a submission holds the listed files only
    (folder / "model.yaml").write_text(yaml.safe_dump(MODEL_YAML, sort_keys=False))
    return folder, pool_dir


@pytest.fixture(scope="session", name="small_pristine")
def small_pristine_fixture(pristine: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The pristine submission cut to the jobs of `benchmark(SMALL_PROMPTS)`."""
    folder = tmp_path_factory.mktemp("small") / NAME
    (folder / "images").mkdir(parents=True)
    shutil.copy(pristine[0] / "model.yaml", folder / "model.yaml")
    records = [r for r in read_manifest(pristine[0]) if r["prompt_id"] <= SMALL_PROMPTS]
    for record in records:
        shutil.copy(pristine[0] / record["image"], folder / record["image"])
    write_manifest(folder, records)
    return folder, pristine[1]


def copy_submission(pristine_folder: Path, parent: Path) -> Path:
    target = parent / "submissions" / pristine_folder.name
    shutil.copytree(pristine_folder, target)
    return target


def read_manifest(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]


def write_manifest(folder: Path, records: list[dict[str, Any]]) -> None:
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def edit_line(folder: Path, job: str, **changes: Any) -> None:
    """Change fields of one job's manifest line."""
    records = read_manifest(folder)
    for record in records:
        if record["key"] == job:
            record.update(changes)
    write_manifest(folder, records)


def replace_image(folder: Path, key: str, data: bytes) -> None:
    """Swap one job's image bytes and update its sha256, so only the content itself is wrong."""
    (folder / "images" / f"{key}.png").write_bytes(data)
    edit_line(folder, key, sha256=hashlib.sha256(data).hexdigest())


def png_bytes(size: tuple[int, int] = (256, 256), **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, **{"format": "PNG", **save})
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 30000) -> bytes:
    """A 1 KiB file declaring side x side pixels: decoding it would allocate gigabytes."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
            + chunk(b"IEND", b""))


def flipped(data: bytes, start: int, stop: int) -> bytes:
    """`data` with the bytes in [start, stop) inverted: a corrupt chunk whose length still adds up."""
    return data[:start] + bytes(b ^ 0xFF for b in data[start:stop]) + data[stop:]


def tree_digest(root: Path) -> str:
    """Hash of every path, file content and link target under root (hidden entries included)."""
    digest = hashlib.sha256()
    if not root.exists():
        return "absent"
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(base) / name
            digest.update(str(path.relative_to(root)).encode("utf-8", "surrogateescape") + b"\0")
            if path.is_symlink():
                digest.update(os.readlink(path).encode("utf-8", "surrogateescape"))
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()
