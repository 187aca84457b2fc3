"""diffusers-native multi-reference models: one adapter for stock diffusers pipeline classes.

A leaderboard entry of this kind names `pipeline: {class, repo, revision}` in
its model.yaml; the adapter loads exactly that class with
`from_pretrained(repo, revision=...)` once per process, from the mounted model
cache (the container has no network), and sends every subject's reference in
prompt order as the pipeline's list of reference images.

Supported classes are those whose call takes `image=[references...]` next to
the prompt: Flux2Pipeline (FLUX.2 [dev]) and Flux2KleinPipeline (FLUX.2
[klein]). The pipeline resizes a reference above one megapixel and crops it to
a multiple of 16 px; our pool's references are smaller and go in as they are.
Neither pipeline enforces a maximum number of references; the manifest records
how many were sent. QwenImageEditPlusPipeline and OmniGenPipeline also exist in
diffusers 0.42.1 but need torchvision for their processors, which the CPU test
environment lacks, so they are not offered until they can be tested.
"""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.models.base import Adapter, Generation, register
from collapsebench.models.weights import WeightsPin, resolve

DTYPES = ("bfloat16", "float16", "float32")
OFFLOAD = ("none", "model")


@register
class DiffusersAdapter(Adapter):
    """A stock diffusers multi-reference pipeline: validated settings, pinned loading, seeded CPU generator."""

    name = "diffusers"
    needs_gpu = True
    pipeline_classes: ClassVar[tuple[str, ...]] = ("Flux2Pipeline", "Flux2KleinPipeline")
    required_settings: ClassVar[tuple[str, ...]] = ("height", "width", "steps", "guidance")

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        spec = self.settings.get("pipeline")
        where = f"adapter {self.name}"
        if not isinstance(spec, dict):
            raise BenchError(f"{where}: model.yaml needs `pipeline: {{class, repo, revision}}`")
        if spec.get("class") not in self.pipeline_classes:
            raise BenchError(f"{where}: pipeline.class must be one of {self.pipeline_classes}, got {spec.get('class')!r}")
        self.pin = WeightsPin.from_setting(spec, f"{where}: pipeline")
        missing = [key for key in self.required_settings if key not in self.settings]
        if missing:
            raise BenchError(f"{where}: settings lack {', '.join(missing)}")
        if self.settings.get("dtype", "bfloat16") not in DTYPES:
            raise BenchError(f"{where}: settings.dtype must be one of {DTYPES}")
        if self.settings.get("offload", "none") not in OFFLOAD:
            raise BenchError(f"{where}: settings.offload must be one of {OFFLOAD}")
        self.pipe: Any = None
        self._commit: str | None = None

    @property
    def revision(self) -> str:
        return f"{self.pin.repo}@{self._commit or self.pin.revision or 'unresolved'}"

    def load(self) -> None:
        import diffusers
        import torch

        _, self._commit = resolve(self.pin)  # a clear error, before diffusers' own, when the cache lacks it
        pipeline_class = getattr(diffusers, self.settings["pipeline"]["class"])
        dtype = getattr(torch, self.settings.get("dtype", "bfloat16"))
        self.pipe = pipeline_class.from_pretrained(self.pin.repo, revision=self.pin.revision, dtype=dtype)
        device = self.settings.get("device", "cuda")
        if self.settings.get("offload", "none") == "model":
            self.pipe.enable_model_cpu_offload(device=device)  # weights larger than one GPU (e.g. FLUX.2-dev on 80 GB)
        else:
            self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)

    @staticmethod
    def generator(seed: int) -> Any:
        """A CPU generator: diffusers draws the initial noise on it, so a seed gives the same noise on any GPU."""
        import torch

        return torch.Generator("cpu").manual_seed(seed)

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        call = {
            "prompt": prompt,
            "height": int(self.settings["height"]),
            "width": int(self.settings["width"]),
            "num_inference_steps": int(self.settings["steps"]),
            "guidance_scale": float(self.settings["guidance"]),
        }
        output = self.pipe(image=list(references), generator=self.generator(seed), **call)
        sent = {
            **{key: value for key, value in call.items() if key != "prompt"},
            "pipeline": self.settings["pipeline"]["class"],
            "references": [subject.id for subject in subjects],
            "reference_sizes": [list(image.size) for image in references],
            "seed": seed,
            "generator": "cpu",
        }
        return Generation(image=output.images[0], sent_prompt=prompt, sent=sent)
