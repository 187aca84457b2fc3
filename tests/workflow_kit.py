"""Running the workflows' own steps outside GitHub Actions, for the workflow tests and the rehearsal.

A step is read out of .github/workflows/*.yml and its `run:` block executed with bash as the runner does
(`bash -e -o pipefail`), with the environment its `env:` would give it, so the tests break when a workflow and
its scripts drift apart. Artifacts are folders in a store; `download` extracts them the way
actions/download-artifact (v8) does: one matching artifact, or any number with merge-multiple, straight into
the path; several without merge-multiple, each into path/<artifact name>/.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false"]
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def step(workflow_name: str, job: str, name: str | None = None, uses: str | None = None) -> dict[str, Any]:
    """The step of `job` with this name, or the first that uses this action (prefix, e.g. actions/upload-artifact)."""
    for item in workflow(workflow_name)["jobs"][job]["steps"]:
        if (name and item.get("name") == name) or (uses and str(item.get("uses", "")).startswith(uses)):
            return item
    raise KeyError(f"{workflow_name}: job {job} has no step {name or uses}")


def expand(text: str, values: dict[str, str]) -> str:
    """Fill the ${{ ... }} expressions of `text` from `values` (keyed by the expression's text)."""
    return EXPRESSION.sub(lambda match: values[match.group(1)], text)


def tool_env(**extra: str) -> dict[str, str]:
    """This test environment's tools first on PATH; no GitHub token; DVC without its usage analytics."""
    env = {key: value for key, value in os.environ.items() if key not in ("GITHUB_TOKEN", "GITHUB_OUTPUT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    return {**env, **extra}


def sh(command: list[str] | str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=tool_env(**env), check=False,
                          shell=isinstance(command, str))


def run_step(item: dict[str, Any], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """A step's `run:` block, as the runner executes it."""
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", item["run"]], cwd=cwd, capture_output=True,
                          text=True, env=tool_env(**env), check=False)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def git(cwd: Path, *args: str) -> str:
    return ok(sh([*GIT, *args], cwd))


def upload(store: Path, name: str, folder: Path) -> None:
    """actions/upload-artifact of one folder: its contents become the artifact."""
    shutil.copytree(folder, store / name)


def download(store: Path, pattern: str, dest: Path, merge_multiple: bool) -> list[str]:
    """actions/download-artifact with `pattern`; returns the names of the artifacts it extracted."""
    names = sorted(p.name for p in store.iterdir() if fnmatch.fnmatchcase(p.name, pattern))
    for name in names:
        target = dest if merge_multiple or len(names) == 1 else dest / name
        shutil.copytree(store / name, target, dirs_exist_ok=True)
    return names
