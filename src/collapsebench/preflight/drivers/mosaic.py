"""Preflight of MOSAIC: its upstream code (`--code-dir`, or /opt/mosaic in its image) on a FLUX.1 twin with a
random `subject` LoRA, whose liveness is shown by the image changing when the LoRA is bypassed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.preflight.drivers import Twin, lora_switch, weights_folder
from collapsebench.preflight.drivers.flux1 import build_flux1, random_lora
from collapsebench.preflight.spec import PreflightSpec
from collapsebench.preflight.upstream import upstream_pin

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class MosaicDriver:
    def twin(self, config: ModelConfig, spec: PreflightSpec, work: Path, weights: Path | None,
             code_dir: Path | None, instance: Any) -> Twin:
        settings = dict(config.settings)
        lora = dict(settings["lora"])
        if weights:
            base, lora["repo"] = weights_folder(weights, "base"), weights_folder(weights, "lora")
        else:
            base, lora["repo"] = str(build_flux1(work)), str(self.build_lora(work / "flux", work / "lora",
                                                                                lora["weight_name"]))
        code = str(code_dir) if code_dir else settings.get("code_dir", "/opt/mosaic")
        # reference_size is the padded square each reference is encoded at: a size, so it shrinks with the output.
        settings.update(base={**settings["base"], "repo": base, "revision": None},
                        lora={**lora, "revision": None}, code_dir=code, size=spec.size, reference_size=spec.size,
                        steps=spec.steps, device="cpu")
        return Twin(settings=settings, pins={"upstream": upstream_pin(config, Path(code)),
                                             "base": config.settings["base"], "lora": config.settings["lora"],
                                             "twin": "local weights" if weights else "random weights"})

    @staticmethod
    def build_lora(flux: Path, folder: Path, weight_name: str) -> Path:
        from diffusers import FluxPipeline, FluxTransformer2DModel

        transformer = FluxTransformer2DModel.from_pretrained(flux / "transformer")
        state = random_lora(transformer, LORA_TARGETS, rank=4, adapter_name="subject")
        FluxPipeline.save_lora_weights(folder, transformer_lora_layers=state, weight_name=weight_name)
        return folder

    def reference_encoder(self, adapter: Any) -> Any:
        return adapter.pipe.vae.encoder

    def switches(self, adapter: Any) -> dict[str, Any]:
        return {"lora subject": lora_switch(adapter.pipe)}
