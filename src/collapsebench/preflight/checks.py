"""The preflight checks, run through the generate stage itself (run_generate) and then on the loaded adapter.

Per subject count: the job's image is made and recorded (manifest line) at the asked size; the model's
reference encoder saw at least one image per subject; swapping the last subject's reference for another image
changes the output (the N-th reference reaches the image, none is dropped or truncated), a rerun does not (so a
change means something); each adapter or LoRA switched off changes the output (it is live); and past the entry's
reference_limit the manifest line is flagged beyond_reference_limit (within it, it is not).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import Subject, load_reference
from collapsebench.benchmark.suite import Job
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate
from collapsebench.models import get_adapter
from collapsebench.preflight.drivers import Driver
from collapsebench.preflight.record import Check


class ReferenceCounter:
    """Counts the images the model's reference encoder sees per generation (a forward pre-hook on it)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def attach(self, module: Any) -> None:
        module.register_forward_pre_hook(self._count)

    def _count(self, module: Any, inputs: tuple[Any, ...]) -> None:
        if self.seen and inputs and hasattr(inputs[0], "shape"):
            self.seen[-1] += int(inputs[0].shape[0])

    def start(self) -> None:
        self.seen.append(0)


def run_checks(config: ModelConfig, settings: dict[str, Any], driver: Driver, jobs: list[Job],
               pool: dict[str, Subject], out_dir: Path, size: int) -> list[Check]:
    """Every check for `jobs` (one per subject count), with the adapter built from `settings`."""
    twin = replace(config, settings={k: v for k, v in settings.items() if k not in ("pipeline", "call")},
                   raw={**config.raw, **{k: settings[k] for k in ("pipeline", "call") if k in settings}})
    adapter = get_adapter(twin.adapter, twin.adapter_settings())
    counter = ReferenceCounter()
    load, generate = adapter.load, adapter.generate

    def load_and_probe() -> None:
        load()
        counter.attach(driver.reference_encoder(adapter))

    def counted(*args: Any) -> Any:
        counter.start()
        return seeded(*args)

    def seeded(prompt: str, subjects: list[Subject], references: list[Any], seed: int) -> Any:
        # Also torch's global generator: upstream code may draw from it (MOSAIC samples each reference's VAE
        # latent there), and a comparison of two images must see only what it changes.
        import torch

        torch.manual_seed(seed)
        return generate(prompt, subjects, references, seed)

    adapter.load, adapter.generate = load_and_probe, counted
    try:
        report = run_generate(twin, jobs, pool, out_dir, adapter=adapter)
    except Exception as error:  # the run itself: an import, a load, a signature
        return [Check(None, "runs", False, describe_error(error))]
    checks = [Check(None, "runs", not report.failed, "; ".join(report.failed) or f"{report.made} images made")]
    records = {record["key"]: record for record in Manifest(out_dir).records()}
    # A fresh folder: every job was attempted, in order, each with one count (a failed one too).
    for job, seen in zip(jobs, list(counter.seen)):
        if job.key in records:
            checks += job_checks(twin, adapter, driver, job, pool, records[job.key], out_dir, size, seen, seeded)
    return checks


def job_checks(config: ModelConfig, adapter: Any, driver: Driver, job: Job, pool: dict[str, Subject],
               record: dict[str, Any], out_dir: Path, size: int, seen: int,
               generate: Callable[..., Any]) -> list[Check]:
    n = job.prompt.n_subjects
    subjects = [pool[s] for s in job.prompt.subjects]
    references = [load_reference(s) for s in subjects]
    prompt = job.prompt.natural(pool)
    made = Image.open(out_dir / record["image"]).convert("RGB")
    checks = [
        Check(n, "image size", (record["width"], record["height"]) == (size, size),
              f"{record['width']}x{record['height']} (asked {size}x{size})"),
        Check(n, "references received", seen >= n, f"the reference encoder saw {seen} images for {n} subjects"),
    ]

    def compare(label: str, make: Callable[[], Any], should_change: bool) -> Check:
        try:
            other = np.asarray(make().image.convert("RGB"), dtype=np.int16)
        except Exception as error:
            return Check(n, label, False, describe_error(error))
        change = float(np.abs(other - np.asarray(made, dtype=np.int16)).mean())
        return Check(n, label, (change > 0) == should_change, f"mean pixel change {change:.3f}")

    checks.append(compare("rerun is identical", lambda: generate(prompt, subjects, references, job.seed), False))
    # The last subject's reference replaced by another image, in memory and on disk (adapters that hand upstream
    # code a file path, as MOSAIC's and XVerse's do, read the file).
    other = ImageOps.invert(references[-1].convert("RGB")).transpose(Image.Transpose.ROTATE_90)
    other.save(out_dir / "swapped-reference.png")
    swapped_subjects = [*subjects[:-1], replace(subjects[-1], image=out_dir / "swapped-reference.png")]
    checks.append(compare(f"reference {n} of {n} is live",
                          lambda: generate(prompt, swapped_subjects, [*references[:-1], other], job.seed), True))
    for name, switch in driver.switches(adapter).items():
        checks.append(compare(f"{name} is live", lambda switch=switch: _switched(switch, generate, prompt, subjects,
                                                                                 references, job.seed), True))
    limit = config.reference_limit
    if limit is not None:
        flagged = record.get("beyond_reference_limit")
        checks.append(Check(n, "reference limit flagged", flagged is (n > limit),
                            f"limit {limit}; manifest beyond_reference_limit={flagged}"))
    return checks


def _switched(switch: Callable[[], AbstractContextManager[None]], generate: Callable[..., Any], *args: Any) -> Any:
    with switch():
        return generate(*args)


def describe_error(error: BaseException) -> str:
    """The error and where it was raised (the innermost frame), on one line."""
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return f"{type(error).__name__}: {error}{where}".replace("\n", " ")
