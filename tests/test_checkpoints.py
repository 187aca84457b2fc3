"""Honest labels: a score is `real` only with the pinned checkpoints (or byte-identical files); anything else is
`custom`, recorded in scoring.json and kept off the leaderboard."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_pool

from collapsebench.benchmark.pool import load_pool
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.leaderboard.site import build_site
from collapsebench.reporting.figures import figure_sets
from collapsebench.scoring.backbones import BACKBONE_NAMES, BackboneSpec
from collapsebench.scoring.checkpoints import (
    PINNED,
    loaded_files,
    scoring_label,
    weights_record,
)
from collapsebench.scoring.config import ScoringConfig
from collapsebench.scoring.embed_cache import files_digest, weights_identity
from collapsebench.scoring.score import run_score
from collapsebench.scoring.smoke import smoke_detector_dir

PINNED_DINOV2 = str(PINNED["dinov2"]["revision"])


def scored_folder(folder: Path, pool_dir: Path) -> Path:
    """A model folder with two finished images (copies of references) and their manifest lines."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for prompt_id, subjects in ((1, ["S001", "S002"]), (2, ["S003", "S004"])):
        key = f"p{prompt_id:02d}_s0"
        shutil.copyfile(pool_dir / "subjects" / f"{subjects[0]}.png", folder / "images" / f"{key}.png")
        lines.append({"key": key, "prompt_id": prompt_id, "seed": 0, "subjects": subjects, "n_subjects": 2,
                      "scene": "neutral", "prompt": " and ".join(subjects), "image": f"images/{key}.png",
                      "sha256": sha256_file(folder / "images" / f"{key}.png")})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def real_params(backbones: dict[str, str], detector: str | None = None) -> dict:
    """params.yaml with profile real, the given backbone ids (with no revision) and matched SCR on iff `detector`."""
    matched = {"enabled": True, "detector": {"id": detector}, "score_threshold": 0.0} if detector else {"enabled": False}
    return {"scoring": {"profile": "real", "cache_dir": None, "matched": matched,
                        "backbones": {name: {"id": source, "revision": None} for name, source in backbones.items()}}}


def fake_hub_snapshot(cache: Path, repo: str, commit: str, files_from: Path, main: bool = False) -> Path:
    """The hub cache layout (models--org--name/snapshots/<commit>/) holding a copy of `files_from`."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(files_from, folder / "snapshots" / commit)
    if main:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / "main").write_text(commit)
    return folder / "snapshots" / commit


def records(config: ScoringConfig) -> dict[str, dict]:
    """What `score` records per backbone, without embedding anything."""
    return {name: weights_record(name, spec, weights_identity(spec.source, spec.revision))
            for name, spec in config.backbones.items()}


def test_local_folders_named_as_ids_under_profile_real_are_custom(smoke_root: Path, tmp_path: Path) -> None:
    pool_dir = make_pool(tmp_path / "data", count=4, size=48)
    detector = smoke_detector_dir(tmp_path / "smoke")
    params = real_params({name: str(smoke_root / name) for name in BACKBONE_NAMES}, str(detector))
    out = scored_folder(tmp_path / "model", pool_dir)
    run_score("model", out, load_pool(pool_dir), ScoringConfig.from_params(params))

    scoring = json.loads((out / "scoring.json").read_text())
    assert scoring["profile"] == "custom"
    assert set(scoring["weights"]) == {*BACKBONE_NAMES, "detector"}
    dinov2 = scoring["weights"]["dinov2"]
    assert dinov2["folder"] == str(smoke_root / "dinov2") and dinov2["verified"] is None
    assert dinov2["sha256"] == files_digest(loaded_files(smoke_root / "dinov2"))
    assert scoring["weights"]["detector"]["folder"] == str(detector)
    assert re.fullmatch(r"[0-9a-f]{64}", scoring["weights"]["detector"]["sha256"])


def test_backbone_and_detector_options_are_custom(smoke_root: Path, tmp_path: Path) -> None:
    smoke = {"scoring": {"profile": "smoke", "smoke_dir": str(smoke_root.parent), "matched": {"enabled": True}}}
    config = ScoringConfig.from_params(smoke, overrides={"dinov2": str(smoke_root / "dinov2")})
    assert config.profile == "custom" and scoring_label(config.profile, records(config)) == "custom"
    detector = ScoringConfig.from_params(smoke, detector=smoke_root / "clip")
    assert detector.profile == "custom" and detector.matched is not None
    assert detector.matched.detector == BackboneSpec("detector", str(smoke_root / "clip"))
    assert scoring_label(ScoringConfig.from_params(smoke).profile, records(config)) == "smoke"
    with pytest.raises(BenchError, match="--detector .*: matched SCR is off"):
        ScoringConfig.from_params({"scoring": {**smoke["scoring"], "matched": {"enabled": False}}},
                                  detector=smoke_root / "clip")


def test_files_identical_to_the_pinned_checkpoints_stay_real(smoke_root: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    for name in BACKBONE_NAMES:  # the pinned checkpoints, as `weights pull` leaves them (dino: unpinned -> main)
        fake_hub_snapshot(cache, str(PINNED[name]["id"]), str(PINNED[name]["revision"] or "d" * 40),
                          smoke_root / name, main=PINNED[name]["revision"] is None)
        shutil.copytree(smoke_root / name, tmp_path / "mine" / name)  # the same files, somewhere else
    config = ScoringConfig.from_params(real_params({name: str(tmp_path / "mine" / name) for name in BACKBONE_NAMES}))
    found = records(config)
    assert scoring_label(config.profile, found) == "real"
    assert {record["verified"] for record in found.values()} == {"sha256"}

    processor = tmp_path / "mine" / "dinov2" / "preprocessor_config.json"  # same weights, other preprocessing
    processor.write_text(processor.read_text().replace('"shortest_edge": 256', '"shortest_edge": 300'))
    assert weights_record("dinov2", BackboneSpec("dinov2", str(processor.parent)), {})["verified"] is None


def test_a_hub_id_is_recorded_with_its_commit_and_the_snapshot_it_reads(smoke_root: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snapshot = fake_hub_snapshot(cache, "facebook/dinov2-base", PINNED_DINOV2, smoke_root / "dinov2")
    pinned = BackboneSpec("dinov2", "facebook/dinov2-base", PINNED_DINOV2)
    record = weights_record("dinov2", pinned, weights_identity(pinned.source, pinned.revision))
    assert record == {"id": "facebook/dinov2-base", "revision": PINNED_DINOV2, "commit": PINNED_DINOV2,
                      "sha256": files_digest(loaded_files(snapshot)), "verified": "id+commit"}

    other = "e" * 40  # another commit of the pinned id: custom, unless its files are the pinned ones
    fake_hub_snapshot(cache, "facebook/dinov2-base", other, smoke_root / "clip")
    assert weights_record("dinov2", BackboneSpec("dinov2", "facebook/dinov2-base", other),
                          {"commit": other})["verified"] is None
    (cache / "models--facebook--dinov2-base" / "snapshots" / other).rename(tmp_path / "gone")
    fake_hub_snapshot(cache, "facebook/dinov2-base", other, smoke_root / "dinov2")
    assert weights_record("dinov2", BackboneSpec("dinov2", "facebook/dinov2-base", other),
                          {"commit": other})["verified"] == "sha256"


def test_the_pins_scored_against_are_the_pipelines() -> None:
    scoring = yaml.safe_load((REPO / "params.yaml").read_text())["scoring"]
    assert {name: dict(scoring["backbones"][name]) for name in BACKBONE_NAMES} == {
        name: PINNED[name] for name in BACKBONE_NAMES}
    assert scoring["matched"]["detector"] == PINNED["detector"]


def write_table(results: Path) -> None:
    """A table1.csv (and matching sweep) as `report` writes it for one real model and one custom model."""
    rows = [{"model": name, "display_name": f"{name.title()} model", "kind": "model", "n_subjects": 2,
             "source": "reproduced", "backbones": backbones, "dinov2": 0.5, "scr_0.4": 0.25}
            for name, backbones in (("alpha", "real"), ("delta", "custom"))]
    results.mkdir(parents=True)
    for name, fields in (("table1.csv", rows[0]), ("per_scene.csv", {**rows[0], "scene": "neutral"})):
        with open(results / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, list(fields))
            writer.writeheader()
            writer.writerows([{**row, **({"scene": "neutral"} if "scene" in fields else {})} for row in rows])


def test_custom_rows_are_listed_apart_and_never_on_the_leaderboard(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_table(results)
    build_site(results, tmp_path / "no-models", tmp_path / "public", REPO / "site")
    html = (tmp_path / "public" / "index.html").read_text()
    reproduced = html.split('<section id="reproduced">')[1].split("</section>")[0]
    custom = html.split('<section id="custom"')[1].split("</section>")[0]
    assert "Alpha model" in reproduced and "Delta model" not in reproduced
    assert "Delta model" in custom and "Custom backbones (unverified)" in custom
    scenes = (tmp_path / "public" / "scenes.html").read_text()
    assert "alpha" in scenes and "delta" not in scenes
    assert "not verified to be the pinned checkpoints" in (tmp_path / "public" / "models" / "delta.html").read_text()
    drawn = [row["model"] for figure_set in figure_sets(results) for row in figure_set.table]
    assert drawn == ["alpha"]


def test_a_missing_checkpoint_names_the_commit_wanted_the_commits_cached_and_the_pull(
        smoke_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collapsebench.scoring.backbones import ImageBackbone

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    fake_hub_snapshot(cache, "facebook/dinov2-base", "e" * 40, smoke_root / "dinov2")
    error = BackboneSpec("dinov2", "facebook/dinov2-base", PINNED_DINOV2).load_error("backbone dinov2", OSError("x"))
    message = str(error)
    assert f"facebook/dinov2-base was wanted at {PINNED_DINOV2}" in message
    assert f"holds commit(s) {'e' * 40}" in message
    assert "collapsebench weights pull --scoring" in message and "HF_HUB_OFFLINE=1" in message
    with pytest.raises(BenchError, match=f"backbone dinov2: cannot load the folder {tmp_path} .*save_pretrained"):
        ImageBackbone(BackboneSpec("dinov2", str(tmp_path)))
