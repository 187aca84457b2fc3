"""The XVerse adapter up to the call into XVerse's own code, with stand-in upstream modules.

The stand-ins record what the adapter passes to `CustomFluxPipeline`, the
checkpoint loaders and `generate_from_test_sample`, with the settings of the
real models/xverse/model.yaml (only the weight locations and the device are
replaced).
"""

from __future__ import annotations

import copy
import os
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from PIL import Image

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate
from collapsebench.models.xverse import fill_placeholders, placeholders

# The parts of train/config/XVerse_config_demo.yaml the adapter touches.
DEMO_CONFIG = {"model": {"dit_quant": "int8-quanto", "use_dit_lora": True, "modulation": {"max_text_len": 128}},
               "train": {"dataset": {"val_condition_size": 256, "val_target_size": 512}}}


class WordTokenizer:
    """A stand-in for FLUX.1's T5 tokenizer called as upstream calls it: one token per word, end-of-sequence 1,
    padding 0 to max_length, cut at max_length keeping the end token (as T5's tokenizer truncates)."""

    def __call__(self, text: str, padding: str, max_length: int, truncation: bool) -> dict[str, list[int]]:
        ids = [10 + sum(map(ord, word)) for word in text.replace(",", " ,").replace(".", " .").split()]
        ids = ids[:max_length - 1] + [1]
        return {"input_ids": ids + [0] * (max_length - len(ids)),
                "attention_mask": [1] * len(ids) + [0] * (max_length - len(ids))}


class FakePipe:
    def __init__(self) -> None:
        self.modulation_adapters: list[Any] = []
        self.tokenizer_2 = WordTokenizer()  # an attribute of FluxPipeline: the adapter counts the prompt's tokens

    def set_progress_bar_config(self, **kwargs: Any) -> None: ...

    def unload_lora_weights(self) -> None: ...

    def to(self, device: Any) -> FakePipe:
        return self


class FakeAdapter:
    def to(self, *args: Any, **kwargs: Any) -> FakeAdapter:
        return self


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    record: dict[str, list] = {"config_paths": [], "pipeline": [], "modulation": [], "lora": [], "generate": []}

    def get_train_config(path: str) -> dict:
        record["config_paths"].append(path)
        return copy.deepcopy(DEMO_CONFIG)

    class CustomFluxPipeline:
        def __init__(self, config: dict, device: Any, torch_dtype: Any) -> None:
            record["pipeline"].append({"dit_quant": config["model"]["dit_quant"],
                                       "use_dit_lora": config["model"]["use_dit_lora"],
                                       "flux": os.environ["FLUX_MODEL_PATH"], "clip": os.environ["CLIP_MODEL_PATH"]})
            self.pipe, self.config = FakePipe(), config

        def clear_modulation_adapters(self) -> None:
            self.pipe.modulation_adapters = []

        def add_modulation_adapter(self, adapter: Any) -> None:
            self.pipe.modulation_adapters.append(adapter)

    def load_modulation_adapter(model: Any, config: dict, dtype: Any, device: Any, ckpt_dir: str, is_training: bool):
        record["modulation"].append((ckpt_dir, is_training))
        return FakeAdapter()

    def load_dit_lora(model: Any, pipe: Any, config: dict, dtype: Any, device: Any, ckpt_dir: str, is_training: bool):
        record["lora"].append((ckpt_dir, is_training))

    def generate_from_test_sample(test_sample: dict, pipe: Any, config: dict, **kwargs: Any) -> Image.Image:
        record["generate"].append({"sample": copy.deepcopy(test_sample), "config": copy.deepcopy(config), **kwargs})
        return Image.new("RGB", (kwargs["target_width"], kwargs["target_height"]), "gray")

    modules = {
        "src.flux.pipeline_tools": {"CustomFluxPipeline": CustomFluxPipeline,
                                    "load_modulation_adapter": load_modulation_adapter, "load_dit_lora": load_dit_lora},
        "src.flux.generate": {"generate_from_test_sample": generate_from_test_sample},
        "src.utils.data_utils": {"get_train_config": get_train_config},
    }
    for package in ("src", "src.flux", "src.utils"):
        monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for variable in ("FLUX_MODEL_PATH", "CLIP_MODEL_PATH"):
        monkeypatch.delenv(variable, raising=False)
    return record


def xverse_config(tmp_path: Path):
    config = load_model_config(REPO / "models", "xverse")
    settings = {**config.settings, "device": "cpu", "code_dir": str(tmp_path / "code")}
    for key in ("base", "clip", "xverse"):
        (tmp_path / key).mkdir(exist_ok=True)
        settings[key] = {"repo": str(tmp_path / key), "revision": None}
    return type(config)(**{**vars(config), "settings": settings})


def test_xverse_builds_its_test_sample_from_the_subjects(upstream, pool_dir: Path, tmp_path: Path) -> None:
    pool = {key: replace(subject, phrase=f"a {subject.phrase}") for key, subject in load_pool(pool_dir).items()}
    jobs = [job for job in make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [5]) if job.prompt.id in (1, 61)]
    out = tmp_path / "out"

    report = run_generate(xverse_config(tmp_path), jobs, pool, out)

    assert (report.made, report.failed) == (2, [])
    assert upstream["config_paths"][0] == str(tmp_path / "code" / "train/config/XVerse_config_demo.yaml")
    assert upstream["pipeline"] == [{"dit_quant": "None", "use_dit_lora": False, "flux": str(tmp_path / "base"),
                                     "clip": str(tmp_path / "clip")}]
    assert upstream["modulation"] == [(f"{tmp_path / 'xverse'}/modulation_adapter", False)]
    assert upstream["lora"] == [(str(tmp_path / "xverse"), False)]

    records = {r["prompt_id"]: r for r in Manifest(out).records()}
    for call, job in zip(upstream["generate"], jobs):
        subjects = [pool[s] for s in job.prompt.subjects]
        sample = call["sample"]
        assert sample["prompt"] == job.prompt.natural(pool)
        inputs = sample["modulation"][0]
        assert [x["image_path"] for x in inputs["src_inputs"]] == [str(s.image) for s in subjects]
        assert [x["caption"] for x in inputs["src_inputs"]] == [s.phrase for s in subjects]
        assert [w for _, w, _ in inputs["use_words"]] == [s.phrase[2:] for s in subjects]  # upstream drops "a "
        weights = ["3" if s.kind == "person" else "5" for s in subjects]
        assert call["control_weight_lambda"] == "0-1:1/" + "/".join(weights)
        assert (call["num_images"], call["target_height"], call["target_width"], call["num_inference_steps"],
                call["guidance_scale"], call["seed"]) == (1, 768, 768, 28, 3.5, 5)
        assert call["vae_skip_iter"] == "0-0.05:1,0.8-1:1"
        assert (call["latent_sblora_scale"], call["condition_sblora_scale"]) == ("0-1:0.85", "0-1:1.3")
        assert call["config"]["train"]["dataset"] == {"val_condition_size": 256, "val_target_size": 768}
        record = records[job.prompt.id]
        assert record["sent_prompt"] == sample["prompt"]
        assert record["sent"]["placeholder_prompt"] == job.prompt.template.replace("{", "ENT").replace("}", "")
        assert record["sent"]["dit_quant"] == "None"


def test_the_stand_in_pipe_has_only_methods_of_the_installed_flux_pipeline() -> None:
    """XVerse's CustomFluxPipeline holds a diffusers FluxPipeline as `.pipe`, which FakePipe stands in for: each
    method the adapter calls on it must exist on the installed class (tests/test_image_envs.py runs this file with
    the packages of docker/xverse/requirements.txt)."""
    import diffusers

    methods = [name for name in vars(FakePipe) if not name.startswith("_") and callable(getattr(FakePipe, name))]
    assert methods and [name for name in methods if not callable(getattr(diffusers.FluxPipeline, name, None))] == []


def test_placeholders_round_trip_and_ent1_does_not_eat_ent10() -> None:
    captions = [f"a person {i}" for i in range(1, 11)]
    natural = " and ".join(captions) + " on a beach"
    ent = placeholders(natural, captions)
    assert ent == " and ".join(f"ENT{i}" for i in range(1, 11)) + " on a beach"
    assert fill_placeholders(ent, captions) == natural
    assert fill_placeholders("ENT10 hugs ENT1", captions) == "a person 10 hugs a person 1"


def test_a_prompt_cut_past_a_subjects_words_fails_that_job_only(upstream, pool_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream keeps max_text_len T5 tokens; past that get_word_index finds no word and the run crashes. The job is
    recorded as failed with the reason instead, and the other jobs are made."""
    monkeypatch.setitem(DEMO_CONFIG["model"]["modulation"], "max_text_len", 30)  # the N=10 prompt is 47 tokens here
    pool = load_pool(pool_dir)
    jobs = [job for job in make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [0])
            if job.prompt.id in (1, 61)]
    report = run_generate(xverse_config(tmp_path), jobs, pool, tmp_path / "out")
    assert report.made == 1 and len(report.failed) == 1
    assert report.failed[0].startswith("prompt 61 seed 0: JobFailed: xverse: upstream keeps the first 30 T5 tokens")
    assert "the job is not run" in report.failed[0]
    assert len(upstream["generate"]) == 1  # upstream never saw the cut prompt


def test_the_image_pins_every_package_upstream_imports() -> None:
    """XVerse's inference modules import these at module level (src/flux/pipeline_tools.py, src/utils/data_utils.py,
    src/flux/condition.py, src/adapters/mod_adapters.py at 65e2581): the image must carry each, pinned."""
    pins = {line.split("==")[0].lower() for line in (REPO / "docker/xverse/requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert {"torch", "torchvision", "diffusers", "transformers", "peft", "optimum-quanto", "webdataset", "einops",
            "opencv-python-headless", "safetensors", "numpy", "pillow", "pyyaml"} <= pins
