"""Calibration ceiling: the references themselves, tiled. Every identity is perfectly present.

Whatever a metric gives this image is the best a real model could hope for at
this subject count under the whole-image protocol; the seed only shuffles the
tile order so seeds are distinct images.
"""

from __future__ import annotations

import random

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.models.base import Adapter, Generation, register
from collapsebench.models.layout import tile


@register
class CollageAdapter(Adapter):
    name = "collage"

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        order = list(range(len(references)))
        random.Random(seed).shuffle(order)
        image = tile([references[i] for i in order], int(self.settings.get("size", 512)))
        return Generation(image=image, sent_prompt=prompt, sent={"tile_order": [subjects[i].id for i in order]})
