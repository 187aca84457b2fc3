"""What a model card says about how its images were made: a summary of its manifest.

Every manifest line records the run that made one image (runner, container
digest, device, package versions, model revision, time). A card lists each
such field with its distinct values and how many images carry each value, so
a run that mixed two GPUs or two container digests shows that plainly instead
of hiding it behind the first line's values. Fields added to the manifest
later (e.g. a commit) show up without changes here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
