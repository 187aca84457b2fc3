"""The `diffusers` adapter end to end on tiny random-weight pipelines of the real classes.

Each pipeline (Flux2Pipeline, Flux2KleinPipeline) is built in code with tiny
transformer / VAE / text-encoder configs and a tokenizer from an in-code
byte-level vocabulary, written with save_pretrained, and loaded by the adapter
with from_pretrained(folder, revision=...) exactly as real weights are. The
tiny text encoders have as many layers as the real ones' hidden-state taps
(30 and 27), so the pipelines run with their default arguments.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_pool
from PIL import Image

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import load_pool, load_reference
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate
from collapsebench.models import get_adapter
from collapsebench.models.weights import WeightsPin, cached, resolve
from collapsebench.testing.tiny import FLUX2_BUILDERS, build_flux1

REVISION = "0123456789abcdef0123456789abcdef01234567"
SIZE = 32
BUILDERS = FLUX2_BUILDERS


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny_pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp(request.param)
    BUILDERS[request.param](folder)
    return request.param, folder


@pytest.fixture
def small_pool(tmp_path: Path) -> Path:
    """64 px references, the smallest the FLUX.2 pipelines accept: the test pool's 96 px would cost twice the time."""
    return make_pool(tmp_path / "data", size=64)


def tiny_config(pipeline_class: str, folder: Path, **settings) -> ModelConfig:
    settings = {"height": SIZE, "width": SIZE, "steps": 2, "guidance": 4.0, "device": "cpu", "dtype": "float32",
                **settings}
    raw = {"pipeline": {"class": pipeline_class, "repo": str(folder), "revision": REVISION}}
    return ModelConfig(name="tiny", display_name="tiny", kind="model", adapter="diffusers", runner="local",
                       settings=settings, raw=raw)


def test_adapter_generates_end_to_end_and_records_what_it_sent(tiny_pipeline, small_pool: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers

    pipeline_class, folder = tiny_pipeline
    cls = getattr(diffusers, pipeline_class)
    original, calls = cls.from_pretrained.__func__, []

    def spy(klass, *args, **kwargs):
        calls.append((args, kwargs))
        return original(klass, *args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    pool = load_pool(small_pool)
    prompts = cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts
    jobs = [job for job in make_jobs(prompts, [0]) if job.prompt.id in (1, 61)]  # 2 and 10 subjects
    out = tmp_path / "out"

    report = run_generate(tiny_config(pipeline_class, folder), jobs, pool, out)

    assert (report.made, report.failed) == (2, [])
    assert len(calls) == 1 and calls[0][0] == (str(folder),) and calls[0][1]["revision"] == REVISION
    records = {r["prompt_id"]: r for r in Manifest(out).records()}
    for job in jobs:
        record = records[job.prompt.id]
        assert record["sent_prompt"] == record["prompt"] == job.prompt.natural(pool)
        assert record["sent"]["references"] == list(job.prompt.subjects)
        assert record["sent"]["pipeline"] == pipeline_class
        assert (record["sent"]["num_inference_steps"], record["sent"]["guidance_scale"]) == (2, 4.0)
        assert record["model_revision"] == f"{folder}@{REVISION}"
        with Image.open(out / record["image"]) as image:
            assert image.size == (SIZE, SIZE)
    assert len(records[61]["sent"]["references"]) == 10


def test_same_seed_same_image_and_the_references_are_used(tiny_pipeline, small_pool: Path) -> None:
    pipeline_class, folder = tiny_pipeline
    pool = load_pool(small_pool)
    subjects = [pool["S001"], pool["S002"]]
    references = [load_reference(s) for s in subjects]
    adapter = get_adapter("diffusers", {**tiny_config(pipeline_class, folder).settings,
                                        "pipeline": {"class": pipeline_class, "repo": str(folder), "revision": REVISION}})
    adapter.load()

    def pixels(refs, seed):
        return adapter.generate("subject number 1 and subject number 2", subjects, refs, seed).image.tobytes()

    first = pixels(references, 0)
    assert pixels(references, 0) == first
    assert pixels(references, 1) != first
    assert pixels([Image.new("RGB", (64, 64), (255, 0, 0))] * 2, 0) != first


def test_bad_settings_and_missing_weights_are_clear_errors(tmp_path: Path) -> None:
    good = {"height": 32, "width": 32, "steps": 2, "guidance": 1.0}
    with pytest.raises(BenchError, match="pipeline"):
        get_adapter("diffusers", good)
    with pytest.raises(BenchError, match=r"call.references = 'image' is not an argument of OmniGenPipeline.__call__"):
        get_adapter("diffusers", {**good, "pipeline": {"class": "OmniGenPipeline", "repo": "a/b", "revision": REVISION}})
    with pytest.raises(BenchError, match="lack steps"):
        get_adapter("diffusers", {"height": 1, "width": 1, "guidance": 1,
                                  "pipeline": {"class": "Flux2Pipeline", "repo": "a/b", "revision": REVISION}})
    with pytest.raises(BenchError, match="40-hex"):
        get_adapter("diffusers", {**good, "pipeline": {"class": "Flux2Pipeline", "repo": "a/b", "revision": "main"}})

    pin = WeightsPin("black-forest-labs/FLUX.2-dev", REVISION)
    with pytest.raises(BenchError, match=f"hf download black-forest-labs/FLUX.2-dev --revision {REVISION}"):
        resolve(pin, cache_dir=tmp_path)
    assert not cached(pin, tmp_path)


def test_a_cached_snapshot_resolves_offline_to_its_commit(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text(REVISION)

    for revision in (REVISION, None):
        pin = WeightsPin("org/tiny", revision)
        assert cached(pin, tmp_path)
        folder, commit = resolve(pin, cache_dir=tmp_path)
        assert commit == REVISION and sha256_file(folder / "model_index.json")


# ---------------------------------------------------------------- new classes through model.yaml alone

ENTRIES = {  # a model.yaml's `pipeline` class and `call` block: no adapter code for either
    "FluxKontextPipeline": {"references": "image", "references_as": "strip", "fixed": {
        "max_sequence_length": 32, "max_area": SIZE * SIZE, "_auto_resize": False}},
    "FluxPipeline": {"references": None, "fixed": {"max_sequence_length": 32}},  # a text-only baseline
}


@pytest.fixture(scope="module")
def flux1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flux1")
    build_flux1(folder)
    return folder


@pytest.mark.parametrize("pipeline_class", sorted(ENTRIES))
def test_a_new_pipeline_class_runs_from_model_yaml_alone(flux1: Path, pipeline_class: str, small_pool: Path,
                                                         tmp_path: Path) -> None:
    import dataclasses

    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.intake.validate import check_model_folder

    document = {"schema_version": 1, "name": "acme", "display_name": "Acme", "kind": "model", "authors": ["A"],
                "license": "MIT", "adapter": "diffusers", "runner": "docker", "gpu_memory_gb": 1,
                "docker": {"dockerfile": "docker/diffusers/Dockerfile"},
                "pipeline": {"class": pipeline_class, "repo": "acme/tiny-flux", "revision": REVISION},
                "call": ENTRIES[pipeline_class],
                "settings": {"height": SIZE, "width": SIZE, "steps": 2, "guidance": 3.5, "dtype": "float32",
                             "device": "cpu"}}
    (tmp_path / "models" / "acme").mkdir(parents=True)
    (tmp_path / "docker" / "diffusers").mkdir(parents=True)
    (tmp_path / "docker" / "diffusers" / "Dockerfile").write_text("ARG BENCH_BASE\nFROM ${BENCH_BASE}\n")
    (tmp_path / "models" / "acme" / "model.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert check_model_folder(tmp_path / "models" / "acme") == []  # validate builds the adapter: all checked

    config = load_model_config(tmp_path / "models", "acme")
    pinned = {**config.raw["pipeline"], "repo": str(flux1 / pipeline_class)}  # the tiny weights stand in for the hub
    config = dataclasses.replace(config, raw={**config.raw, "pipeline": pinned})

    pool = load_pool(small_pool)
    jobs = [job for job in make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [0])
            if job.prompt.id in (1, 61)]
    out = tmp_path / "out"
    report = run_generate(config, jobs, pool, out)
    assert (report.made, report.failed) == (2, [])
    records = {r["prompt_id"]: r for r in Manifest(out).records()}
    sent = records[61]["sent"]
    assert sent["pipeline"] == pipeline_class and sent["num_inference_steps"] == 2
    assert sent["max_sequence_length"] == 32
    if ENTRIES[pipeline_class]["references"] is None:
        assert sent["references"] == [] and "image" not in sent
    else:
        assert len(sent["references"]) == 10 and sent["references_as"] == "strip"


def test_a_call_mapping_is_checked_against_the_class_signature() -> None:
    base = {"height": 32, "width": 32, "steps": 2, "guidance": 1.0,
            "pipeline": {"class": "FluxKontextPipeline", "repo": "a/b", "revision": REVISION}}
    with pytest.raises(BenchError, match=r"call.guidance = 'true_cfg' is not an argument of FluxKontextPipeline"):
        get_adapter("diffusers", {**base, "call": {"guidance": "true_cfg"}})
    with pytest.raises(BenchError, match=r"call.fixed.temperature = 'temperature' is not an argument"):
        get_adapter("diffusers", {**base, "call": {"fixed": {"temperature": 0.7}}})
    with pytest.raises(BenchError, match=r"call has unknown keys \['negative'\]"):
        get_adapter("diffusers", {**base, "call": {"negative": "ugly"}})
    with pytest.raises(BenchError, match=r"settings has unknown keys \['stepz'\]"):
        get_adapter("diffusers", {**base, "stepz": 3})
    with pytest.raises(BenchError, match="settings lack guidance"):
        get_adapter("diffusers", {key: value for key, value in base.items() if key != "guidance"})
    assert get_adapter("diffusers", {key: value for key, value in base.items() if key != "guidance"}
                       | {"call": {"guidance": None}}).call["guidance"] is None
