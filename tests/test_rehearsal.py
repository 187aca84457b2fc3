"""A rehearsal of the leaderboard loop on CPU, with the workflows' own steps and scripts.

In temporary git repositories (a bare `origin`, and one clone per job, as each job checks out afresh), a pull
request adds a model; a calibration adapter stands in for a GPU model and the local scoring (smoke backbones)
for the scoring container. Then, as gpu.yml and pages.yml would: plan the pull request and the push to main;
generate 4 shards and upload them; download them (as actions/download-artifact extracts them with
merge-multiple, and without it), merge and score; record the images with DVC and upload the results; the
commit job pushes the images to a local DVC remote standing in for the results remote, then commits; a fresh
clone pulls the pool and the images and builds the site, and the gallery shows the model's images.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from PIL import Image
from workflow_kit import download, expand, git, ok, run_step, sh, step, upload

pytestmark = pytest.mark.slow

MODEL = "standin"
SHOWN_AS = "Stand-in for a GPU model"
RUN_URL = "https://github.com/acme/collapsebench/actions/runs/1"


class Images(HTMLParser):
    """The (src, alt) of every <img> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            values = dict(attrs)
            self.found.append((values.get("src") or "", values.get("alt") or ""))


def plan(clone: Path, base: str = "", **env: str) -> dict[str, str]:
    """gpu.yml's plan step; what it writes to $GITHUB_OUTPUT."""
    output = clone / "github-output"
    ok(run_step(step("gpu.yml", "plan", "Plan (scripts/gpu_plan.sh)"), clone, BASE=base, ONLY="",
                GITHUB_OUTPUT=str(output), **env))
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def clone(origin: Path, folder: Path, results_remote: Path | None = None) -> Path:
    """A job's checkout of main (with the demo pool pulled, as every job that needs the pool does)."""
    git(origin.parent, "clone", "-q", "-b", "main", str(origin), str(folder))
    ok(sh(["dvc", "pull", "-q", "data.dvc"], folder))
    if results_remote:
        ok(sh(["dvc", "remote", "add", "--local", "rehearsal", str(results_remote)], folder))
    return folder


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """The repository on GitHub: main with the pipeline, the scripts and workflows, the demo pool's DVC remote."""
    work = tmp_path / "maintainer"
    for folder in ("benchmark", "site", "scripts", ".github", "src"):
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("base", "eval"):
        shutil.copytree(REPO / "docker" / folder, work / "docker" / folder)
    shutil.copytree(REPO / ".dvc" / "demo-remote", work / ".dvc" / "demo-remote")
    for file in (".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore", "dvc.yaml", "data.dvc",
                 "CONTRIBUTING.md", "results/reported/paper_table1.csv"):
        (work / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / file, work / file)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["suite"]["seeds"] = [0]
    params["report"]["bootstrap"] = 50
    params["scoring"]["smoke_dir"] = str(tmp_path / "smoke")  # shared by the jobs: built once
    params["scoring"]["cache_dir"] = str(tmp_path / "embeddings")
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "origin.git")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "main")
    git(work, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(work, "push", "-q", "origin", "main")
    return tmp_path / "origin.git"


def test_rehearsal_pull_request_to_published_gallery(origin: Path, tmp_path: Path) -> None:
    remote, store = tmp_path / "results-remote", tmp_path / "artifacts"
    store.mkdir()

    # The pull request: a model entry (the collage calibration adapter as stand-in), and nothing else: no list of
    # models to add it to.
    author = clone(origin, tmp_path / "author")
    git(author, "checkout", "-q", "-b", "add-standin")
    entry = yaml.safe_load((REPO / "models/collage/model.yaml").read_text())
    (author / "models" / MODEL).mkdir(parents=True)
    entry.update(name=MODEL, display_name=SHOWN_AS)
    (author / "models" / MODEL / "model.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    git(author, "add", "-A")
    git(author, "commit", "-q", "-m", "add standin")
    git(author, "update-ref", "refs/remotes/origin/main", "main")
    assert plan(author, "origin/main", EVENT="pull_request", REF="refs/pull/1/merge") == {
        "models": f'["{MODEL}"]', "submissions": "[]", "shards": "[0]", "shard_count": "25", "commit": "false"}
    before = git(author, "rev-parse", "main").strip()
    git(author, "push", "-q", "origin", "add-standin:main")  # merged

    # Merged but not generated yet: pages.yml still builds, and the site lists the model as pending.
    early = clone(origin, tmp_path / "pages-early")
    ok(run_step(step("pages.yml", "build", "Subject pool and result images"), early))
    ok(run_step(step("pages.yml", "build", "Build the site"), early))
    assert f'id="pending-{MODEL}"' in (early / "public/index.html").read_text()
    assert SHOWN_AS in (early / "public/models.html").read_text()

    # gpu.yml on the push to main: plan.
    planned = plan(clone(origin, tmp_path / "plan"), before, EVENT="push", REF="refs/heads/main")
    assert planned == {"models": f'["{MODEL}"]', "submissions": "[]", "shards": "[0,1,2,3]", "shard_count": "4",
                       "commit": "true"}

    # generate: one job per shard, each uploads its shard artifact under the workflow's own name.
    upload_name = step("gpu.yml", "generate", uses="actions/upload-artifact")["with"]["name"]
    for shard in json.loads(planned["shards"]):
        runner = clone(origin, tmp_path / f"generate-{shard}")
        ok(run_step(step("gpu.yml", "generate", "collapsebench generate --shard"), runner, MODEL=MODEL,
                    SHARD=f"{shard}/{planned['shard_count']}"))
        upload(store, expand(upload_name, {"matrix.model": MODEL, "matrix.shard": str(shard)}), runner / "out")
    # A model whose name extends this one's: its shards must stay out of this model's merge.
    upload(store, expand(upload_name, {"matrix.model": f"{MODEL}-xl", "matrix.shard": "0"}), runner / "out")

    # merge-score: download as the workflow says (merge-multiple), merge, fill in, score, record, upload.
    runner = clone(origin, tmp_path / "merge-score")
    fetch = step("gpu.yml", "merge-score", uses="actions/download-artifact")["with"]
    pattern = expand(fetch["pattern"], {"matrix.model": MODEL})
    assert len(download(store, pattern, runner / fetch["path"], fetch["merge-multiple"])) == 4
    ok(run_step(step("gpu.yml", "merge-score", "collapsebench merge"), runner, MODEL=MODEL))
    merged = (runner / "results/models" / MODEL / "manifest.jsonl").read_text()
    assert len(merged.splitlines()) == 75
    # The other layout (one folder per artifact) gives the same merge.
    other = clone(origin, tmp_path / "merge-other-layout")
    download(store, pattern, other / fetch["path"], merge_multiple=False)
    assert (other / "incoming" / expand(upload_name, {"matrix.model": MODEL, "matrix.shard": "0"})).is_dir()
    ok(run_step(step("gpu.yml", "merge-score", "collapsebench merge"), other, MODEL=MODEL))
    assert (other / "results/models" / MODEL / "manifest.jsonl").read_text() == merged

    fill_in = step("gpu.yml", "merge-score", "collapsebench generate (makes any job a shard missed; a complete "
                                             "merge makes nothing)")
    assert f"generate {MODEL}: 0 made, 75 already done" in ok(run_step(fill_in, runner, MODEL=MODEL))
    score = step("gpu.yml", "merge-score", "collapsebench score (in the scoring image), then record the images "
                                           "with DVC")
    assert "--runner docker --gpu all" in score["run"]
    cpu_score = {**score, "run": score["run"].replace("--runner docker --gpu all", "--runner local")}
    ok(run_step(cpu_score, runner, MODEL=MODEL))
    results_name = expand(step("gpu.yml", "merge-score", uses="actions/upload-artifact")["with"]["name"],
                          {"matrix.model": MODEL})
    upload(store, results_name, runner / "out")

    # Cancelled here, main would still plan the model: its results are missing.
    assert plan(clone(origin, tmp_path / "plan-2"), EVENT="workflow_dispatch", REF="refs/heads/main")["models"] \
        == f'["{MODEL}"]'

    # commit: push the images to the (local) results remote, then commit to main.
    committer = clone(origin, tmp_path / "commit", results_remote=remote)
    fetch = step("gpu.yml", "commit", uses="actions/download-artifact")["with"]
    assert download(store, fetch["pattern"], committer / fetch["path"], fetch["merge-multiple"]) == [results_name]
    publish = step("gpu.yml", "commit", "Push the images to the results remote, then commit images.dvc, "
                                        "manifests and scores")
    ok(run_step(publish, committer, MODELS=planned["models"], SUBMISSIONS="[]", RUN_URL=RUN_URL,
                RESULTS_REMOTE="rehearsal"))
    assert len(list(remote.rglob("*"))) > 75
    log = git(committer, "show", "--name-only", "--format=%an %s", "origin/main")
    assert f"github-actions[bot] results: GPU run {RUN_URL}" in log
    for path in (f"results/models/{MODEL}/images.dvc", f"results/models/{MODEL}/manifest.jsonl",
                 f"results/models/{MODEL}/scores.csv"):
        assert path in log
    assert "model.yaml" not in log

    # The next run on main finds nothing missing.
    assert plan(clone(origin, tmp_path / "plan-3"), EVENT="workflow_dispatch", REF="refs/heads/main")["models"] \
        == "[]"

    # pages: a fresh clone pulls the pool and the images, builds the site; the gallery shows the images.
    reader = clone(origin, tmp_path / "pages", results_remote=remote)
    assert not (reader / "results/models" / MODEL / "images").exists()  # images are never in git
    ok(run_step(step("pages.yml", "build", "Subject pool and result images"), reader, RESULTS_REMOTE="rehearsal"))
    for line in (reader / "results/models" / MODEL / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        image = reader / "results/models" / MODEL / record["image"]
        assert hashlib.sha256(image.read_bytes()).hexdigest() == record["sha256"]
    ok(run_step(step("pages.yml", "build", "Build the site"), reader))
    shown = set()
    for page in sorted((reader / "public").glob("gallery-n*.html")):
        parser = Images()
        parser.feed(page.read_text())
        shown |= {(src, alt) for src, alt in parser.found if alt.startswith(f"{SHOWN_AS}: ")}
    assert len({alt for _, alt in shown}) == 75  # one image per prompt (seed 0)
    for source, _ in shown:
        with Image.open(reader / "public" / source) as thumb:
            thumb.load()
    assert f'id="pending-{MODEL}"' not in (reader / "public/index.html").read_text()  # a row now, not pending


def test_a_model_run_as_three_shards_merges_and_its_preview_shows_every_image(origin: Path, tmp_path: Path) -> None:
    """Defect: a model run as more than one shard never got its images merged, and the preview (uploaded from
    the model folder) could not see them. Here k=3, through the workflow's own steps and scripts."""
    store = tmp_path / "artifacts"
    store.mkdir()
    author = clone(origin, tmp_path / "author")  # the stand-in model, merged
    (author / "models" / MODEL).mkdir(parents=True)
    entry = yaml.safe_load((REPO / "models/collage/model.yaml").read_text())
    (author / "models" / MODEL / "model.yaml").write_text(yaml.safe_dump({**entry, "name": MODEL}, sort_keys=False))
    git(author, "add", "-A")
    git(author, "commit", "-q", "-m", "add standin")
    git(author, "push", "-q", "origin", "main")
    upload_name = step("gpu.yml", "generate", uses="actions/upload-artifact")["with"]["name"]
    for shard in range(3):
        runner = clone(origin, tmp_path / f"generate-{shard}")
        ok(run_step(step("gpu.yml", "generate", "collapsebench generate --shard"), runner, MODEL=MODEL,
                    SHARD=f"{shard}/3"))
        upload(store, expand(upload_name, {"matrix.model": MODEL, "matrix.shard": str(shard)}), runner / "out")
    runner = clone(origin, tmp_path / "merge-score")
    fetch = step("gpu.yml", "merge-score", uses="actions/download-artifact")["with"]
    assert len(download(store, expand(fetch["pattern"], {"matrix.model": MODEL}), runner / fetch["path"],
                        fetch["merge-multiple"])) == 3
    ok(run_step(step("gpu.yml", "merge-score", "collapsebench merge"), runner, MODEL=MODEL))
    model = runner / "results/models" / MODEL
    records = [json.loads(line) for line in (model / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 75 and len({r["key"] for r in records}) == 75
    ok(run_step(step("gpu.yml", "merge-score", "The preview's images and manifest, as regular files only"), runner,
                MODEL=MODEL))
    preview = step("gpu.yml", "merge-score", "The preview's images, to look at before the merge")
    uploaded = runner / expand(preview["with"]["path"], {"matrix.model": MODEL})
    assert (uploaded / "manifest.jsonl").read_text() == (model / "manifest.jsonl").read_text()
    for record in records:
        image = uploaded / record["image"]
        assert not image.is_symlink() and hashlib.sha256(image.read_bytes()).hexdigest() == record["sha256"]
