"""The GPU and CI workflows' scripts, each run end to end in temporary git repositories (and DVC projects).

Each test names the workflow defect it guards against: planning against what main lacks (a cancelled run
never drops a model), committing on dispatch, both layouts of actions/download-artifact, artifact patterns of
models whose names extend others', the images pushed to a DVC remote before the commit, main's model.yaml kept,
a push that races another, the results/ rule, and a CPU-only torch.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from workflow_kit import download, expand, git, ok, run_step, sh, step, upload

GPU_PLAN = ["bash", "scripts/gpu_plan.sh"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def plan(repo: Path, base: str = "", **env: str) -> dict[str, str]:
    result = sh([*GPU_PLAN, base], repo, **{"ONLY": "", **env})
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


# --------------------------------------------------------------------------------------------- gpu_plan.sh

@pytest.fixture
def main_repo(tmp_path: Path) -> Path:
    """main with: `done` (results from its current model.yaml), `stale` (results from an older model.yaml),
    `never` (no results), `paper` (reported only), `closed` (a closed API model: never planned), submission
    `sub-done` (imported) and `sub-new` (not yet)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    for name in ("done", "stale", "never", "paper", "closed"):
        kind = "reported" if name == "paper" else "model"
        runner = "api" if name == "closed" else "docker"  # a closed API model: no key on the GPU runner
        entry = write(repo / f"models/{name}/model.yaml", f"name: {name}\nkind: {kind}\nrunner: {runner}\n")
        if name in ("done", "stale"):
            for file in ("scores.csv", "scoring.json"):
                write(repo / f"results/models/{name}/{file}", "x\n")
            recorded = md5(entry) if name == "done" else "0" * 32  # as stage_results.sh records it
            write(repo / f"results/models/{name}/images.dvc",
                  f"outs:\n- md5: 1.dir\n  path: images\nmeta:\n  model_yaml_md5: {recorded}\n")
    for name in ("sub-done", "sub-new"):
        write(repo / f"submissions/{name}/manifest.jsonl", "{}\n")
    for file in ("scores.csv", "scoring.json", "images.dvc", "provenance.json"):
        write(repo / f"results/models/sub-done/{file}", "x\n")
    write(repo / "models/sub-done/model.yaml", "name: sub-done\nkind: model\nrunner: submitted\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    return repo


def test_plan_on_main_adds_whatever_main_lacks_results_for(main_repo: Path) -> None:
    """Defect: each run planned only its own diff, so a cancelled run on main dropped its model for good."""
    before = git(main_repo, "rev-parse", "HEAD").strip()
    write(main_repo / "README.md", "an unrelated change\n")
    git(main_repo, "add", "-A")
    git(main_repo, "commit", "-q", "-m", "docs")
    pushed = plan(main_repo, before, EVENT="push", REF="refs/heads/main")
    assert pushed == {"models": '["never","stale"]', "submissions": '["sub-new"]', "shards": "[0,1,2,3]",
                      "shard_count": "4", "commit": "true"}
    # A pull request previews only its own change, and never commits.
    preview = plan(main_repo, before, EVENT="pull_request", REF="refs/pull/7/merge")
    assert preview == {"models": "[]", "submissions": "[]", "shards": "[0]", "shard_count": "25", "commit": "false"}


def test_plan_commits_on_dispatch_on_main_only(main_repo: Path) -> None:
    """Defect: results were committed only on push, never on workflow_dispatch."""
    missing = plan(main_repo, EVENT="workflow_dispatch", REF="refs/heads/main")
    assert (missing["models"], missing["submissions"]) == ('["never","stale"]', '["sub-new"]')
    assert missing["commit"] == "true"
    named = plan(main_repo, EVENT="workflow_dispatch", REF="refs/heads/main", ONLY="done")
    assert (named["models"], named["submissions"], named["commit"]) == ('["done"]', "[]", "true")
    elsewhere = plan(main_repo, EVENT="workflow_dispatch", REF="refs/heads/try-this", ONLY="done")
    assert (elsewhere["models"], elsewhere["commit"]) == ('["done"]', "false")


# ---------------------------------------------------------------------------------- artifacts and shards

def shard_artifacts(work: Path, store: Path, model: str, count: int) -> None:
    """What gpu.yml's generate jobs upload for `model`: one stage_shard.sh folder per shard."""
    name = step("gpu.yml", "generate", uses="actions/upload-artifact")["with"]["name"]
    for index in range(count):
        shard = work / f"results/models/{model}/shards/{index}-of-{count}"
        write(shard / "manifest.jsonl", f'{{"model": "{model}", "shard": {index}}}\n')
        write(shard / "images" / f"p{index:02d}_s0.png", model)
        out = work / f"out-{model}-{index}"
        ok(sh(["bash", "scripts/stage_shard.sh", model, f"{index}/{count}", str(out)], work))
        upload(store, expand(name, {"matrix.model": model, "matrix.shard": str(index)}), out)


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("merge_multiple", [True, False])
def test_collect_shards_reads_both_download_layouts(tmp_path: Path, shards: int, merge_multiple: bool) -> None:
    """Defect: download-artifact extracts a single matching artifact without its folder, so a preview's only
    shard was never found; several land in folders of their own unless merge-multiple is set."""
    work, store = tmp_path / "work", tmp_path / "store"
    shutil.copytree(REPO / "scripts", work / "scripts")
    store.mkdir()
    shard_artifacts(work, store, "flux2", shards)
    shard_artifacts(work, store, "flux2-dev", 2)
    shutil.rmtree(work / "results")
    pattern = expand(step("gpu.yml", "merge-score", uses="actions/download-artifact")["with"]["pattern"],
                     {"matrix.model": "flux2"})
    assert len(download(store, pattern, work / "incoming", merge_multiple)) == shards
    assert (work / "incoming" / "results").is_dir() == (merge_multiple or shards == 1)
    result = ok(sh(["bash", "scripts/collect_shards.sh", "flux2", "incoming"], work))
    assert f"{shards} shard folders of flux2" in result
    assert sorted(p.name for p in (work / "results/models/flux2/shards").iterdir()) == \
        [f"{i}-of-{shards}" for i in range(shards)]
    assert (work / f"results/models/flux2/shards/{shards - 1}-of-{shards}/images").is_dir()
    assert not (work / "results/models/flux2-dev").exists()


def test_collect_shards_fails_when_no_shard_arrived(tmp_path: Path) -> None:
    (tmp_path / "incoming").mkdir()
    result = sh(["bash", str(REPO / "scripts/collect_shards.sh"), "flux2", "incoming"], tmp_path)
    assert result.returncode == 1 and "no shard of flux2 under incoming" in result.stderr


def test_artifact_patterns_never_match_a_model_whose_name_extends_another() -> None:
    """Defect: shard-${model}-* also matched the shards of ${model}-dev."""
    upload_name = step("gpu.yml", "generate", uses="actions/upload-artifact")["with"]["name"]
    pattern = step("gpu.yml", "merge-score", uses="actions/download-artifact")["with"]["pattern"]
    results_name = step("gpu.yml", "merge-score", uses="actions/upload-artifact")["with"]["name"]
    results_pattern = step("gpu.yml", "commit", uses="actions/download-artifact")["with"]["pattern"]
    for model, other in (("flux2", "flux2-dev"), ("flux2-dev", "flux2"), ("a", "a-1"), ("a_1", "a")):
        theirs = expand(upload_name, {"matrix.model": other, "matrix.shard": "0"})
        assert not fnmatch.fnmatchcase(theirs, expand(pattern, {"matrix.model": model}))
        assert fnmatch.fnmatchcase(expand(upload_name, {"matrix.model": model, "matrix.shard": "3"}),
                                   expand(pattern, {"matrix.model": model}))
        assert fnmatch.fnmatchcase(expand(results_name, {"matrix.model": model}), results_pattern)
        assert not fnmatch.fnmatchcase(theirs, results_pattern)


# ---------------------------------------------------------------------- stage_results.sh, commit_results.sh

@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A bare `origin` whose main is a small DVC project with two model entries (no stage lists them: a model's
    images are tracked by its images.dvc, tables in git) and the repository's scripts."""
    work = tmp_path / "maintainer"
    shutil.copytree(REPO / "scripts", work / "scripts")
    write(work / ".gitignore", "/results/models/*/images/\n/incoming/\n/out/\n")
    for name in ("alpha", "beta"):
        write(work / f"models/{name}/model.yaml", f"name: {name}\n")
    git(work, "init", "-q", "-b", "main")
    ok(sh(["dvc", "init", "-q"], work))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "main")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "origin.git")
    git(work, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(work, "push", "-q", "origin", "main")
    return tmp_path / "origin.git"


def checkout(origin: Path, folder: Path) -> Path:
    git(origin.parent, "clone", "-q", "-b", "main", str(origin), str(folder))
    return folder


def runner_with_results(origin: Path, name: str) -> Path:
    """A merge-score job's checkout with a model's results in place (before stage_results.sh)."""
    runner = checkout(origin, origin.parent / f"gpu-{name}")
    folder = runner / "results/models" / name
    write(folder / "images/p01_s0.png", f"{name} image")
    write(folder / "manifest.jsonl", json.dumps({"model": name, "image": "images/p01_s0.png"}) + "\n")
    write(folder / "scores.csv", f"model\n{name}\n")
    write(folder / "scoring.json", "{}\n")
    return runner


def gpu_job(origin: Path, name: str, store: Path, submission: bool = False) -> Path:
    """A merge-score (or submission) job: results in place, then stage_results.sh, then the upload."""
    runner = runner_with_results(origin, name)
    folder = runner / "results/models" / name
    if submission:  # what `collapsebench submission import` leaves (a closed API row: with its refusals)
        write(folder / "provenance.json", '{"source": "submitted"}\n')
        write(folder / "refusals.jsonl", '{"key": "p02_s0", "reason": "content_policy"}\n')
        write(runner / f"models/{name}/model.yaml", f"name: {name}\nrunner: submitted\n")
    ok(sh(["bash", "scripts/stage_results.sh", name, "out", *(["--submission"] if submission else [])], runner))
    upload(store, f"results.{name}", runner / "out")
    return runner


def publish(origin: Path, store: Path, remote: Path, merge_multiple: bool, models: str, submissions: str = "[]",
            before_push: str = "") -> tuple[Path, str]:
    """gpu.yml's commit job: its download, then its step, with a local DVC remote as the results remote."""
    committer = checkout(origin, origin.parent / "commit")
    ok(sh(["dvc", "remote", "add", "--local", "local", str(remote)], committer))
    fetch = step("gpu.yml", "commit", uses="actions/download-artifact")["with"]
    download(store, fetch["pattern"], committer / fetch["path"], merge_multiple)
    if before_push:
        ok(sh(before_push, committer))
    item = step("gpu.yml", "commit", "Push the images to the results remote, then commit images.dvc, manifests and "
                                     "scores")
    result = run_step(item, committer, MODELS=models, SUBMISSIONS=submissions, RESULTS_REMOTE="local",
                      RUN_URL="https://example.org/run/1")
    return committer, ok(result)


def reader(origin: Path, remote: Path, folder: Path) -> Path:
    """A fresh clone pulling the images as pages.yml does."""
    clone = checkout(origin, folder)
    ok(sh(["dvc", "remote", "add", "--local", "local", str(remote)], clone))
    ok(sh(["bash", "scripts/pull_results.sh"], clone, RESULTS_REMOTE="local"))
    return clone


@pytest.mark.parametrize("merge_multiple", [True, False])
def test_commit_pushes_images_then_commits_images_dvc_manifests_and_scores(project: Path, tmp_path: Path,
                                                                     merge_multiple: bool) -> None:
    """Defects: with one model the single artifact was extracted without its folder and nothing was committed;
    images never reached a DVC remote and nothing recorded them in git; the run's model.yaml replaced main's."""
    store, remote = tmp_path / "store", tmp_path / "remote"
    store.mkdir()
    gpu_job(project, "alpha", store)
    write(store / "results.alpha/models/alpha/model.yaml", "name: alpha\nsettings: {evil: true}\n")
    if not merge_multiple:
        gpu_job(project, "beta", store)
    models = '["alpha"]' if merge_multiple else '["alpha","beta"]'
    committer, output = publish(project, store, remote, merge_multiple, models)
    assert "commit_results: pushed" in output
    changed = [line for line in git(committer, "show", "--name-only", "--format=%an|%s", "origin/main").splitlines()
               if line]
    assert changed[0] == "github-actions[bot]|results: GPU run https://example.org/run/1"
    names = ["alpha"] if merge_multiple else ["alpha", "beta"]
    assert sorted(changed[1:]) == sorted(f"results/models/{n}/{f}" for n in names for f in (
        "images.dvc", "manifest.jsonl", "published.json", "scores.csv", "scoring.json"))
    assert (committer / "models/alpha/model.yaml").read_text() == "name: alpha\n"
    for name in names:  # which model.yaml made the images: gpu_plan.sh's "committed" check reads it
        folder = committer / f"results/models/{name}"
        recorded = yaml.safe_load((folder / "images.dvc").read_text())
        assert recorded["meta"] == {"model_yaml_md5": md5(committer / f"models/{name}/model.yaml")}
        assert recorded["outs"][0]["path"] == "images"
        published = json.loads((folder / "published.json").read_text())  # the commit job's record, not the run's
        assert published == {"images": recorded["outs"][0]["md5"], "kind": "model", "run": "https://example.org/run/1",
                             "scores_sha256": hashlib.sha256((folder / "scores.csv").read_bytes()).hexdigest(),
                             "source": "gpu-workflow"}
    planned = plan(committer, EVENT="workflow_dispatch", REF="refs/heads/main")
    assert planned["models"] == ("[]" if not merge_multiple else '["beta"]')  # committed ones are not planned

    clone = reader(project, remote, tmp_path / "reader")
    for name in names:
        assert (clone / f"results/models/{name}/images/p01_s0.png").read_text() == f"{name} image"


def test_commit_of_a_results_submission_adds_its_entry_and_images_dvc(project: Path, tmp_path: Path) -> None:
    store, remote = tmp_path / "store", tmp_path / "remote"
    store.mkdir()
    gpu_job(project, "gamma", store, submission=True)
    committer, _ = publish(project, store, remote, True, "[]", '["gamma"]')
    changed = git(committer, "show", "--name-only", "--format=", "origin/main").split()
    assert sorted(changed) == ["models/gamma/model.yaml", "results/models/gamma/images.dvc",
                               "results/models/gamma/manifest.jsonl", "results/models/gamma/provenance.json",
                               "results/models/gamma/published.json", "results/models/gamma/refusals.jsonl",
                               "results/models/gamma/scores.csv", "results/models/gamma/scoring.json"]
    assert json.loads((committer / "results/models/gamma/published.json").read_text())["kind"] == "submission"
    clone = reader(project, remote, tmp_path / "reader")
    assert (clone / "results/models/gamma/images/p01_s0.png").read_text() == "gamma image"


def test_commit_skips_unplanned_artifacts(project: Path, tmp_path: Path) -> None:
    store, remote = tmp_path / "store", tmp_path / "remote"
    store.mkdir()
    gpu_job(project, "alpha", store)
    gpu_job(project, "beta", store)
    committer, output = publish(project, store, remote, False, '["beta"]')
    assert "skipping unplanned artifact" in output
    changed = git(committer, "show", "--name-only", "--format=", "origin/main").split()
    assert not any("alpha" in path for path in changed) and "results/models/beta/scores.csv" in changed


def test_commit_reapplies_on_main_when_another_push_won_the_race(project: Path, tmp_path: Path) -> None:
    store, remote = tmp_path / "store", tmp_path / "remote"
    store.mkdir()
    gpu_job(project, "alpha", store)
    other = checkout(project, tmp_path / "other")  # another run commits beta's results first
    write(other / "results/models/beta/scores.csv", "model\nbeta\n")
    git(other, "add", "results")
    git(other, "commit", "-q", "-m", "beta")
    race = f"git -C {other} push -q origin main"  # lands after the commit job's checkout, before its push
    committer, output = publish(project, store, remote, True, '["alpha"]', before_push=race)
    assert "push attempt 1 failed" in output and "commit_results: pushed" in output
    git(committer, "fetch", "-q", "origin")
    tree = git(committer, "ls-tree", "-r", "--name-only", "origin/main", "results").split()
    assert "results/models/beta/scores.csv" in tree and "results/models/alpha/images.dvc" in tree


# --------------------------------------------------------------------------------------- results/ rule

@pytest.mark.parametrize(("path", "author", "passes"), [
    ("results/models/acme/scores.csv", "someone", False),
    ("results/reported/paper_table1.csv", "someone", False),
    ("results/models/acme/scores.csv", "github-actions[bot]", True),
    ("models/acme/model.yaml", "someone", True),
])
def test_a_pull_request_touching_results_fails_unless_the_results_bot_opened_it(tmp_path: Path, path: str,
                                                                               author: str, passes: bool) -> None:
    """Defect: a pull request adding results/models/<x>/ by hand was shown as "scored here"."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    write(repo / "results/reported/paper_table1.csv", "model\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    git(repo, "checkout", "-q", "-b", "pr")
    write(repo / path, "changed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    item = step("ci.yml", "test", "Only the results bot writes results/")
    assert "github.event.pull_request.user.login" in item["env"]["PR_AUTHOR"]
    result = run_step(item, repo, BASE="origin/main", PR_AUTHOR=author, RESULTS_BOT="")
    assert (result.returncode == 0) == passes, result.stdout
    if not passes:
        assert f"  {path}" in result.stdout and "only the GPU workflow's results bot" in result.stdout


# ------------------------------------------------------------------------------------------ install.sh

@pytest.mark.parametrize("results_remote", ["true", "false"])
def test_install_takes_torch_alone_from_the_cpu_wheel_index(tmp_path: Path, results_remote: str) -> None:
    """Defect: CPU CI installed torch==2.13.0 from PyPI, the multi-gigabyte CUDA build."""
    calls = tmp_path / "calls"
    fake = write(tmp_path / "bin/python", f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    action = yaml.safe_load((REPO / ".github/actions/install/action.yml").read_text())
    item = next(s for s in action["runs"]["steps"] if s.get("name") == "pip install")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    result = run_step(item, REPO, RESULTS_REMOTE=results_remote, PATH=path, TORCH_CPU_INDEX="https://cpu.example/whl")
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[:3] == ["-m pip install torch==2.13.0 --index-url https://cpu.example/whl",
                         "-m pip install -e .[dev] -c constraints.txt",
                         "-m pip install --no-deps open_clip_torch==3.3.0"]
    assert lines[3:] == (["-m pip install dvc-s3==3.3.0"] if results_remote == "true" else [])
    setup = next(s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"


# ------------------------------------------------------------- the trust boundary in the publishing scripts

SECRET = "a host file that must never be published\n"


def everything_under(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()) if folder.exists() else ""


@pytest.mark.parametrize(("planted", "mode"), [("provenance.json", ["--submission"]), ("images/p02_s0.png", []),
                                               ("scores.csv", [])])
def test_stage_results_publishes_no_host_file_through_a_planted_symlink(project: Path, tmp_path: Path,
                                                                         planted: str, mode: list[str]) -> None:
    """Defect: the model container planted provenance.json -> a host file and images/x.png -> a host file; `cp`
    and `dvc add` followed them and the host file was pushed and committed to main."""
    host = write(tmp_path / "host/secret.txt", SECRET)
    runner = runner_with_results(project, "alpha")
    link = runner / "results/models/alpha" / planted
    link.unlink(missing_ok=True)
    link.symlink_to(host)
    result = sh(["bash", "scripts/stage_results.sh", "alpha", "out", *mode], runner)
    assert result.returncode != 0 and f"{planted}: is a symlink" in result.stderr
    assert SECRET not in everything_under(runner / "out")


def test_a_model_run_never_stages_a_provenance_json_even_a_regular_one(project: Path, tmp_path: Path) -> None:
    """Defect: a provenance.json planted by a model container made gpu_plan.sh treat the model as committed
    forever and the site label its row as submitted."""
    runner = runner_with_results(project, "alpha")
    write(runner / "results/models/alpha/provenance.json", '{"source": "submitted"}\n')
    ok(sh(["bash", "scripts/stage_results.sh", "alpha", "out"], runner))
    assert not (runner / "out/results/models/alpha/provenance.json").exists()
    store, remote = tmp_path / "store", tmp_path / "remote"
    upload(store, "results.alpha", runner / "out")
    write(store / "results.alpha/results/models/alpha/provenance.json", '{"source": "submitted"}\n')  # artifact too
    committer, _ = publish(project, store, remote, True, '["alpha"]')
    assert "results/models/alpha/provenance.json" not in git(committer, "show", "--name-only", "origin/main")


def test_shard_staging_and_collection_take_no_link(tmp_path: Path) -> None:
    """Defect: stage_shard.sh and collect_shards.sh used `cp -a`, which keeps symlinks."""
    host = write(tmp_path / "host/secret.txt", SECRET)
    work = tmp_path / "work"
    shutil.copytree(REPO / "scripts", work / "scripts")
    shard = work / "results/models/m/shards/0-of-2"
    write(shard / "manifest.jsonl", "{}\n")
    write(shard / "images/p01_s0.png", "image")
    (shard / "images/p03_s0.png").symlink_to(host)
    result = sh(["bash", "scripts/stage_shard.sh", "m", "0/2", "out"], work)
    assert result.returncode != 0 and "p03_s0.png: is a symlink" in result.stderr
    assert SECRET not in everything_under(work / "out")
    incoming = tmp_path / "incoming/results/models/m/shards/1-of-2"
    write(incoming / "manifest.jsonl", "{}\n")
    (incoming / "images").mkdir()
    (incoming / "images/p02_s0.png").symlink_to(host)
    result = sh(["bash", "scripts/collect_shards.sh", "m", str(tmp_path / "incoming")], work)
    assert result.returncode != 0 and "p02_s0.png: is a symlink" in result.stderr
    assert not (work / "results/models/m/shards/1-of-2").exists()


def file_objects(artifact: Path) -> list[Path]:
    return sorted(p for p in (artifact / "dvc-objects/files/md5").rglob("*") if p.is_file() and p.suffix != ".dir")


def assert_nothing_published(project: Path, remote: Path, before: str) -> None:
    assert git(project, "rev-parse", "main").strip() == before
    assert not remote.exists() or not any(p.is_file() for p in remote.rglob("*"))


def commit_alpha(project: Path, store: Path, remote: Path, **env: str) -> subprocess.CompletedProcess:
    """The commit job for model alpha's artifact in `store`, pushing to the local `remote`; not asserted."""
    committer = checkout(project, project.parent / "commit")
    ok(sh(["dvc", "remote", "add", "--local", "local", str(remote)], committer))
    download(store, "results.*", committer / "incoming", True)
    return sh(["bash", "scripts/commit_results.sh", "incoming", "https://example.org/run/1"], committer,
              MODELS='["alpha"]', SUBMISSIONS="[]", RESULTS_REMOTE="local", **env)


def test_an_object_whose_bytes_do_not_match_its_name_is_never_pushed(project: Path, tmp_path: Path) -> None:
    """Defect: objects were copied into the cache with `cp -R` and pushed under their names unchecked."""
    store, remote = tmp_path / "store", tmp_path / "remote"
    gpu_job(project, "alpha", store)
    forged = file_objects(store / "results.alpha")[0]
    forged.chmod(0o644)
    forged.write_text("other bytes under a genuine name")
    before = git(project, "rev-parse", "main").strip()
    result = commit_alpha(project, store, remote)
    assert result.returncode != 0 and "not to its name" in result.stderr and forged.name in result.stderr
    assert_nothing_published(project, remote, before)


def test_an_artifact_missing_objects_commits_nothing(project: Path, tmp_path: Path) -> None:
    """Defect: `dvc push` exited 0 with "Some of the cache files do not exist" and images.dvc was committed."""
    store, remote = tmp_path / "store", tmp_path / "remote"
    gpu_job(project, "alpha", store)
    missing = file_objects(store / "results.alpha")[0]
    missing.unlink()
    before = git(project, "rev-parse", "main").strip()
    result = commit_alpha(project, store, remote)
    oid = missing.parent.name + missing.name
    assert result.returncode != 0 and f"{oid} (missing)" in result.stderr
    assert_nothing_published(project, remote, before)


def test_a_push_that_leaves_objects_out_commits_nothing(project: Path, tmp_path: Path) -> None:
    """`dvc push` that exits 0 but leaves an object off the remote (as it does when cache files are missing,
    or a remote drops a write): the object-by-object check after the push fails the job before any commit.
    The stand-in is a `dvc` on PATH that runs the real one, then deletes one pushed file object."""
    store, remote = tmp_path / "store", tmp_path / "remote"
    gpu_job(project, "alpha", store)
    shim = write(tmp_path / "shim/dvc", f'#!/bin/sh\n"{Path(os.sys.executable).parent}/dvc" "$@" || exit $?\n'
                 f'[ "$1" = push ] && find "{remote}" -type f ! -name "*.dir" | head -n1 | xargs rm -f\nexit 0\n')
    shim.chmod(0o755)
    before = git(project, "rev-parse", "main").strip()
    path = f"{shim.parent}{os.pathsep}{Path(os.sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = commit_alpha(project, store, remote, PATH=path)
    assert result.returncode != 0 and "are not on the remote 'local' after the push" in result.stderr
    assert git(project, "rev-parse", "main").strip() == before


def test_the_results_check_fails_closed_and_runs_from_the_base_branch(tmp_path: Path) -> None:
    """Defects: a base that did not resolve passed (a failing `git diff` inside `< <(...)` escapes set -e); a
    pull request that edited the check passed it."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    unresolved = sh(["bash", "scripts/check_results_paths.sh", "origin/nope"], repo, PR_AUTHOR="someone")
    assert unresolved.returncode != 0 and "failing closed" in unresolved.stderr
    git(repo, "checkout", "-q", "-b", "pr")
    write(repo / "scripts/check_results_paths.sh", "#!/usr/bin/env bash\nexit 0\n")  # the PR edits the check away
    write(repo / "results/models/acme/scores.csv", "forged\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "forge")
    item = step("ci.yml", "test", "Only the results bot writes results/")
    result = run_step(item, repo, BASE="origin/main", PR_AUTHOR="someone", RESULTS_BOT="",
                      RUNNER_TEMP=str(tmp_path))
    assert result.returncode == 1 and "  results/models/acme/scores.csv" in result.stdout


@pytest.mark.parametrize(("changed", "models", "submissions"), [
    ("docker/base/Dockerfile", '["on-base"]', "[]"),
    ("docker/eval/requirements.txt", '["on-base","own-image"]', '["sub-a"]'),
    ("docker/own/Dockerfile", '["own-image"]', "[]"),
])
def test_a_changed_base_or_scoring_image_replans_what_depends_on_it(tmp_path: Path, changed: str, models: str,
                                                                    submissions: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    write(repo / "docker/base/Dockerfile", "FROM debian\n")
    write(repo / "docker/eval/requirements.txt", "torch==2.13.0\n")
    write(repo / "docker/shared/Dockerfile", "ARG BENCH_BASE\nFROM ${BENCH_BASE}\n")
    write(repo / "docker/own/Dockerfile", "FROM debian\n")
    write(repo / "models/on-base/model.yaml", "name: on-base\nrunner: docker\ndocker:\n  dockerfile: "
                                              "docker/shared/Dockerfile\n")
    write(repo / "models/own-image/model.yaml", "name: own-image\nrunner: docker\ndocker:\n  dockerfile: "
                                                "\"docker/own/Dockerfile\"\n")
    write(repo / "models/paper/model.yaml", "name: paper\nkind: reported\nrunner: docker\n")
    write(repo / "submissions/sub-a/manifest.jsonl", "{}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    base = git(repo, "rev-parse", "HEAD").strip()
    write(repo / changed, "changed\n")
    git(repo, "commit", "-q", "-am", "change an image")
    planned = plan(repo, base, EVENT="pull_request", REF="refs/pull/1/merge")
    assert (planned["models"], planned["submissions"]) == (models, submissions)


def test_a_models_preflight_record_travels_from_its_jobs_to_main(project: Path, tmp_path: Path) -> None:
    """The model page shows the last preflight: the record the generate job's preflight wrote reaches main through
    the shard artifact, the merge job and the commit, as a regular file only."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "scripts", work / "scripts")
    shard = work / "results/models/alpha/shards/0-of-1"
    write(shard / "manifest.jsonl", "{}\n")
    write(shard / "images/p01_s0.png", "image")
    record = '{"model": "alpha", "passed": true}\n'
    write(work / "results/preflight/alpha.json", record)
    ok(sh(["bash", "scripts/stage_shard.sh", "alpha", "0/1", "out"], work))
    assert (work / "out/results/preflight/alpha.json").read_text() == record
    merge = tmp_path / "merge"
    shutil.copytree(REPO / "scripts", merge / "scripts")
    ok(sh(["bash", "scripts/collect_shards.sh", "alpha", str(work / "out")], merge))
    assert (merge / "results/preflight/alpha.json").read_text() == record

    store, remote = tmp_path / "store", tmp_path / "remote"
    runner = runner_with_results(project, "alpha")
    write(runner / "results/preflight/alpha.json", record)
    ok(sh(["bash", "scripts/stage_results.sh", "alpha", "out"], runner))
    upload(store, "results.alpha", runner / "out")
    committer, _ = publish(project, store, remote, True, '["alpha"]')
    assert "results/preflight/alpha.json" in git(committer, "show", "--name-only", "origin/main")
    assert (committer / "results/preflight/alpha.json").read_text() == record
