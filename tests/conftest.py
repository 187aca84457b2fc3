"""Shared fixtures: a synthetic 16-subject pool, the smoke backbones, a repo-like work folder.

Everything is built in code: tests never need the DVC-tracked demo pool, a
model hub or a GPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["submission_kit"]  # its session fixtures (`pristine`, `small_pristine`) for every test file


def make_pool(data_dir: Path, count: int = 16, size: int = 96) -> Path:
    """Write `count` visually distinct reference images + subjects.yaml (IDs S001..)."""
    (data_dir / "subjects").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    entries = []
    for number in range(1, count + 1):
        subject_id = f"S{number:03d}"
        background = tuple(int(v) for v in rng.integers(0, 256, 3))
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, size - 20, 2))
            draw.ellipse((x, y, x + 20 + number, y + 20), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image.save(data_dir / "subjects" / f"{subject_id}.png")
        entries.append({"id": subject_id, "phrase": f"subject number {number}", "kind": "person" if number % 4 else "animal",
                        "image": f"subjects/{subject_id}.png", "source": "tests", "license": "CC0-1.0"})
    (data_dir / "subjects.yaml").write_text(yaml.safe_dump({"subjects": entries}, sort_keys=False))
    return data_dir


@pytest.fixture
def pool_dir(tmp_path: Path) -> Path:
    return make_pool(tmp_path / "data")


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from collapsebench.scoring.smoke import smoke_backbone_dir

    return smoke_backbone_dir(tmp_path_factory.mktemp("smoke"))


def make_repo(root: Path, smoke_dir: Path, bootstrap: int = 200) -> dict:
    """A repo-like folder (prompts, models, site, paper table, synthetic pool, params with seeds [0]); returns the
    params it wrote, for callers that change them."""
    for folder in ("benchmark", "models", "site", "submissions"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "results" / "reported").mkdir(parents=True)
    shutil.copy(REPO / "results/reported/paper_table1.csv", root / "results/reported/paper_table1.csv")
    make_pool(root / "data")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["suite"]["seeds"] = [0]
    params["scoring"]["smoke_dir"] = str(smoke_dir)
    params["report"]["bootstrap"] = bootstrap
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """make_repo's folder as the working directory."""
    root = tmp_path / "repo"
    make_repo(root, tmp_path / "smoke")
    monkeypatch.chdir(root)
    return root
