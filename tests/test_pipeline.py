"""`dvc repro` end to end on a tiny configuration: outputs appear, a rerun does nothing,
and changing one model's settings reruns only that model (then the report and site)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from collapsebench.core.runlog import read_run_log

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def tracked_files(workdir: Path) -> dict[str, bytes]:
    """The bytes of every file under results/ (and dvc.lock) that git does not ignore: what a clone commits."""
    listed = run(["git", "ls-files", "--others", "--cached", "--exclude-standard", "-z", "results", "dvc.lock"],
                 workdir).split("\0")
    return {path: (workdir / path).read_bytes() for path in listed if path}


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_dvc_repro_is_idempotent_and_reruns_only_the_changed_model(workdir: Path) -> None:
    """Also: no hand-kept model list. A new models/<name>/ is on the site at once, as pending, and `dvc repro`
    neither runs a model that was not selected (here a GPU model's container) nor fails for want of its results."""
    shutil.copy(REPO / "dvc.yaml", workdir / "dvc.yaml")
    shutil.copytree(REPO / "src", workdir / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "docker", workdir / "docker", ignore=shutil.ignore_patterns("wheels"))
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"] = ["collage", "floor"]
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    entry = yaml.safe_load((REPO / "models/flux2-klein-4b/model.yaml").read_text())
    entry.update(name="newcomer", display_name="Newcomer <b>4B</b>")
    (workdir / "models/newcomer").mkdir()
    (workdir / "models/newcomer/model.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    (workdir / "submissions/acme-results").mkdir()  # a results submission merged, not imported yet
    for ignores in (".gitignore", ".dvcignore"):
        shutil.copy(REPO / ignores, workdir / ignores)
    run(["git", "init", "-q"], workdir)
    run(["dvc", "init", "-q"], workdir)
    run(["git", "add", "-A"], workdir)  # a clone has a commit (the site's build time is the commit's)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "clone"], workdir)

    first = run(["dvc", "repro"], workdir)
    assert ran_stages(first) == {"generate", "score", "validity", "report", "site"}
    assert "generate: collage, floor" in first and not (workdir / "results/models/newcomer").exists()
    index, models = (workdir / "public/index.html").read_text(), (workdir / "public/models.html").read_text()
    for name in ("newcomer", "mosaic", "clone", "acme-results"):
        assert f'id="pending-{name}"' in index and f'id="pending-{name}"' in models
    assert "Newcomer &lt;b&gt;4B&lt;/b&gt;" in index and "<b>4B</b>" not in index  # escaped
    assert 'id="pending-collage"' not in index and 'id="pending-psr"' not in index  # scored; paper-only
    assert (workdir / "results/table1.csv").is_file()
    assert (workdir / "public/index.html").is_file()
    assert (workdir / "results/figures/fig4_trends.png").is_file()
    table = (workdir / "results/table1.csv").read_text()
    assert sorted(json.loads((workdir / "results/generated.json").read_text())["models"]) == ["collage", "floor"]

    second = run(["dvc", "repro"], workdir)
    assert ran_stages(second) == set()
    assert (workdir / "results/table1.csv").read_text() == table

    # A fresh clone has what git tracks (manifests, scores, tables) but no images, no generate record (git
    # ignores it, as it does the images), no DVC cache: its `dvc repro` makes the images again, so the gallery it
    # builds has them.
    # And what git would commit is written canonically: the clone's rerun, from an empty embedding cache, leaves
    # every such file byte for byte as it was (no clock, no cache counters, no batching noise), so `git status`
    # after the front door is empty.
    run(["git", "check-ignore", "-q", "results/generated.json"], workdir)
    committed = tracked_files(workdir)
    assert {"dvc.lock", "results/table1.csv", "results/models/collage/manifest.jsonl",
            "results/models/collage/scoring.json", "results/scored.json"} <= set(committed)
    shutil.rmtree(workdir / ".dvc/cache")
    shutil.rmtree(workdir / ".cache/embeddings")
    (workdir / "results/generated.json").unlink()
    for name in ("collage", "floor"):
        shutil.rmtree(workdir / f"results/models/{name}/images")
        (workdir / f"results/models/{name}/runlog.jsonl").unlink()
    fresh = run(["dvc", "repro"], workdir)
    assert "generate" in ran_stages(fresh) and "generate floor: 75 made" in fresh
    assert len(list((workdir / "results/models/collage/images").glob("*.png"))) == 75
    changed = [path for path, data in tracked_files(workdir).items() if committed.get(path) != data]
    assert changed == [] and set(tracked_files(workdir)) == set(committed), changed
    # The run log says what this run did: 75 images made again, and no scoring, since the images (so the record of
    # the manifests that the score stage depends on) came out the same.
    assert [event["stage"] for event in read_run_log(workdir / "results/models/floor")] == ["generate"] * 75

    # One model's settings change: only that model's images are made again (its manifest fingerprint is stale).
    collage = workdir / "results/models/collage"
    untouched = {path: path.stat().st_mtime_ns for path in collage.glob("images/*")}
    records = (collage / "manifest.jsonl").read_text()
    model_file = workdir / "models/floor/model.yaml"
    model_file.write_text(model_file.read_text().replace("size: 512", "size: 256"))
    third = run(["dvc", "repro"], workdir)
    assert ran_stages(third) == {"generate", "score", "report", "site"}
    assert "generate floor: 75 made" in third and "generate collage: 0 made, 75 already done" in third
    manifest = (workdir / "results/models/floor/manifest.jsonl").read_text()
    assert '"width": 256' in manifest and '"width": 512' not in manifest
    assert {path: path.stat().st_mtime_ns for path in untouched} == untouched
    assert (collage / "manifest.jsonl").read_text() == records

    # Code deps are the stage folders: an edit reruns exactly the stages whose output that code shapes.
    expected = {
        "src/collapsebench/benchmark/suite.py": {"generate", "score", "validity", "report", "site"},  # prompts
        "src/collapsebench/scoring/detection.py": {"score", "validity"},  # scoring half
        "src/collapsebench/reporting/matched_cells.py": {"report", "site"},  # its report half: no rescoring
        "src/collapsebench/leaderboard/gallery.py": {"site"},
    }
    for relative, stages in expected.items():
        path = workdir / relative
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        assert stale_stages(run(["dvc", "status"], workdir)) == stages, relative
        path.write_text(original)
    assert run(["dvc", "status"], workdir).strip().endswith("Data and pipelines are up to date.")


def stale_stages(status: str) -> set[str]:
    """Stage names `dvc status` lists as changed (its lines that end with a colon, unindented)."""
    return {line[:-1] for line in status.splitlines() if line.endswith(":") and not line[0].isspace()}
