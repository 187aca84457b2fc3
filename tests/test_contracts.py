"""Where results are consumed, they are checked: a swapped image, a lost manifest line, a damaged scores.csv
and a killed site build are each caught, named and never published silently (issue: stage contracts)."""

from __future__ import annotations

import csv
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from collapsebench.cli import main
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import Manifest

MODELS = ("collage", "clone")


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo-like folder where collage and clone were generated, scored and reported (seeds [0]: 75 images each)."""
    from _pytest.monkeypatch import MonkeyPatch
    from conftest import make_repo

    root = tmp_path_factory.mktemp("contracts") / "repo"
    params = make_repo(root, root.parent / "smoke", bootstrap=100)
    params["models"] = list(MODELS)
    params["scoring"]["matched"]["enabled"] = False  # not what these tests are about; keeps them quick
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    patch = MonkeyPatch()
    patch.chdir(root)
    try:
        for model in MODELS:
            assert main(["generate", model]) == 0
            assert main(["score", model]) == 0
        assert main(["report"]) == 0
    finally:
        patch.undo()
    return root


@pytest.fixture
def repo(scored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of `scored` as the working directory."""
    copy = tmp_path / "repo"
    shutil.copytree(scored, copy, symlinks=True)
    monkeypatch.chdir(copy)
    return copy


def table1(root: Path) -> list[dict[str, str]]:
    with open(root / "results/table1.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_score_refuses_a_swapped_valid_png_and_names_both_hashes(repo: Path, capsys) -> None:
    victim = repo / "results/models/collage/images/p10_s0.png"
    intruder = repo / "results/models/clone/images/p10_s0.png"
    recorded, swapped = sha256_file(victim), sha256_file(intruder)
    assert recorded != swapped
    shutil.copyfile(intruder, victim)  # a valid PNG, just not the one the manifest recorded
    before = (repo / "results/models/collage/scores.csv").read_bytes()

    assert main(["score", "collage"]) == 2
    error = capsys.readouterr().err
    assert "p10_s0.png" in error and recorded in error and swapped in error
    assert (repo / "results/models/collage/scores.csv").read_bytes() == before  # nothing overwritten


def test_a_lost_manifest_line_makes_the_model_incomplete_and_unranked(repo: Path, capsys) -> None:
    manifest = Manifest(repo / "results/models/collage")
    records = manifest.records()
    manifest.write([r for r in records if r["key"] != "p20_s0"])  # 74 of 75; p20 is an N=4 prompt
    assert main(["score", "collage"]) == 0
    assert main(["report"]) == 0
    assert "collage is incomplete: 74 of 75 images (N=4: 14 of 15)" in capsys.readouterr().err

    rows = {(r["model"], r["n_subjects"]): r for r in table1(repo)}
    assert all(rows[("collage", str(n))]["rank_scr_0.4"] == "" for n in (2, 4, 6, 8, 10))
    assert rows[("clone", "2")]["rank_scr_0.4"] == "1"  # alone in its group now, but ranked
    with open(repo / "results/coverage.csv", newline="") as handle:
        coverage = {(r["model"], r["n_subjects"]): r for r in csv.DictReader(handle)}
    assert coverage[("collage", "4")]["missing"] == "p20_s0"
    assert coverage[("collage", "4")]["complete"] == "false" and coverage[("clone", "4")]["complete"] == "true"

    assert main(["site"]) == 0
    card = (repo / "public/models/collage.html").read_text()
    assert "incomplete: 74 of 75 images (N=4: 14 of 15): not ranked" in card
    assert "incomplete" not in (repo / "public/models/clone.html").read_text()


@pytest.mark.parametrize("cut", ["mid-row", "row-boundary"])
def test_report_refuses_a_truncated_scores_csv(repo: Path, capsys, cut: str) -> None:
    scores = repo / "results/models/clone/scores.csv"
    text = scores.read_text()
    lines = text.splitlines(keepends=True)
    scores.write_text("".join(lines[:-3]) + (lines[-3][:20] if cut == "mid-row" else ""))
    table_before = (repo / "results/table1.csv").read_bytes()

    assert main(["report"]) == 2
    error = capsys.readouterr().err
    assert str(Path("results/models/clone/scores.csv")) in error
    assert ("fields (the file is truncated or damaged)" if cut == "mid-row" else "rows, but") in error
    assert (repo / "results/table1.csv").read_bytes() == table_before


def test_report_refuses_scores_whose_columns_differ_from_scoring_json(repo: Path, capsys) -> None:
    scores = repo / "results/models/clone/scores.csv"
    scores.write_text(scores.read_text().replace("dinov2,dino,", "dino,dinov2,", 1))  # swapped columns
    assert main(["report"]) == 2
    assert "differ from" in capsys.readouterr().err


def test_a_killed_site_build_leaves_nothing_behind_and_the_site_is_world_readable(repo: Path) -> None:
    stale_new = repo / ".public.new-abc123"
    stale_old = repo / ".public.old-def456" / "public"
    for folder in (stale_new, stale_old):
        folder.mkdir(parents=True)
        (folder / ".collapsebench-site").write_text("made by collapsebench site\n")
    foreign = repo / ".public.new-not-ours"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone's files")

    assert main(["site"]) == 0
    assert not stale_new.exists() and not stale_old.parent.exists()
    assert foreign.is_dir()  # never delete a folder this builder did not make
    public = repo / "public"
    for path in [public, *public.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & stat.S_IROTH, f"{path} is not world-readable ({oct(mode)})"
        if path.is_dir():
            assert mode & stat.S_IXOTH, f"{path} cannot be entered by others ({oct(mode)})"


def test_every_row_says_which_pool_it_was_cast_from(repo: Path) -> None:
    from collapsebench.benchmark.casting import pool_id
    from collapsebench.benchmark.pool import load_pool

    identity = pool_id(load_pool(repo / "data"))
    assert {r["pool"] for r in table1(repo) if r["source"] == "reproduced"} == {identity}
    assert main(["site"]) == 0
    index = (repo / "public/index.html").read_text()
    assert f"<strong>Subject pool:</strong> data (<code>{identity}</code>)" in index
    assert f'title="{identity}"' in index  # the pool column of every reproduced row
