"""Calibration homogenization: one subject repeated N times (the paper's "clones" failure).

The first subject of the prompt is kept (the seed does not change who), the
other N-1 identities are lost, so an honest SCR tends to (N-1)/N.
"""

from __future__ import annotations

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.models.base import Adapter, Generation, register
from collapsebench.models.layout import tile


@register
class CloneAdapter(Adapter):
    name = "clone"

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        image = tile([references[0]] * len(references), int(self.settings.get("size", 512)))
        return Generation(image=image, sent_prompt=prompt, sent={"cloned_subject": subjects[0].id})
