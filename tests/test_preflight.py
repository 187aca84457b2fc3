"""`collapsebench preflight`: an entry's real adapter and inference code on its tiny twin, end to end.

The FLUX.2 [klein] entry runs its committed preflight.yaml (the package's random-weight Flux2KleinPipeline)
through the generate stage at N=2 and N=10 on a synthetic pool; the result file has the shape the site reads,
and a dropped reference or a missing reference-limit flag fails it. A twin that cannot be built fails with its
reason in the file and in the GPU step's job summary (scripts/preflight_step.sh); an entry without
preflight.yaml is skipped by that step; in the image the step runs with only its result folder writable;
local weights (`--weights`) replace the twin and are refused for a results submission. The new
multi-reference entries need torchvision for their processors: they run where it is installed, and say so
where it is not. XVerse's T5 count is checked with a tokenizer saved as FLUX.1's tokenizer_2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_pool

from collapsebench.benchmark.pool import Subject
from collapsebench.cli import main
from collapsebench.models.diffusers_native import tag_references

KLEIN = "flux2-klein-4b"
SHAPE = {"model", "date", "passed", "reason", "pins", "versions", "wall_s", "checks"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The benchmark, a 16-subject synthetic pool, params.yaml with seed 0 and the klein entry as it is committed."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "benchmark", root / "benchmark")
    shutil.copytree(REPO / "models" / KLEIN, root / "models" / KLEIN)
    shutil.copytree(REPO / "docker" / "diffusers", root / "docker" / "diffusers")  # validate checks it exists
    make_pool(root / "data")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["suite"]["seeds"] = [0]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(root)
    return root


def result_of(root: Path, model: str) -> dict:
    return json.loads((root / "results" / "preflight" / f"{model}.json").read_text())


def test_klein_entry_passes_preflight_at_n2_and_n10_with_local_weights(repo: Path, tmp_path: Path) -> None:
    """With `--weights DIR` (here the twin's own folder, as a model author would pass a checkpoint) in place of
    the twin built from preflight.yaml (built in the failure test below); the entry is not changed."""
    from collapsebench.testing.tiny import build_flux2_klein

    entry = repo / "models" / KLEIN / "model.yaml"
    entry.write_text(entry.read_text() + "reference_limit: 4\n")  # so N=10 is past it, N=2 within
    before = entry.read_bytes()
    build_flux2_klein(tmp_path / "weights")
    assert main(["preflight", KLEIN, "--weights", str(tmp_path / "weights")]) == 0
    assert entry.read_bytes() == before
    result = result_of(repo, KLEIN)
    assert set(result) == SHAPE and result["passed"] is True and result["pins"]["twin"] == "local weights"
    assert result["pins"]["pipeline"]["revision"] == "e7b7dc27f91deacad38e78976d1f2b499d76a294"
    assert result["versions"]["diffusers"] and result["versions"]["torch"]
    checks = {(c["n_subjects"], c["check"]): c for c in result["checks"]}
    for n in (2, 10):
        assert checks[(n, "image size")]["detail"].startswith("32x32")
        assert checks[(n, "references received")]["detail"] == f"the reference encoder saw {n} images for {n} subjects"
        assert checks[(n, f"reference {n} of {n} is live")]["passed"]
        assert checks[(n, "rerun is identical")]["passed"]
    assert checks[(2, "reference limit flagged")]["detail"] == "limit 4; manifest beyond_reference_limit=False"
    assert checks[(10, "reference limit flagged")]["detail"] == "limit 4; manifest beyond_reference_limit=True"


def broken_twin(root: Path) -> None:
    """The klein entry with a twin whose transformer class no installed library has."""
    (root / "models" / KLEIN / "preflight.yaml").write_text(
        "size: 32\nsteps: 2\ncomponents:\n  transformer: {class: NoSuchTransformer2DModel, config: {}}\n")


def test_a_twin_that_cannot_be_built_fails_with_its_reason_written(repo: Path) -> None:
    broken_twin(repo)
    assert main(["preflight", KLEIN]) == 1
    result = result_of(repo, KLEIN)
    assert set(result) == SHAPE and result["passed"] is False
    assert result["checks"][0]["check"] == "twin builds" and "NoSuchTransformer2DModel" in result["reason"]


def step(root: Path, model: str, summary: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "PREFLIGHT_RUNNER": "local",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(REPO / "scripts" / "preflight_step.sh"), model], cwd=root, env=env,
                          capture_output=True, text=True, check=False)


def test_gpu_step_stops_the_job_with_the_table_in_the_summary(repo: Path) -> None:
    broken_twin(repo)
    summary = repo / "summary.md"
    done = step(repo, KLEIN, summary)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "::error title=preflight failed::" in done.stdout
    text = summary.read_text()
    assert f"### preflight {KLEIN}: FAILED" in text and "| - | twin builds | FAIL |" in text


def test_gpu_step_skips_an_entry_without_preflight_yaml(repo: Path) -> None:
    (repo / "models" / KLEIN / "preflight.yaml").unlink()
    summary = repo / "summary.md"
    done = step(repo, KLEIN, summary)
    assert done.returncode == 0 and "is not preflighted" in summary.read_text()


def test_weights_are_refused_for_a_results_submission(repo: Path, tmp_path: Path, capsys) -> None:
    entry = repo / "models" / "mine"
    entry.mkdir()
    (entry / "model.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "name": "mine", "display_name": "Mine", "kind": "model", "authors": ["A"],
        "license": "mit", "adapter": "mine", "runner": "submitted", "code": "https://example.org/mine",
        "settings": {}, "gpu_memory_gb": 0}))
    assert main(["preflight", "mine", "--weights", str(tmp_path)]) != 0
    assert "--weights does not apply" in capsys.readouterr().err


def test_validate_preflight_runs_preflight_of_valid_model_folders(repo: Path) -> None:
    broken_twin(repo)
    assert main(["validate", f"models/{KLEIN}"]) == 0  # preflight.yaml belongs in a model folder
    assert main(["validate", f"models/{KLEIN}", "--preflight"]) == 1
    assert result_of(repo, KLEIN)["passed"] is False


def test_reference_tags_follow_each_subject_phrase_in_order() -> None:
    subjects = [Subject(id=f"S{i}", phrase=p, kind="person", image=Path("x.png"), source="t", license="CC0-1.0")
                for i, p in enumerate(["a man", "a man", "a dog"], start=1)]
    tagged = tag_references("a man and a man walk a dog.", subjects, "<img><|image_{index}|></img>")
    assert tagged == ("a man <img><|image_1|></img> and a man <img><|image_2|></img> walk a dog "
                      "<img><|image_3|></img>.")


DIFFUSERS_ENTRIES = sorted(path.parent.name for path in (REPO / "models").glob("*/preflight.yaml")
                           if yaml.safe_load((path.parent / "model.yaml").read_text())["adapter"] == "diffusers")
NEEDS_TORCHVISION = {"omnigen", "qwen-image-edit-2511", "joyai-image-edit-plus"}  # their processors import it


def test_the_new_entries_are_among_the_preflighted() -> None:
    assert NEEDS_TORCHVISION | {"flux2-dev", "flux2-klein-4b"} <= set(DIFFUSERS_ENTRIES)


@pytest.mark.parametrize("model", DIFFUSERS_ENTRIES)
def test_every_diffusers_entry_passes_preflight_on_its_committed_twin(repo: Path, model: str) -> None:
    """Each entry's own preflight.yaml, as committed; those whose processors need torchvision (the diffusers image
    has 0.28.0) run where it is installed."""
    if model in NEEDS_TORCHVISION:
        pytest.importorskip("torchvision")
    if model != KLEIN:
        shutil.copytree(REPO / "models" / model, repo / "models" / model)
    assert main(["preflight", model]) == 0, result_of(repo, model)["reason"]


def test_without_torchvision_a_twin_that_needs_it_says_so(repo: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here: the entry runs (test above)")
    shutil.copytree(REPO / "models" / "omnigen", repo / "models" / "omnigen")
    assert main(["preflight", "omnigen"]) == 1
    assert "torchvision is not installed here" in result_of(repo, "omnigen")["reason"]


def test_xverse_counts_t5_tokens_of_every_prompt_with_the_real_tokenizer_when_present(repo: Path,
                                                                                      tmp_path: Path) -> None:
    """With FLUX.1's tokenizer_2 at hand (here --weights DIR/base), every rendered prompt is counted and those
    whose subject words upstream's cut (max_text_len) would drop are named."""
    from collapsebench.benchmark.casting import load_instance
    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.preflight.drivers.flux1 import t5_tokenizer
    from collapsebench.preflight.drivers.xverse import t5_token_check

    instance = load_instance(repo / "benchmark" / "prompts.yaml", repo / "data")
    t5_tokenizer([p.natural(instance.pool) for p in instance.prompts]).save_pretrained(
        tmp_path / "weights" / "base" / "tokenizer_2")
    config_file = tmp_path / "code" / "train" / "config" / "XVerse_config_demo.yaml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("model:\n  modulation:\n    max_text_len: 40\n")
    check = t5_token_check(load_model_config(REPO / "models", "xverse"), tmp_path / "weights", tmp_path / "code",
                           instance)
    assert check.check == "T5 tokens" and "upstream keeps 40" in check.detail
    assert "of 75 prompts cut a subject's words (prompts [" in check.detail  # the N=10 prompts do not fit in 40


def test_in_the_image_preflight_runs_with_only_its_result_folder_writable_and_no_weights(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--runner docker (the GPU step): the model's image runs `preflight --runner local` with no GPU, no model
    cache and only results/preflight writable; the host prints the table it wrote into the job summary."""
    import collapsebench.preflight.container as container

    seen = {}

    def run_stage(source, spec, stream, engine):
        seen.update(source=source, spec=spec, engine=engine)
        writable = [m for m in spec.mounts if not m.read_only]
        (writable[0].source / f"{KLEIN}.json").write_text(json.dumps(
            {"model": KLEIN, "passed": False, "wall_s": 1.0, "pins": {},
             "checks": [{"n_subjects": 10, "check": "image size", "passed": False, "detail": "16x16"}]}))
        return 1

    monkeypatch.setattr(container, "run_stage", run_stage)
    summary = repo / "summary.md"
    assert main(["preflight", KLEIN, "--runner", "docker", "--summary", str(summary)]) == 1
    spec = seen["spec"]
    assert spec.command[-4:] == ["preflight", KLEIN, "--runner", "local"] and spec.gpu is None
    assert [(m.target, m.read_only) for m in spec.mounts if not m.read_only] == [("/work/results/preflight", False)]
    assert not any("huggingface" in m.target or "cache" in m.target for m in spec.mounts)
    assert seen["source"].dockerfile == "docker/diffusers/Dockerfile"
    assert "| 10 | image size | FAIL | 16x16 |" in summary.read_text()


def test_a_dropped_reference_and_a_missing_limit_flag_fail_preflight(repo: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: on the twin the committed preflight.yaml builds, an adapter that sends the first
    reference in place of the last, and a generate stage that does not mark jobs past the reference limit, are
    both caught (and nothing else fails)."""
    import collapsebench.generation.generate as generate
    from collapsebench.models.diffusers_native import DiffusersAdapter

    entry = repo / "models" / KLEIN / "model.yaml"
    entry.write_text(entry.read_text() + "reference_limit: 4\n")
    monkeypatch.setattr(DiffusersAdapter, "arrange", lambda self, refs: [*refs[:-1], refs[0]])
    monkeypatch.setattr(generate, "reference_limit_flag", lambda config, n: {})
    assert main(["preflight", KLEIN]) == 1
    failed = {(c["n_subjects"], c["check"]) for c in result_of(repo, KLEIN)["checks"] if not c["passed"]}
    assert failed == {(2, "reference 2 of 2 is live"), (10, "reference 10 of 10 is live"),
                      (2, "reference limit flagged"), (10, "reference limit flagged")}
