"""MOSAIC (She et al., 2025): its LoRA on FLUX.1-dev, driven through its own inference code.

The official `inference.py` is a script, so this adapter performs the same
steps with the upstream functions (`src.flux_omini.Condition`/`generate`,
`utils.process_image`) imported from the checkout pinned in
docker/mosaic/Dockerfile: FLUX.1-dev in bf16 with the `subject_512` LoRA at
weight 1, each reference padded onto a white 512 px square (subject at 0.9
scale), the i-th reference shifted by -(512 * i) / 16 latent columns,
512 x 512 output, 28 steps, guidance 3.5.

Reference limit: MOSAIC was trained with at most 6 references
(`max_num_refs=6` in train.sh and inference.py), but its inference code
enforces no limit, and the paper runs it up to 10 subjects. We send every
subject's reference in prompt order; beyond 6 the extra references continue
the same position offsets, outside the trained range, and the manifest marks
such images with `beyond_trained_reference_limit: true`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.models.base import Adapter, Generation, register
from collapsebench.models.weights import WeightsPin, resolve

TRAINED_REFERENCE_LIMIT = 6


@register
class MosaicAdapter(Adapter):
    name = "mosaic"
    needs_gpu = True

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.base = WeightsPin.from_setting(self.settings.get("base"), "adapter mosaic: settings.base")
        self.lora = WeightsPin.from_setting(self.settings.get("lora"), "adapter mosaic: settings.lora")
        self.pipe: Any = None
        self.upstream: dict[str, Any] = {}
        self._commits: dict[str, str] = {}

    @property
    def revision(self) -> str:
        return (f"{self.lora.repo}@{self._commits.get('lora') or self.lora.revision or 'unpinned'} on "
                f"{self.base.repo}@{self._commits.get('base') or self.base.revision or 'unpinned'}")

    def load(self) -> None:
        import diffusers
        import torch

        self.upstream = import_upstream(self.settings.get("code_dir", "/opt/mosaic"),
                                        {"flux": "src.flux_omini", "utils": "utils"})
        _, self._commits["base"] = resolve(self.base)
        lora_dir, self._commits["lora"] = resolve(self.lora)
        pipe = diffusers.FluxPipeline.from_pretrained(self.base.repo, revision=self.base.revision, torch_dtype=torch.bfloat16)
        pipe = pipe.to(self.settings.get("device", "cuda"))
        pipe.load_lora_weights(str(lora_dir), weight_name=self.settings["lora"]["weight_name"], adapter_name="subject")
        pipe.set_adapters(["subject"], [1.0])
        self.pipe = pipe

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        import torch

        flux, utils = self.upstream["flux"], self.upstream["utils"]
        ref_size, size = int(self.settings["reference_size"]), int(self.settings["size"])
        deltas = [[0, -(ref_size * (index + 1)) // 16] for index in range(len(subjects))]
        conditions = [
            flux.Condition(utils.process_image(str(subject.image), target_size=ref_size, pad_color=(255, 255, 255),
                                               scale=0.9), "subject", delta)
            for subject, delta in zip(subjects, deltas)
        ]
        call = {"num_inference_steps": int(self.settings["steps"]), "num_images_per_prompt": 1, "height": size,
                "width": size, "guidance_scale": float(self.settings["guidance"])}
        generator = torch.Generator(self.settings.get("device", "cuda")).manual_seed(seed)
        with torch.no_grad():
            images = flux.generate(self.pipe, prompt=prompt, conditions=conditions, generator=generator, **call)[0]
        if not images:
            raise RuntimeError("MOSAIC returned no image")
        sent = {**call, "references": [s.id for s in subjects], "reference_size": ref_size,
                "position_deltas": deltas, "seed": seed,
                "beyond_trained_reference_limit": len(subjects) > TRAINED_REFERENCE_LIMIT}
        return Generation(image=images[0], sent_prompt=prompt, sent=sent)


def import_upstream(code_dir: str, modules: dict[str, str]) -> dict[str, Any]:
    """Import an upstream checkout's modules by name (they import each other as top-level packages)."""
    folder = str(Path(code_dir))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        return {key: importlib.import_module(name) for key, name in modules.items()}
    except ImportError as error:
        raise BenchError(f"upstream code not importable from {code_dir} ({error}); run this model in its "
                         "container (runner: docker), which has the pinned checkout") from error
