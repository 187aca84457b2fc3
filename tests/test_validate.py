"""`collapsebench validate` and `submission import`: every problem is reported, bad input never lands in results/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from PIL import Image
from submission_kit import (
    FLUX2,
    NAME,
    SEEDS,
    SMALL_PROMPTS,
    benchmark,
    bomb_png,
    copy_submission,
    edit_line,
    flipped,
    png_bytes,  # noqa: F401
    read_manifest,
    replace_image,
    tree_digest,
    write_manifest,
)

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.registry import (
    generates_here,
    model_names,
    select,
    waiting_submissions,
)
from collapsebench.benchmark.suite import make_jobs
from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate
from collapsebench.intake import submission as submission_module
from collapsebench.core.pngcheck import MAX_BYTES
from collapsebench.intake.submission import check_submission, import_submission
from collapsebench.intake.validate import all_folders, check_model_folder

PROMPT1 = benchmark().prompts[1].subjects  # as cast for the kit's pool


def model_repo(tmp_path: Path, document: dict | str, name: str = "acme-flux", dockerfile: bool = True) -> Path:
    """A repository-like folder with models/<name>/model.yaml (and its Dockerfile)."""
    folder = tmp_path / "models" / name
    folder.mkdir(parents=True)
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    (folder / "model.yaml").write_text(text)
    if dockerfile:
        (tmp_path / "docker" / name).mkdir(parents=True)
        (tmp_path / "docker" / name / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    return folder


def alias_bomb(levels: int = 5) -> str:
    """YAML whose aliases multiply by 10 per level: a few hundred bytes, 10**levels values once loaded."""
    lines = ["l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def messages(problems: list) -> str:
    return "\n".join(str(p) for p in problems)


# ---------------------------------------------------------------- model folders

def test_every_model_folder_in_the_repository_is_valid() -> None:
    folders = [f for f in all_folders(REPO) if f.parent.name == "models"]
    assert {"collage", "clone", "floor"} <= {f.name for f in folders}
    for folder in folders:
        assert check_model_folder(folder) == [], messages(check_model_folder(folder))


def test_diffusers_pipeline_entry_with_pinned_revision_is_valid(tmp_path: Path) -> None:
    assert check_model_folder(model_repo(tmp_path, FLUX2)) == []


def test_a_prebuilt_image_pinned_by_digest_is_valid(tmp_path: Path) -> None:
    document = {**FLUX2, "docker": {"image": "ghcr.io/acme/flux2@sha256:" + "ab" * 32}}
    assert check_model_folder(model_repo(tmp_path, document, dockerfile=False)) == []


def test_every_problem_of_a_model_file_is_reported_with_file_and_field(tmp_path: Path) -> None:
    document = {**FLUX2, "schema_version": 2, "authors": [], "gpu_memory_gp": 80, "runner": "gpu",
                "pipeline": {"class": "Flux9Pipeline", "repo": "black-forest-labs/FLUX.2-dev", "revision": "main"},
                "docker": {"dockerfile": "docker/elsewhere/Dockerfile"}, "paper": "http://insecure.example.org"}
    del document["license"]
    folder = model_repo(tmp_path, document)
    text = messages(check_model_folder(folder))
    where = f"{folder}/model.yaml"
    for field, fragment in [("schema_version", "1 was expected"), ("authors", "should be non-empty"),
                            ("(top level)", "'gpu_memory_gp' was unexpected"), ("runner", "is not one of"),
                            ("pipeline.revision", "does not match"), ("license", "required field is missing"),
                            ("paper", "does not match"), ("docker.dockerfile", "is not a file in the repository"),
                            ("pipeline.class", "not a pipeline of the installed diffusers")]:
        assert f"{where}: {field}: " in text and fragment in text, f"{field}: {fragment}\n{text}"


def test_repository_checks_name_the_adapter_and_folder(tmp_path: Path) -> None:
    document = {**FLUX2, "name": "other", "adapter": "nosuchmodel"}
    del document["pipeline"]
    folder = model_repo(tmp_path, document)
    (folder / "weights.bin").write_bytes(b"\0")
    text = messages(check_model_folder(folder))
    assert "name: must equal the folder name 'acme-flux'" in text
    assert "adapter: 'nosuchmodel' is not a registered adapter" in text
    assert "weights.bin: unexpected entry" in text


def test_diffusers_adapter_requires_a_pipeline_and_docker_runner_requires_a_container(tmp_path: Path) -> None:
    document = {key: value for key, value in FLUX2.items() if key not in ("pipeline", "docker")}
    text = messages(check_model_folder(model_repo(tmp_path, document)))
    assert "pipeline: required field is missing" in text and "docker: required field is missing" in text


@pytest.mark.parametrize("text, fragment", [
    ("name: [unclosed\n", "not valid YAML"),
    ("- a list\n", "expected a mapping"),
    ("license: 2024-01-01\n", "license: datetime.date(2024, 1, 1) is a YAML date"),
    (alias_bomb(), "more than 10000 values"),
    ("x: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
])
def test_hostile_or_mistyped_yaml_is_a_reported_problem(tmp_path: Path, text: str, fragment: str) -> None:
    folder = model_repo(tmp_path, text, dockerfile=False)
    assert fragment in messages(check_model_folder(folder))


def test_load_model_config_refuses_a_file_that_breaks_the_schema(tmp_path: Path) -> None:
    model_repo(tmp_path, {**FLUX2, "gpu_memory_gb": -1, "kind": "great"})
    with pytest.raises(BenchError) as error:
        load_model_config(tmp_path / "models", "acme-flux")
    assert "gpu_memory_gb: -1 is less than the minimum of 0" in str(error.value)
    assert "kind: 'great' is not one of" in str(error.value)


def test_cli_validate_prints_every_problem_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = model_repo(tmp_path, {**FLUX2, "authors": [], "gpu_memory_gb": "lots"})
    assert main(["--params", str(REPO / "params.yaml"), "validate", str(bad), str(REPO / "models/collage")]) == 1
    out = capsys.readouterr().out
    assert "authors: [] should be non-empty" in out and "gpu_memory_gb: 'lots' is not of type 'number'" in out
    assert f"FAILED {bad} (model folder): 2 problems" in out and "OK " in out
    assert main(["--params", str(REPO / "params.yaml"), "validate", str(REPO / "models/collage")]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [f"OK {REPO / 'models/collage'} (model folder)"]


# ---------------------------------------------------------------- results submissions

def symlink(target: str, link: Path) -> None:
    link.unlink(missing_ok=True)
    os.symlink(target, link)


def append_line(folder: Path, **changes: object) -> None:
    """Add a copy of the first manifest line with some fields changed (an extra or repeated job)."""
    records = read_manifest(folder)
    write_manifest(folder, [*records, {**records[0], **changes}])


def rename_image(folder: Path, key: str, new: str) -> None:
    """Rename one image and point its manifest line at the new (raw) path."""
    os.rename(folder / "images" / f"{key}.png", folder / new)
    edit_line(folder, key, image=new)


# (id, how to break the submission, a fragment of the expected message). Each is applied to a fresh copy of the
# small submission (the first SMALL_PROMPTS prompts x 3 seeds, checked against that part of the benchmark).
BAD: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing-job", lambda f: (write_manifest(f, read_manifest(f)[:-1]), (f / "images/p06_s2.png").unlink()),
     "job p06_s2 is missing"),
    ("duplicate-job", lambda f: append_line(f, image="images/p01_s1.png"),
     "line 19: job p01_s0 already on line 1"),
    ("two-jobs-one-image",
     lambda f: edit_line(f, "p01_s1", image="images/p01_s0.png", sha256=read_manifest(f)[0]["sha256"]),
     "images/p01_s0.png is already used by line 1"),
    ("unknown-prompt", lambda f: append_line(f, prompt_id=76),
     "prompt_id: unknown prompt id 76"),
    ("extra-seed", lambda f: append_line(f, seed=3),
     "seed: 3 is not a benchmark seed [0, 1, 2]"),
    ("unknown-subject", lambda f: edit_line(f, "p01_s0", subjects=[PROMPT1[0], "S999"]), "unknown subject IDs ['S999']"),
    ("subjects-swapped", lambda f: edit_line(f, "p01_s0", subjects=[PROMPT1[1], PROMPT1[0]]),
     f"differ from prompt 1's subjects {list(PROMPT1)}"),
    ("key-mismatch", lambda f: edit_line(f, "p01_s0", key="p02_s0"), "key: 'p02_s0' does not match prompt 1"),
    ("not-json", lambda f: (f / "manifest.jsonl").write_text((f / "manifest.jsonl").read_text() + "{oops\n"),
     "line 19: not valid JSON"),
    ("jpeg-named-png", lambda f: replace_image(f, "p01_s0", png_bytes(format="JPEG")),
     "not a PNG file (looks like JPEG)"),
    ("too-large", lambda f: replace_image(f, "p01_s0", b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_BYTES),
     f"{MAX_BYTES + 8} bytes; at most {MAX_BYTES} per image"),
    ("too-small", lambda f: replace_image(f, "p01_s0", png_bytes((100, 100))),
     "declared size 100x100 px; each side must be 256..2048"),
    ("decompression-bomb", lambda f: replace_image(f, "p01_s0", bomb_png()),
     "declared size 30000x30000 px; each side must be 256..2048 px (checked before decoding)"),
    ("truncated", lambda f: replace_image(f, "p01_s0", png_bytes()[:300]), "truncated: no IEND chunk"),
    ("corrupt-pixels", lambda f: replace_image(f, "p01_s0", flipped(png_bytes(), 60, 70)), "cannot be decoded"),
    ("data-after-iend", lambda f: replace_image(f, "p01_s0", png_bytes() + b"#!/bin/sh\nrm -rf /\n"),
     "19 bytes after the end of the PNG"),
    ("animated-png", lambda f: replace_image(f, "p01_s0", png_bytes(save_all=True, append_images=[
        Image.new("RGB", (256, 256), (200, 10, 10))])), "animated PNG with 2 frames"),
    ("sha256-mismatch", lambda f: edit_line(f, "p01_s0", sha256="0" * 64),
     f"images/p01_s0.png: sha256: manifest line 1 says {'0' * 64}, the file has"),
    ("width-mismatch", lambda f: edit_line(f, "p01_s0", width=512),
     "width: manifest line 1 says 512, the image is 256"),
    ("dot-dot", lambda f: edit_line(f, "p01_s0", image="../outside.png"), "'..' component"),
    ("dot-dot-inside", lambda f: edit_line(f, "p01_s0", image="images/../../x.png"), "'..' component"),
    ("absolute", lambda f: edit_line(f, "p01_s0", image="/etc/passwd"), "'/etc/passwd' is absolute"),
    ("windows-absolute", lambda f: edit_line(f, "p01_s0", image="C:/x.png"), "is absolute"),
    ("backslash", lambda f: edit_line(f, "p01_s0", image="images\\p01_s0.png"), "uses backslashes"),
    ("null-byte", lambda f: edit_line(f, "p01_s0", image="images/p01_s0.png\x00.txt"), "contains a null byte"),
    ("cyrillic-lookalike", lambda f: rename_image(f, "p01_s0", "images/\u044001_s0.png"),
     "images/\\u044001_s0.png' has non-ASCII"),
    ("rtl-override", lambda f: rename_image(f, "p01_s0", "images/p01_s0\u202egnp.png"), "has non-ASCII"),
    ("subfolder", lambda f: ((f / "images/sub").mkdir(), rename_image(f, "p01_s0", "images/sub/p01_s0.png")),
     "unexpected folder"),
    ("symlink-image", lambda f: symlink("/etc/hostname", f / "images/p01_s0.png"), "symlinks are not allowed"),
    ("symlink-to-sibling", lambda f: symlink("p01_s1.png", f / "images/p01_s0.png"), "symlinks are not allowed"),
    ("symlinked-images-folder", lambda f: (shutil.move(f / "images", f.parent / "elsewhere"),
                                           symlink(str(f.parent / "elsewhere"), f / "images")),
     "images: symlinks are not allowed"),
    ("symlink-readme", lambda f: symlink("/etc/passwd", f / "README.md"), "README.md: symlinks are not allowed"),
    ("hard-link", lambda f: os.link(f / "images/p01_s0.png", f.parent / "outside.png"), "hard link"),
    ("fifo", lambda f: os.mkfifo(f / "images/p99_s0.png"), "not a regular file"),
    ("scores-csv", lambda f: (f / "scores.csv").write_text("model,dinov2\nacme-net,0.99\n"),
     "scores.csv: submitted scores are rejected, not used"),
    ("scoring-json", lambda f: (f / "scoring.json").write_text('{"dinov2": 0.99}'),
     "scoring.json: submitted scores are rejected, not used"),
    ("stray-file", lambda f: (f / "run.sh").write_text("echo hi\n"), "run.sh: unexpected file"),
    ("unlisted-image", lambda f: (f / "images/.hidden.png").write_bytes(png_bytes()),
     "images/.hidden.png: not listed in manifest.jsonl"),
    ("missing-image", lambda f: (f / "images/p02_s1.png").unlink(), "images/p02_s1.png: missing (manifest line 5)"),
    ("no-manifest", lambda f: (f / "manifest.jsonl").unlink(), "manifest.jsonl: missing: one JSON line per job"),
    ("no-model-file", lambda f: (f / "model.yaml").unlink(), "model.yaml: missing: the model description"),
    ("runner-not-submitted", lambda f: (f / "model.yaml").write_text(
        (f / "model.yaml").read_text().replace("runner: submitted", "runner: local")),
     "runner: a results submission must say 'submitted'"),
    ("no-code-link", lambda f: (f / "model.yaml").write_text(
        "\n".join(line for line in (f / "model.yaml").read_text().splitlines() if not line.startswith("code:"))),
     "model.yaml: code: required field is missing"),
]


@pytest.fixture
def repo_with_results(tmp_path: Path) -> Path:
    """A repository-like folder whose results/ already holds another model's outputs."""
    root = tmp_path / "repo"
    (root / "results" / "models" / "collage").mkdir(parents=True)
    (root / "results" / "models" / "collage" / "manifest.jsonl").write_text('{"key": "p01_s0"}\n')
    (root / "results" / "reported").mkdir()
    shutil.copy(REPO / "results/reported/paper_table1.csv", root / "results/reported/paper_table1.csv")
    (root / "models").mkdir()
    return root


@pytest.mark.parametrize("case, breaks, expected", BAD, ids=[case[0] for case in BAD])
def test_bad_submission_is_rejected_and_results_do_not_change(
        small_pristine: tuple[Path, Path], repo_with_results: Path, case: str, breaks: Callable[[Path], None],
        expected: str) -> None:
    folder = copy_submission(small_pristine[0], repo_with_results)
    breaks(folder)
    before = tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")
    with pytest.raises(BenchError) as error:  # import validates first and lists what check_submission finds
        import_submission(folder, benchmark(SMALL_PROMPTS), load_pool(small_pristine[1]),
                          repo_with_results / "results", repo_with_results / "models")
    assert "submission rejected, nothing imported" in str(error.value)
    assert expected in str(error.value), str(error.value)
    assert (tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")) == before


def test_all_problems_of_a_submission_are_listed_not_just_the_first(pristine: tuple[Path, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    folder = copy_submission(pristine[0], tmp_path)
    edit_line(folder, "p01_s0", sha256="0" * 64)
    edit_line(folder, "p03_s2", image="../../etc/passwd")
    (folder / "scores.csv").write_text("x\n")
    (folder / "images/p10_s1.png").unlink()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"suite": {"prompts": str(REPO / "benchmark/prompts.yaml"),
                                                "pool": str(pristine[1]), "seeds": list(SEEDS)}}))
    assert main(["--params", str(params), "validate", str(folder)]) == 1
    out = capsys.readouterr().out
    for fragment in ("p01_s0.png: sha256:", "line 9: image: '../../etc/passwd' has a '..' component", "scores.csv:",
                     "p10_s1.png: missing", "images/p03_s2.png: not listed", "FAILED"):
        assert fragment in out, out


def test_a_valid_submission_passes_and_imports_as_submitted_results(pristine: tuple[Path, Path],
                                                                    repo_with_results: Path) -> None:
    folder = copy_submission(pristine[0], repo_with_results)
    assert check_submission(folder, benchmark()) == []
    submissions, models = repo_with_results / "submissions", repo_with_results / "models"
    assert waiting_submissions(submissions, models) == [NAME]  # merged: the site lists it as pending
    pool = load_pool(pristine[1])
    target = import_submission(folder, benchmark(), pool, repo_with_results / "results", repo_with_results / "models")
    assert target == repo_with_results / "results" / "models" / NAME
    # Imported: an entry like any model (no list to add it to), scored by `score --models all`, never generated.
    assert waiting_submissions(submissions, models) == [] and model_names(models) == [NAME]
    entry = select("all", models, "test")
    assert [c.name for c in entry] == [NAME] and not generates_here(entry[0])
    records = Manifest(target).load_checked()
    assert len(records) == 225 and {r["runner"] for r in records} == {"submitted"}
    assert {r["source"] for r in records} == {"submitted"}
    assert sorted(p.name for p in (target / "images").iterdir()) == sorted(f"{r['key']}.png" for r in records)
    provenance = json.loads((target / "provenance.json").read_text())
    assert provenance["source"] == "submitted"
    assert provenance["label"] == "results submitted by the authors, scored here"
    assert (repo_with_results / "models" / NAME / "model.yaml").read_bytes() == (folder / "model.yaml").read_bytes()
    assert not [p for p in (repo_with_results / "results" / "models").iterdir() if p.name.startswith(".")]
    # The prompt scored by CLIP-T is the benchmark's natural prompt, whatever the manifest said.
    prompts = {p.id: p for p in cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts}
    assert all(r["prompt"] == prompts[r["prompt_id"]].natural(pool) for r in records)
    # `generate` sees every job as done (it never loads the unknown adapter), so dvc repro leaves them alone.
    config = load_model_config(repo_with_results / "models", NAME)
    report = run_generate(config, make_jobs(list(prompts.values()), list(SEEDS)), pool, target)
    assert (report.made, report.skipped, report.failed) == (0, 225, [])


def test_import_refuses_to_overwrite_and_leaves_everything_as_it_was(pristine: tuple[Path, Path],
                                                                     repo_with_results: Path) -> None:
    folder = copy_submission(pristine[0], repo_with_results)
    (repo_with_results / "results" / "models" / NAME).mkdir()
    before = tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")
    with pytest.raises(BenchError, match="already exists"):
        import_submission(folder, benchmark(), load_pool(pristine[1]), repo_with_results / "results",
                          repo_with_results / "models")
    assert (tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")) == before


def test_an_image_changed_after_validation_aborts_the_import_cleanly(pristine: tuple[Path, Path],
                                                                     repo_with_results: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_submission(pristine[0], repo_with_results)
    inspect = submission_module.inspect_submission

    def inspect_then_swap(*args, **kwargs):  # the race: a file replaced between the check and the copy
        found = inspect(*args, **kwargs)
        (folder / "images/p40_s1.png").write_bytes(png_bytes())
        return found

    monkeypatch.setattr(submission_module, "inspect_submission", inspect_then_swap)
    before = tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")
    with pytest.raises(BenchError, match=r"p40_s1\.png: changed while importing"):
        import_submission(folder, benchmark(), load_pool(pristine[1]), repo_with_results / "results",
                          repo_with_results / "models")
    assert (tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")) == before


def test_a_failed_final_rename_rolls_back_the_model_folder(pristine: tuple[Path, Path], repo_with_results: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_submission(pristine[0], repo_with_results)
    rename = os.rename

    def rename_fails_into_results(source, target):
        if Path(target).parent.name == "models" and Path(target).parent.parent.name == "results":
            raise OSError("disk full")
        return rename(source, target)

    monkeypatch.setattr(submission_module.os, "rename", rename_fails_into_results)
    before = tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")
    with pytest.raises(OSError, match="disk full"):
        import_submission(folder, benchmark(), load_pool(pristine[1]), repo_with_results / "results",
                          repo_with_results / "models")
    assert (tree_digest(repo_with_results / "results"), tree_digest(repo_with_results / "models")) == before


def test_cli_import_of_a_bad_submission_exits_non_zero(pristine: tuple[Path, Path], repo_with_results: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    folder = copy_submission(pristine[0], repo_with_results)
    symlink("/etc/passwd", folder / "images/p05_s0.png")
    params = repo_with_results / "params.yaml"
    params.write_text(yaml.safe_dump({"suite": {"prompts": str(REPO / "benchmark/prompts.yaml"),
                                                "pool": str(pristine[1]), "seeds": list(SEEDS)}}))
    before = tree_digest(repo_with_results / "results")
    code = main(["--params", str(params), "--results", str(repo_with_results / "results"),
                 "--models-dir", str(repo_with_results / "models"), "submission", "import", str(folder)])
    assert code == 2
    assert "images/p05_s0.png: symlinks are not allowed" in capsys.readouterr().err
    assert tree_digest(repo_with_results / "results") == before


def test_changed_folders_are_the_entries_a_diff_touches_not_the_folders_readme(tmp_path: Path) -> None:
    from collapsebench.intake.validate import changed_folders

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("x\n")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    for path in ("models/a/model.yaml", "submissions/README.md", "submissions/b/images/p01_s0.png", "docs/x.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x\n")
    git("add", "-A")
    git("commit", "-q", "-m", "change")
    assert changed_folders("HEAD~1", tmp_path) == [tmp_path / "models/a", tmp_path / "submissions/b"]


@pytest.mark.parametrize(("change", "field", "fragment"), [
    ({"pipeline": {**FLUX2["pipeline"], "class": "DiffusionPipeline"}}, "pipeline.class",
     "picks the class to load from the repository at load time"),
    ({"call": {"fixed": {"trust_remote_code": True}}}, "call",
     "call.fixed.trust_remote_code = 'trust_remote_code' is not an argument of Flux2Pipeline.__call__"),
    ({"call": {"fixed": {"custom_pipeline": "https://example.org/evil.py"}}}, "call",
     "call.fixed.custom_pipeline = 'custom_pipeline' is not an argument"),
    ({"call": {"prompt": "__class__"}}, "call", "call.prompt = '__class__' is a dunder name"),
    ({"pipeline": {**FLUX2["pipeline"], "repo": "/srv/weights"}}, "pipeline.repo", "does not match"),  # the schema
    ({"settings": {**FLUX2["settings"], "base": {"repo": "/srv/weights", "revision": None}}}, "settings.base.repo",
     "local folders are not allowed in a submitted entry"),
    ({"pipeline": {**FLUX2["pipeline"], "revision": "main"}}, "pipeline.revision", "is not of type 'null'"),
    ({"settings": {**FLUX2["settings"], "base": {"repo": "org/base", "revision": "v1.0"}}}, "settings.base.revision",
     "must be null or a full 40-hex"),
])
def test_validate_accepts_only_what_runs(tmp_path: Path, change: dict, field: str, fragment: str) -> None:
    """Defect: `DiffusionPipeline` passed with any call names, and the class that loaded came from the repo."""
    text = messages(check_model_folder(model_repo(tmp_path, {**FLUX2, **change})))
    assert f": {field}: " in text and fragment in text, text


def test_a_null_revision_is_accepted_and_recorded_later(tmp_path: Path) -> None:
    document = {**FLUX2, "pipeline": {**FLUX2["pipeline"], "revision": None}}
    assert check_model_folder(model_repo(tmp_path, document)) == []


def test_every_problem_of_a_diffusers_entry_is_printed_in_one_round(tmp_path: Path) -> None:
    document = {**FLUX2, "call": {"fixed": {"__init__": 1, "temperature": 0.7}, "steps": "n_steps"},
                "settings": {**FLUX2["settings"], "stepz": 3, "dtype": "int8"}}
    text = messages(check_model_folder(model_repo(tmp_path, document)))
    for fragment in ("'__init__' is a dunder name", "call.fixed.temperature = 'temperature' is not an argument",
                     "call.steps = 'n_steps' is not an argument", "settings has unknown keys ['stepz']",
                     "settings.dtype must be one of"):
        assert fragment in text, f"{fragment}\n{text}"
