"""Preflight of `adapter: diffusers` entries: the pipeline class's twin from preflight.yaml, or local weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.models.diffusers_native import pipeline_class
from collapsebench.preflight.drivers import Twin, no_switches
from collapsebench.preflight.spec import PreflightSpec
from collapsebench.preflight.twins import build_twin


class DiffusersDriver:
    def twin(self, config: ModelConfig, spec: PreflightSpec, work: Path, weights: Path | None,
             code_dir: Path | None, instance: Any) -> Twin:
        settings = config.adapter_settings()
        cls = pipeline_class(settings["pipeline"]["class"], f"{config.name}: pipeline.class")
        folder = Path(weights).resolve() if weights else build_twin(spec, cls, work / "twin")
        call = dict(settings.get("call") or {})
        call["fixed"] = {**dict(call.get("fixed") or {}), **spec.fixed}
        settings.update(height=spec.size, width=spec.size, steps=spec.steps, device="cpu", offload="none",
                        pipeline={**settings["pipeline"], "repo": str(folder), "revision": None}, call=call)
        pins = {"pipeline": {key: config.raw["pipeline"].get(key) for key in ("class", "repo", "revision")},
                "twin": "local weights" if weights else "random weights"}
        return Twin(settings=settings, pins=pins)

    def reference_encoder(self, adapter: Any) -> Any:
        return adapter.pipe.vae.encoder

    switches = staticmethod(no_switches)
