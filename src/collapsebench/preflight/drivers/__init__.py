"""Per adapter kind, what preflight needs to know that the adapter does not say.

A driver makes the twin's weights (or takes `--weights DIR`), returns the adapter settings that point at them
(the entry's own settings, with size, steps and the device replaced), names the module whose forward pass sees
every reference (to count what the model received), the switches that turn its adapters or LoRAs off (to show
they are live), and the pins preflight records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.core.errors import BenchError
from collapsebench.preflight.spec import PreflightSpec


@dataclass
class Twin:
    """The adapter settings a preflight runs with, and what it records about them."""

    settings: dict[str, Any]
    pins: dict[str, Any] = field(default_factory=dict)


class Driver(Protocol):
    def twin(self, config: ModelConfig, spec: PreflightSpec, work: Path, weights: Path | None,
             code_dir: Path | None, instance: Any) -> Twin: ...

    def reference_encoder(self, adapter: Any) -> Any: ...

    def switches(self, adapter: Any) -> dict[str, Callable[[], AbstractContextManager[None]]]: ...


def driver_for(config: ModelConfig) -> Driver:
    """The driver of the entry's adapter; an adapter without one cannot be preflighted yet (named)."""
    from collapsebench.preflight.drivers import diffusers, mosaic, xverse

    drivers: dict[str, Driver] = {"diffusers": diffusers.DiffusersDriver(), "mosaic": mosaic.MosaicDriver(),
                                  "xverse": xverse.XVerseDriver()}
    if config.adapter not in drivers:
        raise BenchError(f"model {config.name}: no preflight for adapter {config.adapter!r} "
                         f"(known: {', '.join(sorted(drivers))})")
    return drivers[config.adapter]


def weights_folder(weights: Path, key: str) -> str:
    """`--weights DIR` for a setting with several checkpoints: DIR/<setting key> (e.g. DIR/base, DIR/lora)."""
    folder = Path(weights) / key
    if not folder.is_dir():
        raise BenchError(f"--weights {weights}: expected a folder {folder} holding the `{key}` checkpoint")
    return str(folder.resolve())


def no_switches(adapter: Any) -> dict[str, Callable[[], AbstractContextManager[None]]]:
    return {}


def lora_switch(pipe: Any) -> Callable[[], AbstractContextManager[None]]:
    """Every LoRA of `pipe`'s transformer made a no-op (its up-projections zeroed), then restored. Not peft's or
    diffusers' disable flags: upstream code turns those back on (XVerse calls transformer.enable_lora() in every
    generation) or overrides the scalings (MOSAIC's specify_lora, XVerse's enable_lora)."""
    from contextlib import contextmanager

    @contextmanager
    def off() -> Iterator[None]:
        import torch

        ups = [p for name, p in pipe.transformer.named_parameters() if "lora_B" in name]
        if not ups:
            raise BenchError("no LoRA layer in the transformer: the LoRA was not loaded")
        saved = [p.detach().clone() for p in ups]
        with torch.no_grad():
            for p in ups:
                p.zero_()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(ups, saved):
                    p.copy_(value)

    return off
