"""The site's gallery: for each prompt, the subject references next to every model's image.

Everything the pages show is copied into the site folder (full-size PNGs
and JPEG thumbnails made here with Pillow), so the site never links outside
itself and works from file:// or any sub-path. One seed per prompt is shown
(the lowest one every model has), which keeps the site small; the manifests
hold all seeds. Per-image scores are shown only for models scored with real
backbones, so a smoke-backbone number never appears next to an image.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.core.io import read_csv
from collapsebench.core.manifest import Manifest
from collapsebench.reporting.metrics import image_scores

THUMB_SIDE = 320
COLLAPSE_TAU = 0.4


@dataclass
class Shot:
    """One model's image of one prompt, as the gallery shows it (paths relative to the site root)."""

    model: str
    label: str
    full: str | None = None
    thumb: str | None = None
    width: int = 0
    height: int = 0
    dinov2: float | None = None
    collapsed: int | None = None  # subjects with DINOv2 cosine < COLLAPSE_TAU
    sent_prompt: str | None = None
    note: str = ""


@dataclass
class GalleryPrompt:
    id: int
    n_subjects: int
    scene: str
    prompt: str
    seed: int
    subjects: list[dict[str, Any]]
    shots: list[Shot] = field(default_factory=list)


def thumbnail(source: Path, full_dest: Path, thumb_dest: Path) -> tuple[int, int]:
    """Copy `source` to `full_dest`, write a JPEG thumbnail to `thumb_dest`; return the thumbnail size."""
    full_dest.parent.mkdir(parents=True, exist_ok=True)
    thumb_dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, full_dest)
    try:
        with Image.open(source) as image:
            small = image.convert("RGB")
    except OSError as error:
        raise BenchError(f"{source}: cannot decode image for the gallery ({error})") from error
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
    small.save(thumb_dest, format="JPEG", quality=85)
    return small.size


def model_records(folder: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """A model's manifest lines by (prompt id, seed); lines whose image is missing or outside the folder are dropped."""
    records = {}
    root = folder.resolve()
    for record in Manifest(folder).records():
        try:
            image = (folder / str(record["image"])).resolve()
            key = (int(record["prompt_id"]), int(record["seed"]))
        except (KeyError, TypeError, ValueError) as error:
            raise BenchError(f"{folder / 'manifest.jsonl'}: a line lacks a usable image/prompt_id/seed ({error})") \
                from error
        if image.is_relative_to(root) and image.is_file():
            records[key] = {**record, "_path": image}
    return records


def image_verdicts(folder: Path) -> dict[tuple[int, int], tuple[float, int]]:
    """Per image: mean DINOv2 cosine and the number of its subjects below COLLAPSE_TAU (from scores.csv)."""
    path = folder / "scores.csv"
    if not path.is_file():
        return {}
    rows = read_csv(path)
    means = image_scores(rows, "dinov2")
    collapsed: dict[tuple[int, int], int] = defaultdict(int)
    for row in rows:
        collapsed[(int(row["prompt_id"]), int(row["seed"]))] += float(row["dinov2"]) < COLLAPSE_TAU
    return {image: (mean, collapsed[image]) for image, mean in means.items()}


def copy_references(pool: dict[str, Subject] | None, out: Path) -> dict[str, dict[str, Any]]:
    """Copy every subject reference into the site; return what a template needs per subject id."""
    subjects: dict[str, dict[str, Any]] = {}
    for subject in (pool or {}).values():
        width, height = thumbnail(subject.image, out / "references" / f"{subject.id}.png",
                                  out / "thumbs" / "references" / f"{subject.id}.jpg")
        subjects[subject.id] = {"id": subject.id, "phrase": subject.phrase, "kind": subject.kind,
                                "source": subject.source, "license": subject.license,
                                "full": f"references/{subject.id}.png", "thumb": f"thumbs/references/{subject.id}.jpg",
                                "width": width, "height": height}
    return subjects


def build_gallery(results: Path, models: Sequence[tuple[str, str, str, bool]], subjects: dict[str, dict[str, Any]],
                  out: Path) -> list[GalleryPrompt]:
    """Gallery entries for every prompt any model made; `models` = (name, slug, label, scores_are_smoke)."""
    per_model = {name: model_records(Path(results) / "models" / name) for name, *_ in models}
    verdicts = {name: {} if smoke else image_verdicts(Path(results) / "models" / name) for name, _, _, smoke in models}
    prompt_ids = sorted({pid for records in per_model.values() for pid, _ in records})
    gallery = []
    for pid in prompt_ids:
        seeds = {seed for records in per_model.values() for p, seed in records if p == pid}
        having = [records for records in per_model.values() if any(p == pid for p, _ in records)]
        common = sorted(s for s in seeds if all((pid, s) in records for records in having))
        seed = common[0] if common else min(seeds)
        first = next(records[(pid, seed)] for records in per_model.values() if (pid, seed) in records)
        entry = GalleryPrompt(
            id=pid, n_subjects=int(first.get("n_subjects") or len(first.get("subjects") or [])),
            scene=str(first.get("scene", "")), prompt=str(first.get("prompt", "")), seed=seed,
            subjects=[subjects.get(s, {"id": s, "phrase": "", "full": None}) for s in first.get("subjects") or []])
        for name, slug, label, smoke in models:
            shot = Shot(model=name, label=label)
            record = per_model[name].get((pid, seed))
            if record is None:
                shot.note = f"no image for seed {seed}"
            else:
                stem = f"p{pid:02d}_s{seed}"
                shot.full, shot.thumb = f"images/{slug}/{stem}.png", f"thumbs/{slug}/{stem}.jpg"
                shot.width, shot.height = thumbnail(record["_path"], out / shot.full, out / shot.thumb)
                if record.get("sent_prompt") and record["sent_prompt"] != record.get("prompt"):
                    shot.sent_prompt = str(record["sent_prompt"])
                if smoke:
                    shot.note = "scored with smoke backbones: no score shown"
                elif (pid, seed) in verdicts[name]:
                    shot.dinov2, shot.collapsed = verdicts[name][(pid, seed)]
            entry.shots.append(shot)
        gallery.append(entry)
    return gallery
