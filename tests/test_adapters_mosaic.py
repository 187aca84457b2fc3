"""The MOSAIC adapter up to the call into MOSAIC's own code, with stand-in upstream modules.

The stand-ins record every argument, so the test checks what the adapter
hands to FLUX.1-dev's loader, to the LoRA loader and to MOSAIC's
`process_image` / `Condition` / `generate`, with the settings of the real
models/mosaic/model.yaml (only the weight locations and the device are
replaced).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import REPO
from PIL import Image

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import load_model_config
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.errors import BenchError
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate


class FakeFluxPipeline:
    calls: list[tuple[str, Any]] = []

    @classmethod
    def from_pretrained(cls, repo: str, **kwargs: Any) -> FakeFluxPipeline:
        cls.calls.append(("from_pretrained", repo, kwargs))
        return cls()

    def to(self, device: str) -> FakeFluxPipeline:
        self.calls.append(("to", device))
        return self

    def load_lora_weights(self, path: str, **kwargs: Any) -> None:
        self.calls.append(("load_lora_weights", path, kwargs))

    def set_adapters(self, names: list[str], weights: list[float]) -> None:
        self.calls.append(("set_adapters", names, weights))


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list]:
    """Stand-ins for MOSAIC's `src.flux_omini` and `utils` modules and for diffusers.FluxPipeline."""
    import diffusers

    record: dict[str, list] = {"process_image": [], "conditions": [], "generate": []}

    def process_image(path: str, target_size: int, pad_color: tuple, scale: float) -> Image.Image:
        record["process_image"].append((path, target_size, pad_color, scale))
        return Image.new("RGB", (target_size, target_size), "white")

    class Condition:
        def __init__(self, condition: Image.Image, adapter: str, position_delta: list[int]) -> None:
            record["conditions"].append((condition.size, adapter, position_delta))

    def generate(pipe: Any, **kwargs: Any) -> tuple[list[Image.Image]]:
        record["generate"].append(kwargs)
        return ([Image.new("RGB", (kwargs["width"], kwargs["height"]), "gray")],)

    flux = types.ModuleType("src.flux_omini")
    flux.Condition, flux.generate = Condition, generate
    utils = types.ModuleType("utils")
    utils.process_image = process_image
    monkeypatch.setitem(sys.modules, "src", types.ModuleType("src"))
    monkeypatch.setitem(sys.modules, "src.flux_omini", flux)
    monkeypatch.setitem(sys.modules, "utils", utils)
    monkeypatch.setattr(sys, "path", list(sys.path))
    FakeFluxPipeline.calls = []
    monkeypatch.setattr(diffusers, "FluxPipeline", FakeFluxPipeline, raising=False)
    return record


def mosaic_config(tmp_path: Path):
    """The real models/mosaic/model.yaml with local weight folders and the CPU as device."""
    config = load_model_config(REPO / "models", "mosaic")
    for key in ("base", "lora"):
        (tmp_path / key).mkdir(exist_ok=True)
    settings = {**config.settings, "device": "cpu", "code_dir": str(tmp_path / "code"),
                "base": {"repo": str(tmp_path / "base"), "revision": None},
                "lora": {**config.settings["lora"], "repo": str(tmp_path / "lora")}}
    return type(config)(**{**vars(config), "settings": settings})


def test_mosaic_sends_references_in_prompt_order_with_official_settings(upstream, pool_dir: Path, tmp_path: Path) -> None:
    pool = load_pool(pool_dir)
    jobs = [job for job in make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [3]) if job.prompt.id in (1, 61)]
    out = tmp_path / "out"

    report = run_generate(mosaic_config(tmp_path), jobs, pool, out)

    assert (report.made, report.failed) == (2, [])
    assert FakeFluxPipeline.calls[0] == ("from_pretrained", str(tmp_path / "base"),
                                         {"revision": None, "torch_dtype": torch.bfloat16})
    assert ("load_lora_weights", str(tmp_path / "lora"),
            {"weight_name": "subject_512.safetensors", "adapter_name": "subject"}) in FakeFluxPipeline.calls
    assert ("set_adapters", ["subject"], [1.0]) in FakeFluxPipeline.calls

    two, ten = jobs
    expected_paths = [str(pool[s].image) for s in two.prompt.subjects + ten.prompt.subjects]
    assert [call[0] for call in upstream["process_image"]] == expected_paths
    assert all(call[1:] == (512, (255, 255, 255), 0.9) for call in upstream["process_image"])
    assert [c[2] for c in upstream["conditions"][:2]] == [[0, -32], [0, -64]]
    assert [c[2] for c in upstream["conditions"][2:]] == [[0, -32 * (i + 1)] for i in range(10)]
    for call, job in zip(upstream["generate"], jobs):
        assert call["prompt"] == job.prompt.natural(pool)
        assert (call["height"], call["width"], call["num_inference_steps"], call["guidance_scale"],
                call["num_images_per_prompt"]) == (512, 512, 28, 3.5, 1)
        assert call["generator"].initial_seed() == 3
        assert len(call["conditions"]) == job.prompt.n_subjects

    records = {r["prompt_id"]: r for r in Manifest(out).records()}
    assert records[1]["sent"]["beyond_trained_reference_limit"] is False
    assert records[61]["sent"]["beyond_trained_reference_limit"] is True
    assert records[61]["sent"]["references"] == list(ten.prompt.subjects)
    assert records[1]["model_revision"] == f"{tmp_path / 'lora'}@local on {tmp_path / 'base'}@local"


def test_the_stand_in_pipeline_has_only_methods_of_the_installed_flux_pipeline() -> None:
    """FakeFluxPipeline replaces diffusers.FluxPipeline above, so each method the adapter calls on it must exist on
    the installed class: a diffusers pin without one fails here (tests/test_image_envs.py runs this file with the
    packages of docker/mosaic/requirements.txt)."""
    import diffusers

    methods = [name for name in vars(FakeFluxPipeline) if not name.startswith("_")
               and callable(getattr(FakeFluxPipeline, name))]
    assert methods and [name for name in methods if not callable(getattr(diffusers.FluxPipeline, name, None))] == []


def test_mosaic_outside_its_container_says_where_to_run_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collapsebench.models import get_adapter

    monkeypatch.setitem(sys.modules, "src.flux_omini", None)  # import fails as it does without the checkout
    monkeypatch.setattr(sys, "path", list(sys.path))
    adapter = get_adapter("mosaic", mosaic_config(tmp_path).adapter_settings())
    with pytest.raises(BenchError, match="runner: docker"):
        adapter.load()


def test_an_out_of_memory_job_is_reported_with_its_prompt_and_seed_and_the_others_go_on(
        upstream, pool_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flux = sys.modules["src.flux_omini"]
    original = flux.generate

    def generate(pipe: Any, **kwargs: Any):
        if len(kwargs["conditions"]) == 10:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(pipe, **kwargs)

    monkeypatch.setattr(flux, "generate", generate)
    pool = load_pool(pool_dir)
    jobs = [job for job in make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [3])
            if job.prompt.id in (1, 61, 62)]
    report = run_generate(mosaic_config(tmp_path), jobs, pool, tmp_path / "out")
    assert report.made == 1
    assert [f.split(":")[0] for f in report.failed] == ["prompt 61 seed 3", "prompt 62 seed 3"]
    assert all("OutOfMemoryError" in f for f in report.failed)
    assert [r["prompt_id"] for r in Manifest(tmp_path / "out").records()] == [1]


def test_preflight_lora_switch_makes_the_lora_a_no_op_and_restores_it() -> None:
    """What preflight's `lora ... is live` check switches off (preflight/drivers): a random LoRA on a tiny FLUX.1
    transformer changes its output; switched off, the output is the base model's; afterwards the LoRA is back.
    Needs peft, which the MOSAIC and XVerse images carry (tests/test_image_envs.py runs this file with their pins)."""
    pytest.importorskip("peft")
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    from collapsebench.preflight.drivers import lora_switch
    from collapsebench.preflight.drivers.flux1 import random_lora

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                         pooled_projection_dim=16, guidance_embeds=True, axes_dims_rope=(2, 2, 4))
    inputs = {"hidden_states": torch.randn(1, 4, 16), "encoder_hidden_states": torch.randn(1, 3, 16),
              "pooled_projections": torch.randn(1, 16), "timestep": torch.tensor([0.5]),
              "img_ids": torch.zeros(4, 3), "txt_ids": torch.zeros(3, 3), "guidance": torch.tensor([3.5])}
    base = transformer(**inputs).sample
    state = random_lora(transformer, ["to_q", "to_k", "to_v", "to_out.0"], rank=4, adapter_name="subject")
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]),
                            adapter_name="subject")
    from peft.utils import set_peft_model_state_dict

    set_peft_model_state_dict(transformer, state, adapter_name="subject")
    with_lora = transformer(**inputs).sample
    pipe = types.SimpleNamespace(transformer=transformer)
    with lora_switch(pipe)():
        off = transformer(**inputs).sample
    assert not torch.allclose(with_lora, base) and torch.allclose(off, base)
    assert torch.allclose(transformer(**inputs).sample, with_lora)
