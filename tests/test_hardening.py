"""Hostile or careless model files get nowhere: each case names the file and the problem, and nothing runs."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from PIL import Image
from submission_kit import (
    FLUX2,
    SMALL_PROMPTS,
    benchmark,
    copy_submission,
    edit_line,
    replace_image,
)

from collapsebench.benchmark.pool import load_pool
from collapsebench.cli import main
from collapsebench.core.containers import ImageSource, build_args, container_user
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import Manifest
from collapsebench.intake.submission import check_submission, import_submission
from collapsebench.intake.validate import MAX_SHOWN_PER_FILE, check_model_folder


def model_folder(root: Path, text: str, name: str = "acme-flux") -> Path:
    folder = root / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.yaml").write_text(text)
    (root / "docker" / name).mkdir(parents=True)
    (root / "docker" / name / "Dockerfile").write_text("ARG BENCH_BASE\nFROM ${BENCH_BASE}\n")
    return folder


def problems_of(folder: Path) -> list[str]:
    return [str(problem) for problem in check_model_folder(folder)]


def test_a_duplicate_key_is_a_problem_not_a_silent_override(tmp_path: Path) -> None:
    text = yaml.safe_dump(FLUX2, sort_keys=False) + "runner: local\n"  # appended below the reviewed `runner: docker`
    found = problems_of(model_folder(tmp_path, text))
    assert any("duplicate key 'runner'" in p and "model.yaml" in p for p in found), found


def test_runner_local_is_only_for_calibration_entries(tmp_path: Path) -> None:
    found = problems_of(model_folder(tmp_path, yaml.safe_dump({**FLUX2, "runner": "local"}, sort_keys=False)))
    assert any("runner: local runs the adapter inside this process" in p for p in found), found
    assert problems_of(REPO / "models/psr") == []  # reported-only: its adapter only explains why it cannot run
    calibration = yaml.safe_load((REPO / "models/collage/model.yaml").read_text())
    assert calibration["runner"] == "local" and problems_of(REPO / "models/collage") == []


@pytest.mark.parametrize("args, message", [
    ({"BASE_IMAGE": "evil/image:latest"}, "build arg 'BASE_IMAGE' is not allowed"),
    ({"UPSTREAM_REPO": "https://example.org/fork.git"}, "build arg 'UPSTREAM_REPO' is not allowed"),
    ({"UPSTREAM_COMMIT": "main"}, "build arg UPSTREAM_COMMIT must be a full 40-hex commit"),
])
def test_build_args_are_allow_listed_and_commits_pinned(tmp_path: Path, args: dict, message: str) -> None:
    document = {**FLUX2, "docker": {**FLUX2["docker"], "build_args": args}}
    found = problems_of(model_folder(tmp_path, yaml.safe_dump(document, sort_keys=False)))
    assert any(message in p for p in found), found
    source = ImageSource(repo_root=tmp_path, origin="models/acme-flux/model.yaml", dockerfile="docker/x/Dockerfile",
                         build_args=args)
    with pytest.raises(BenchError, match=message.split(" must")[0].split(" is not")[0]):
        build_args(source, None)  # the runner refuses them too, whatever validate said
    good = ImageSource(repo_root=tmp_path, origin="m", dockerfile="d", build_args={"UPSTREAM_COMMIT": "a" * 40})
    assert build_args(good, None) == {"UPSTREAM_COMMIT": "a" * 40}


@pytest.mark.parametrize("value, fragment", [("9" * 5000, "a value cannot be read"),
                                             ("2026-13-45", "a value cannot be read")])
def test_values_pyyaml_cannot_build_are_problems_not_tracebacks(tmp_path: Path, capsys, value: str,
                                                                fragment: str) -> None:
    text = yaml.safe_dump(FLUX2, sort_keys=False) + f"released: {value}\n"
    folder = model_folder(tmp_path, text)
    assert main(["--params", str(REPO / "params.yaml"), "validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert fragment in out and "model.yaml" in out


def test_a_named_folder_that_does_not_exist_fails(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "models" / "nonexistent"
    assert main(["--params", str(REPO / "params.yaml"), "validate", str(missing)]) == 1
    assert f"{missing}: not found" in capsys.readouterr().out


def test_problems_are_capped_per_file(small_pristine: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    folder = copy_submission(small_pristine[0], tmp_path)
    with open(folder / "manifest.jsonl", "a", encoding="utf-8") as handle:
        handle.write("not json\n" * 5000)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"suite": {"prompts": str(REPO / "benchmark/prompts.yaml"),
                                                "pool": str(small_pristine[1]), "seeds": [0, 1, 2]}}))
    assert main(["--params", str(params), "validate", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) < 3 * MAX_SHOWN_PER_FILE
    assert any("manifest.jsonl: ... and" in line and "more problems not shown" in line for line in out)


def test_a_non_finite_claim_is_rejected(small_pristine: tuple[Path, Path], tmp_path: Path) -> None:
    folder = copy_submission(small_pristine[0], tmp_path)
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    text = "".join((json.dumps(r) if r["key"] != "p01_s0" else json.dumps({**r, "wall_s": 1.0}).replace(
        '"wall_s": 1.0', '"wall_s": NaN')) + "\n" for r in records)
    (folder / "manifest.jsonl").write_text(text)
    found = [str(p) for p in check_submission(folder, benchmark(SMALL_PROMPTS))]
    assert any("wall_s" in p and "finite" in p for p in found), found


def test_ancillary_png_chunks_are_stripped_on_import(small_pristine: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    folder = copy_submission(small_pristine[0], tmp_path)
    image = Image.open(folder / "images" / "p01_s0.png").convert("RGB")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 1_000_000)  # a megabyte of someone's metadata
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    replace_image(folder, "p01_s0", buffer.getvalue())
    edit_line(folder, "p01_s0")
    root = tmp_path / "repo"
    (root / "results" / "models").mkdir(parents=True)
    (root / "models").mkdir()
    target = import_submission(folder, benchmark(SMALL_PROMPTS), load_pool(small_pristine[1]), root / "results",
                               root / "models")
    imported = target / "images" / "p01_s0.png"
    assert imported.stat().st_size < 200_000 and b"tEXt" not in imported.read_bytes()
    with Image.open(imported) as stripped:
        assert stripped.convert("RGB").tobytes() == image.tobytes()  # the same pixels
    assert Manifest(target).load_checked()  # the manifest's sha256 is that of the stripped bytes


@pytest.mark.skipif(os.getuid() != 0, reason="the ownership fix only runs for a root caller")
def test_the_ownership_fix_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("belongs to root")
    out = tmp_path / "results" / "models" / "x"
    (out / "images").mkdir(parents=True)
    (out / "images" / "planted").symlink_to(outside)
    (out / "loop").symlink_to(tmp_path)  # a link to a folder must not be walked either
    assert container_user([out]) == "10001:10001"
    assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0
    assert (out / "images").stat().st_uid == 10001
    assert os.lstat(out / "images" / "planted").st_uid == 10001
    shutil.rmtree(out)
