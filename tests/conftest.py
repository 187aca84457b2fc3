"""Shared fixtures: a synthetic 16-subject pool, the smoke backbones, a repo-like work folder.

Everything is built in code: tests never need the DVC-tracked demo pool, a
model hub or a GPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from collapsebench.testing.tiny import make_pool  # noqa: F401  (re-exported: tests import it from conftest)

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["submission_kit"]  # its session fixtures (`pristine`, `small_pristine`) for every test file


# The test files that drive the one Docker engine, Podman service and Slurm node of this machine: under pytest-xdist
# they run one after another in a single worker (`--dist loadgroup`), since they name containers and jobs after
# their models and check that none is left over; every other file spreads over the workers.
ENGINE_FILES = {"test_apptainer_runner.py", "test_docker_runner.py", "test_eval_container.py", "test_fanout.py",
                "test_podman_runner.py", "test_slurm_launcher.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in ENGINE_FILES:
            item.add_marker(pytest.mark.xdist_group("engines"))


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
    shutil.copytree(REPO / "results/preflight", root / "results/preflight")  # committed records (a site dependency)
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
