"""A simulated pull request: a temp git repository, a branch that adds a folder, and ci.yml's own validation step.

The step is read out of .github/workflows/ci.yml and run with the environment
GitHub gives it for a pull request, so these tests break if the workflow and
the validation drift apart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from submission_kit import FLUX2, NAME, pool_folder, pristine_fixture, tree_digest  # noqa: F401  (the `pristine` fixture)

CI = REPO / ".github" / "workflows" / "ci.yml"
STEP = "Validate changed model and submission folders"
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false"]


def ci_step() -> dict:
    steps = yaml.safe_load(CI.read_text())["jobs"]["test"]["steps"]
    return next(step for step in steps if step.get("name") == STEP)


def sh(command: list[str] | str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, shell=isinstance(command, str), check=False,
                          env={**os.environ, "PATH": path, **(env or {})})


def git(repo: Path, *args: str) -> str:
    result = sh([*GIT, *args], repo)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The repository's benchmark, models, Dockerfiles, params and scripts on `main`, plus a results tree,
    with `origin/main` pointing at it (as actions/checkout with fetch-depth 0 leaves a pull request)."""
    root = tmp_path / "repo"
    for folder in ("benchmark", "models", "scripts", ".github"):
        shutil.copytree(REPO / folder, root / folder)
    for dockerfile in (REPO / "docker").glob("*/Dockerfile"):
        (root / "docker" / dockerfile.parent.name).mkdir(parents=True)
        shutil.copy(dockerfile, root / "docker" / dockerfile.parent.name / "Dockerfile")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copytree(pool_folder(), root / "data")  # the pool submissions are cast from (CI pulls data.dvc)
    (root / "results" / "reported").mkdir(parents=True)
    shutil.copy(REPO / "results/reported/paper_table1.csv", root / "results/reported/paper_table1.csv")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "update-ref", "refs/remotes/origin/main", "main")
    git(root, "checkout", "-q", "-b", "pr")
    return root


def run_ci_validation(repo: Path) -> subprocess.CompletedProcess:
    """ci.yml's step, with BASE as its expression evaluates for a pull request against main."""
    step = ci_step()
    assert "github.base_ref" in step["env"]["BASE"]
    return sh(step["run"], repo, env={"BASE": "origin/main"})


def add_flux2(repo: Path, **changes: object) -> None:
    folder = repo / "models" / "acme-flux"
    folder.mkdir()
    (folder / "model.yaml").write_text(yaml.safe_dump({**FLUX2, **changes}, sort_keys=False))
    (repo / "docker" / "acme-flux").mkdir(parents=True, exist_ok=True)
    (repo / "docker" / "acme-flux" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def test_ci_runs_the_validation_step_before_the_tests() -> None:
    steps = yaml.safe_load(CI.read_text())["jobs"]["test"]["steps"]
    names = [step.get("name") for step in steps]
    assert names.index(STEP) < names.index("Tests")
    assert ci_step()["run"] == 'bash scripts/validate_changed.sh "$BASE"'


def test_pull_request_adding_a_valid_model_passes(repo: Path) -> None:
    add_flux2(repo)
    commit(repo, "add acme-flux")
    result = run_ci_validation(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "OK models/acme-flux (model folder)"
    assert not any("collage" in line for line in lines), "only the changed folder is validated"


def test_pull_request_adding_a_broken_model_fails_with_every_problem(repo: Path) -> None:
    add_flux2(repo, pipeline={"class": "Flux2Pipeline", "repo": "black-forest-labs/FLUX.2-dev", "revision": "main"},
              authors=[])
    commit(repo, "add a broken acme-flux")
    result = run_ci_validation(repo)
    assert result.returncode == 1
    assert "models/acme-flux/model.yaml: pipeline.revision: 'main' does not match" in result.stdout
    assert "models/acme-flux/model.yaml: authors: [] should be non-empty" in result.stdout
    assert "FAILED models/acme-flux (model folder): 2 problems" in result.stdout


def test_pull_request_adding_a_valid_results_submission_passes(repo: Path, pristine: tuple[Path, Path]) -> None:
    shutil.copytree(pristine[0], repo / "submissions" / NAME)
    commit(repo, "submit acme-net results")
    result = run_ci_validation(repo)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1] == f"OK submissions/{NAME} (results submission)"


def test_pull_request_with_a_malicious_submission_fails_and_touches_nothing(repo: Path,
                                                                           pristine: tuple[Path, Path]) -> None:
    folder = repo / "submissions" / NAME
    shutil.copytree(pristine[0], folder)
    (folder / "images" / "p07_s1.png").unlink()
    os.symlink("/etc/passwd", folder / "images" / "p07_s1.png")
    (folder / "scores.csv").write_text("model,dinov2\nacme-net,0.99\n")
    manifest = (folder / "manifest.jsonl").read_text().replace('"images/p02_s0.png"', '"images/../../../etc/x.png"')
    (folder / "manifest.jsonl").write_text(manifest)
    commit(repo, "submit acme-net results")
    before = tree_digest(repo / "results"), tree_digest(repo / "models")
    result = run_ci_validation(repo)
    assert result.returncode == 1
    for fragment in ("images/p07_s1.png: symlinks are not allowed", "scores.csv: submitted scores are rejected",
                     "line 4: image: 'images/../../../etc/x.png' has a '..' component",
                     f"FAILED submissions/{NAME} (results submission)"):
        assert fragment in result.stdout, result.stdout
    assert (tree_digest(repo / "results"), tree_digest(repo / "models")) == before


def test_pull_request_touching_no_model_or_submission_validates_nothing(repo: Path) -> None:
    (repo / "NOTES.md").write_text("hello\n")
    commit(repo, "notes")
    result = run_ci_validation(repo)
    assert result.returncode == 0 and "no model or submission folder to check" in result.stdout


def test_pull_request_removing_a_model_skips_it(repo: Path) -> None:
    git(repo, "rm", "-q", "-r", "models/floor")
    commit(repo, "drop floor")
    result = run_ci_validation(repo)
    assert result.returncode == 0 and "skipped models/floor: removed" in result.stdout


def test_without_a_usable_base_every_folder_is_validated(repo: Path) -> None:
    result = sh(["bash", "scripts/validate_changed.sh", "0" * 40], repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checking every model and submission folder" in result.stdout
    assert "OK models/collage (model folder)" in result.stdout


def test_gpu_plan_lists_changed_models_and_submissions_for_the_matrix(repo: Path, pristine: tuple[Path, Path]) -> None:
    add_flux2(repo)
    shutil.copytree(pristine[0], repo / "submissions" / NAME)
    commit(repo, "a model and a submission")
    result = sh(["bash", "scripts/gpu_plan.sh", "origin/main"], repo, env={"EVENT": "pull_request"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['models=["acme-flux"]', f'submissions=["{NAME}"]', "shards=[0]",
                                          "shard_count=25", "commit=false"]


def test_gpu_plan_reruns_the_models_of_a_changed_dockerfile_and_skips_reported_rows(repo: Path) -> None:
    add_flux2(repo)
    reported = repo / "models" / "paper-only"
    reported.mkdir()
    (reported / "model.yaml").write_text(yaml.safe_dump({**FLUX2, "name": "paper-only", "kind": "reported"}))
    commit(repo, "base models")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / "docker" / "acme-flux" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nENV X=1\n")
    commit(repo, "change the Dockerfile")
    result = sh(["bash", "scripts/gpu_plan.sh", "origin/main"], repo, env={"EVENT": "push", "REF": "refs/heads/dev"})
    assert result.stdout.splitlines() == ['models=["acme-flux"]', "submissions=[]", "shards=[0,1,2,3]", "shard_count=4",
                                          "commit=false"]
    result = sh(["bash", "scripts/gpu_plan.sh", ""], repo, env={"ONLY": "paper-only acme-flux ../etc"})
    assert result.stdout.splitlines()[:2] == ['models=["acme-flux"]', "submissions=[]"]
    assert "paper-only is not generated here" in result.stderr
