"""The test files that drive this machine's one Docker engine, Podman service or Slurm node share one xdist worker.

They name containers and jobs after their models and check that none is left over, so two of them at once in
different workers would see each other's (tests/conftest.py, ENGINE_FILES).
"""

from __future__ import annotations

import re

from conftest import ENGINE_FILES, REPO

DRIVES_AN_ENGINE = re.compile(r"from test_(docker_runner|podman_runner|slurm_launcher) import|containers\.connect\("
                              r"|^import docker$|\bsbatch\b|launcher.*slurm", re.MULTILINE)


def test_every_file_that_drives_an_engine_is_in_the_engine_group() -> None:
    drives = {path.name for path in (REPO / "tests").glob("test_*.py")
              if path.name != "test_workers.py" and DRIVES_AN_ENGINE.search(path.read_text(encoding="utf-8"))}
    assert {"test_docker_runner.py", "test_podman_runner.py", "test_slurm_launcher.py"} <= drives
    assert drives <= ENGINE_FILES, f"add to ENGINE_FILES in tests/conftest.py: {sorted(drives - ENGINE_FILES)}"
    assert all((REPO / "tests" / name).is_file() for name in ENGINE_FILES)
