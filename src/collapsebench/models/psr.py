"""PSR (Wang et al., 2025, arXiv:2512.01236): a reported-only entry.

No public weights and no inference code have been released for PSR, so it
cannot be generated or re-scored here; its leaderboard row shows the paper's
reported numbers only. The adapter exists so that asking to run it gives that
reason instead of an unknown-adapter error.
"""

from __future__ import annotations

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.models.base import Adapter, Generation, register

REASON = ("PSR (arXiv:2512.01236) has no public weights or inference code, so it cannot be run; "
          "its row shows the paper's reported numbers (kind: reported)")


@register
class PsrAdapter(Adapter):
    name = "psr"

    def load(self) -> None:
        raise BenchError(REASON)

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        raise BenchError(REASON)
