"""What a model card says about how its images were made: a summary of its manifest, and what they cost.

Every manifest line records the run that made one image (runner, container
digest, device, package versions, model revision, time). A card lists each
such field with its distinct values and how many images carry each value, so
a run that mixed two GPUs or two container digests shows that plainly instead
of hiding it behind the first line's values. Fields added to the manifest
later (e.g. a commit) show up without changes here.

The cost line comes from the same lines: each records the wall seconds of its
one generation call (model loading excluded) and the device it ran on, so the
card can say seconds per image at each subject count and device-hours for the
whole benchmark, on which GPU. Leaderboards rarely say what a result cost.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import fmean
from typing import Any

# Fields that differ per image by design; summarised separately, not listed value by value.
PER_IMAGE = frozenset({"key", "prompt_id", "seed", "subjects", "n_subjects", "scene", "prompt", "sent_prompt", "sent",
                       "image", "sha256", "width", "height", "wall_s", "created_utc"})
FIRST = ("model", "adapter", "model_revision", "runner", "container_digest", "device", "fingerprint")
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Provenance:
    """One model's generation provenance, ready for a template."""

    n_images: int
    first_utc: str | None
    last_utc: str | None
    wall_s_total: float
    sizes: list[tuple[str, int]]
    fields: list[tuple[str, list[tuple[str, int]]]]  # field -> [(value, number of images)]

    def values(self, field: str) -> list[str]:
        return [value for name, values in self.fields if name == field for value, _ in values]


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings -> dotted keys (packages.torch); other values as text, None as 'not recorded'."""
    flat: dict[str, str] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        elif value is None or value == {}:
            flat[name] = NOT_RECORDED
        elif isinstance(value, str):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return flat


def summarize_manifest(records: Iterable[Mapping[str, Any]]) -> Provenance:
    records = list(records)
    counts: dict[str, Counter[str]] = {}
    for record in records:
        for field, value in flatten({k: v for k, v in record.items() if k not in PER_IMAGE}).items():
            counts.setdefault(field, Counter())[value] += 1
    order = [f for f in FIRST if f in counts] + sorted(f for f in counts if f not in FIRST)
    times = sorted(str(r["created_utc"]) for r in records if r.get("created_utc"))
    sizes = Counter(f"{r.get('width')}\u00d7{r.get('height')}" for r in records)
    return Provenance(
        n_images=len(records),
        first_utc=times[0] if times else None,
        last_utc=times[-1] if times else None,
        wall_s_total=sum(float(r.get("wall_s") or 0) for r in records),
        sizes=sorted(sizes.items()),
        fields=[(field, sorted(counts[field].items(), key=lambda item: (-item[1], item[0]))) for field in order],
    )


@dataclass(frozen=True)
class Cost:
    """Generation cost from the manifest: mean seconds per image by subject count, total hours, devices used."""

    seconds_by_n: list[tuple[int, float]]
    hours: float
    devices: list[tuple[str, int]]  # device name -> images made on it
    n_images: int

    @property
    def on_gpu(self) -> bool:
        return any(not device.lower().startswith("cpu") for device, _ in self.devices)

    @property
    def text(self) -> str:
        """One line for the card: "12.1 s per image at N=2, ... ; 0.95 GPU-hours for 225 images on NVIDIA H100"."""
        per_n = ", ".join(f"{seconds_text(s)} at N={n}" for n, s in self.seconds_by_n)
        where = ", ".join(f"{device}" + (f" ({count} images)" if len(self.devices) > 1 else "")
                          for device, count in self.devices)
        unit = "GPU-hours" if self.on_gpu else "CPU-hours (no GPU)"
        return f"{per_n} per image; {self.hours:.3g} {unit} for {self.n_images} images on {where}"


def seconds_text(seconds: float) -> str:
    return f"{seconds:.3g} s"


def generation_cost(records: Iterable[Mapping[str, Any]]) -> Cost | None:
    """The cost of the images whose lines record a wall time; None when no line does."""
    timed = [r for r in records if isinstance(r.get("wall_s"), (int, float)) and r.get("n_subjects") is not None]
    if not timed:
        return None
    by_n: dict[int, list[float]] = {}
    for record in timed:
        by_n.setdefault(int(record["n_subjects"]), []).append(float(record["wall_s"]))
    devices = Counter(str(r.get("device") or NOT_RECORDED) for r in timed)
    return Cost(seconds_by_n=[(n, fmean(values)) for n, values in sorted(by_n.items())],
                hours=sum(float(r["wall_s"]) for r in timed) / 3600,
                devices=sorted(devices.items(), key=lambda item: (-item[1], item[0])), n_images=len(timed))
