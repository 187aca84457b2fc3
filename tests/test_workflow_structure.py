"""What the workflows promise that no script can show: read from the YAML itself.

One approval per GPU run, local actions referenced as `./` after a checkout, runs on main that never cancel
each other, no GPU job without GPU tests, and results published from main only.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from conftest import REPO
from workflow_kit import WORKFLOWS, workflow


def jobs(name: str) -> dict[str, dict[str, Any]]:
    return workflow(name)["jobs"]


def needs(job: dict[str, Any]) -> list[str]:
    value = job.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def upstream(all_jobs: dict[str, dict[str, Any]], name: str) -> set[str]:
    found: set[str] = set()
    stack = needs(all_jobs[name])
    while stack:
        item = stack.pop()
        if item not in found:
            found.add(item)
            stack += needs(all_jobs[item])
    return found


def self_hosted(job: dict[str, Any]) -> bool:
    return "self-hosted" in (job.get("runs-on") or [])


def environment(job: dict[str, Any]) -> str | None:
    value = job.get("environment")
    return value.get("name") if isinstance(value, dict) else value


def test_a_gpu_run_needs_one_approval() -> None:
    """Defect: gpu-tests, generate and merge-score each named the `gpu` environment: three approvals per run."""
    gpu = jobs("gpu.yml")
    gated = [name for name, job in gpu.items() if environment(job) == "gpu"]
    assert gated == ["approve"]
    assert not self_hosted(gpu["approve"])
    for name, job in gpu.items():
        if self_hosted(job):
            assert "approve" in upstream(gpu, name), name
            assert environment(job) is None, name
    assert "approve" in upstream(gpu, "commit")


def test_publishing_needs_no_second_approval_and_runs_off_the_gpu_runner() -> None:
    commit = jobs("gpu.yml")["commit"]
    assert environment(commit) == "results" and not self_hosted(commit)
    assert "needs.plan.outputs.commit == 'true'" in commit["if"]
    assert {"merge-score", "submission"} <= set(needs(commit))


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")) + [REPO / ".github/actions/install/action.yml"],
                         ids=lambda path: path.name)
def test_local_actions_are_referenced_with_dot_slash_after_a_checkout(path) -> None:
    """Defect: `uses: $/...` needs a runner feature flag; without it the job fails."""
    assert "$/" not in path.read_text()
    if path.name == "action.yml":
        return
    for name, job in workflow(path.name)["jobs"].items():
        if str(job.get("uses", "")).startswith("."):
            assert job["uses"].startswith("./.github/workflows/"), name
        checked_out = False
        for item in job.get("steps", []):
            uses = str(item.get("uses", ""))
            checked_out |= uses.startswith("actions/checkout@")
            if uses.startswith("."):
                assert uses.startswith("./.github/actions/") and checked_out, f"{path.name}: {name}: {uses}"


def test_runs_on_main_never_cancel_each_other() -> None:
    """Defect: all runs on main shared one concurrency group, so a queued run was cancelled by the next."""
    concurrency = workflow("gpu.yml")["concurrency"]
    assert concurrency["group"] == "gpu-${{ github.event.pull_request.number || github.run_id }}"
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_no_job_runs_gpu_tests_unless_there_are_some() -> None:
    """Defect: the gpu-tests job collected 0 tests and passed."""
    runs = [item.get("run", "") for path in WORKFLOWS.glob("*.yml")
            for job in workflow(path.name)["jobs"].values() for item in job.get("steps", [])]
    if any("-m gpu" in run for run in runs):
        collected = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "--collect-only", "-q"], cwd=REPO,
                                   capture_output=True, text=True, check=False)
        assert collected.returncode == 0, "a workflow runs `pytest -m gpu`, which collects no test"


def test_pages_pulls_the_images_before_it_builds_the_site() -> None:
    steps = [item.get("run", "") for item in jobs("pages.yml")["build"]["steps"]]
    pull = next(i for i, run in enumerate(steps) if "scripts/pull_results.sh" in run)
    build = next(i for i, run in enumerate(steps) if "collapsebench site" in run)
    assert pull < build


def test_pages_deploys_every_push_to_main_so_a_merged_model_shows_as_pending_at_once() -> None:
    """The site lists a merged model as pending (the rehearsal builds it); a paths filter that skipped pushes
    under models/ or submissions/ would hide it until its GPU run committed results."""
    push = workflow("pages.yml")[True]["push"]  # PyYAML reads the key `on` as True
    assert push == {"branches": ["main"]}
