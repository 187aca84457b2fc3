"""Calibration floor: a generic image that contains none of the subjects.

A soft sky-to-ground gradient with seeded low-amplitude noise: image-like
statistics, no identity. Every subject should count as collapsed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.models.base import Adapter, Generation, register


@register
class FloorAdapter(Adapter):
    name = "floor"

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        size = int(self.settings.get("size", 512))
        rng = np.random.default_rng(seed)
        t = np.linspace(0.0, 1.0, size)[:, None, None]
        sky, ground = np.array([150, 190, 235]), np.array([110, 140, 90])
        pixels = (1 - t) * sky + t * ground + rng.normal(0, 6, size=(size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        return Generation(image=image, sent_prompt=prompt)
