"""Score and report in their pinned container: the plan without an engine, then the CPU image against the host.

The real-container test scores the calibration models `collage` and `clone`
on the host and in the CPU test image (docker/cpu/Dockerfile: the scoring
environment of docker/eval with the CPU build of torch, the same versions the
host's venv has), each with its own embedding cache and smoke-backbone folder
so the container builds its backbones and computes every embedding itself,
and requires identical scores.csv and table1.csv, byte for byte. It skips,
printing why, only where no Docker engine can run (see test_docker_runner.py).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from test_docker_runner import BASE_IMAGE, engine  # noqa: F401 - `engine`: the session fixture readying the engine

from collapsebench.cli import load_params, main
from collapsebench.core import containers
from collapsebench.core.errors import BenchError
from collapsebench.core.runlog import read_run_log
from collapsebench.reporting import container as report_container
from collapsebench.scoring import container as score_container

CPU_IMAGE = ["--image-dockerfile", "docker/cpu/Dockerfile", "--base-image", BASE_IMAGE]
MODELS = ("collage", "clone")


def score_plan(root: Path, **extra) -> score_container.ScoreRun:
    return score_container.ScoreRun(model="collage", params_path=root / "params.yaml",
                                    params=load_params(root / "params.yaml"), models_dir=root / "models",
                                    results_dir=root / "results", **extra)


# ---------------------------------------------------------------- without an engine

def test_score_mounts_inputs_read_only_and_only_results_and_caches_writable(workdir: Path, tmp_path: Path) -> None:
    (workdir / "results/models/collage").mkdir(parents=True)
    hub, weights = tmp_path / "hub", tmp_path / "my-clip"
    hub.mkdir()
    weights.mkdir()
    spec = score_container.container_spec(score_plan(workdir, hub_cache=hub, shard="1/4",
                                                     backbones=[f"clip={weights}", "dino=no/such/folder"]))
    mounts = {m.target: m for m in spec.mounts}
    smoke = load_params(workdir / "params.yaml")["scoring"]["smoke_dir"]  # absolute in the tests: seen unchanged
    assert sorted(t for t, m in mounts.items() if not m.read_only) == sorted(
        ["/work/results/models/collage", "/work/.cache/embeddings", smoke])
    assert mounts["/work/.cache/embeddings"].source == (workdir / ".cache/embeddings").resolve()
    for target in ("/work/params.yaml", "/work/models", "/work/data", "/work/benchmark",
                   containers.HUB_CACHE, weights.as_posix()):
        assert mounts[target].read_only
    assert spec.command[-8:] == ["--runner", "local", "--shard", "1/4", "--backbone", f"clip={weights}",
                                 "--backbone", "dino=no/such/folder"]  # a bad pair is left for score to report
    assert spec.gpu is None and spec.name == "collapsebench-score-collage-shard-1-of-4"
    assert score_container.container_spec(score_plan(workdir, gpu="0")).gpu == "0"


def test_report_writes_only_into_results(workdir: Path) -> None:
    spec = report_container.container_spec(workdir / "params.yaml", load_params(workdir / "params.yaml"),
                                           workdir / "models", workdir / "results")
    assert [m.target for m in spec.mounts if not m.read_only] == ["/work/results"]
    assert {m.target for m in spec.mounts} >= {"/work/params.yaml", "/work/models", "/work/data", "/work/benchmark"}
    assert spec.command[-3:] == ["report", "--runner", "local"] and spec.gpu is None
    # The prompts' folder is mounted (the castings live beside prompts.yaml): it cannot be the working folder.
    params = {**load_params(workdir / "params.yaml"), "suite": {"prompts": "prompts.yaml", "pool": "data"}}
    (workdir / "prompts.yaml").touch()
    with pytest.raises(BenchError, match="suite.prompts prompts.yaml must be in a folder of its own"):
        report_container.container_spec(workdir / "params.yaml", params, workdir / "models", workdir / "results")


def test_the_runner_comes_from_the_flag_then_params_then_local(workdir: Path, capsys) -> None:
    path = workdir / "params.yaml"
    assert containers.choose_runner(None, {}, "scoring", path) == "local"
    assert containers.choose_runner(None, {"scoring": {"runner": "docker"}}, "scoring", path) == "docker"
    assert containers.choose_runner("local", {"scoring": {"runner": "docker"}}, "scoring", path) == "local"
    with pytest.raises(BenchError, match=r"params.yaml: report.runner must be one of local, docker, got 'podman'"):
        containers.choose_runner(None, {"report": {"runner": "podman"}}, "report", path)
    # params.yaml alone sends score to the container, which first checks there is something to score.
    params = load_params(path)
    params["scoring"]["runner"] = "docker"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert main(["score", "nothing-here"]) == 2
    assert "no results folder for model nothing-here" in capsys.readouterr().err


# ---------------------------------------------------------------- the CPU image against the host

def max_abs_difference(left: Path, right: Path) -> float:
    """The largest difference between the numeric cells of two scores.csv files (0.0 when equal)."""
    with open(left, newline="") as a, open(right, newline="") as b:
        rows = list(zip(csv.DictReader(a), csv.DictReader(b)))
    worst = 0.0
    for row_a, row_b in rows:
        for key, value in row_a.items():
            try:
                worst = max(worst, abs(float(value) - float(row_b[key])))
            except ValueError:
                continue
    return worst


@pytest.mark.slow
def test_scores_and_table_made_in_the_cpu_image_equal_the_hosts(workdir: Path, engine) -> None:  # noqa: F811
    params = load_params(workdir / "params.yaml")
    params["models"] = list(MODELS)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The container's own caches: nothing it scores comes from the host's embeddings or smoke backbones.
    params["scoring"].update(cache_dir=".cache/embeddings-docker", smoke_dir=str(workdir.parent / "smoke-docker"))
    (workdir / "params-docker.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    image_id = containers.ensure_image(engine, containers.scoring_image("docker/cpu/Dockerfile", BASE_IMAGE),
                                       io.StringIO()).id

    for model in MODELS:
        assert main(["generate", model, "--runner", "local"]) == 0
        assert main(["score", model]) == 0
    assert main(["report"]) == 0
    host_table = (workdir / "results/table1.csv").read_bytes()
    (workdir / "results/table1.csv").unlink()
    host: dict[str, bytes] = {}
    for model in MODELS:  # what the container must make again
        folder = workdir / "results/models" / model
        host[model] = (folder / "scores.csv").read_bytes()
        (folder / "scores.csv").rename(folder / "host-scores.csv")
        (folder / "scoring.json").unlink()

    for model in MODELS:
        assert main(["--params", "params-docker.yaml", "score", model, "--runner", "docker", *CPU_IMAGE]) == 0
        folder = workdir / "results/models" / model
        info = yaml.safe_load((folder / "scoring.json").read_text())
        assert info["container"] == {"runner": "docker", "image_id": image_id}
        work = read_run_log(folder)[-1]  # written by the container's score, into the mounted folder
        assert sum(work["images_through_backbones"].values()) > 0 and work["embedding_cache"]["misses"] > 0
        difference = max_abs_difference(folder / "host-scores.csv", folder / "scores.csv")
        assert (folder / "scores.csv").read_bytes() == host[model], f"{model}: max |host - container| = {difference}"
    assert any((workdir / ".cache/embeddings-docker").rglob("*.emb"))

    assert main(["--params", "params-docker.yaml", "report", "--runner", "docker", *CPU_IMAGE]) == 0
    assert (workdir / "results/table1.csv").read_bytes() == host_table
    assert engine.containers.list(all=True, filters={"label": "collapsebench.stage"}) == []
