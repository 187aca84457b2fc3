"""What every model adapter provides, and the registry that maps names to adapters.

An adapter turns (rendered prompt, reference images, seed) into one image.
It loads its weights once per process (`load`) and reports exactly what it
sent to the model (`Generation.sent_prompt`, `Generation.sent`), because
adapters may render the prompt differently from the natural one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError


@dataclass
class Generation:
    image: Image.Image
    sent_prompt: str
    sent: dict[str, Any] = field(default_factory=dict)  # any other inputs, recorded in the manifest


class JobFailed(Exception):
    """One job the model cannot make as asked (e.g. its prompt would be cut past a subject's words): the job is
    recorded as failed with this reason and the run goes on; a BenchError, in contrast, stops the run."""


class Adapter(ABC):
    """Base class of model adapters. Subclasses set `name` and implement `generate`."""

    name: ClassVar[str]
    # Calibration adapters need no weights and no GPU; real models override both.
    needs_gpu: ClassVar[bool] = False

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = dict(settings)

    @property
    def revision(self) -> str:
        """Model id + pinned revision of the weights (or the adapter version for calibration)."""
        return f"{self.name}@builtin"

    def load(self) -> None:
        """Load weights; called once per process before the first `generate`."""

    @abstractmethod
    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        ...


REGISTRY: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    if cls.name in REGISTRY:
        raise RuntimeError(f"adapter {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_adapter(name: str, settings: dict[str, Any]) -> Adapter:
    if name not in REGISTRY:
        raise BenchError(f"unknown adapter {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](settings)
