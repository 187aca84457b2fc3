"""The subject pool: `data/subjects.yaml` plus one reference image per subject.

IDs (S001, S002, ...) are stable forever: prompts refer to them, so a pool
import only ever appends new IDs and never renumbers existing ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image

from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_png, atomic_write_text

SUBJECT_ID = re.compile(r"^S\d{3,}$")
KINDS = ("person", "animal")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Subject:
    id: str
    phrase: str
    kind: str
    image: Path  # absolute path of the reference image
    source: str
    license: str


def require_fields(where: str, entry: object, fields: tuple[str, ...]) -> dict:
    """`entry` as a mapping that has every one of `fields` non-empty; else a BenchError naming `where`."""
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected a mapping")
    missing = [key for key in fields if not entry.get(key)]
    if missing:
        raise BenchError(f"{where}: missing {', '.join(missing)}")
    return entry


def load_pool(data_dir: Path) -> dict[str, Subject]:
    """Read and validate `<data_dir>/subjects.yaml`; every problem names the file and the entry."""
    path = Path(data_dir) / "subjects.yaml"
    if not path.exists():
        raise BenchError(f"{path}: subject pool not found (run `dvc pull data.dvc` or `collapsebench pool import`)")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    entries = document.get("subjects") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{path}: expected a non-empty list under 'subjects'")
    pool: dict[str, Subject] = {}
    for index, entry in enumerate(entries):
        entry = require_fields(f"{path}: subjects[{index}]", entry, ("id", "phrase", "kind", "image", "source",
                                                                    "license"))
        subject_id = str(entry["id"])
        where = f"{path}: subject {subject_id}"
        if not SUBJECT_ID.match(subject_id):
            raise BenchError(f"{where}: id must look like S001")
        if subject_id in pool:
            raise BenchError(f"{where}: duplicate id")
        if entry["kind"] not in KINDS:
            raise BenchError(f"{where}: kind must be one of {KINDS}, got {entry['kind']!r}")
        image = (path.parent / str(entry["image"])).resolve()
        if not image.is_relative_to(path.parent.resolve()):
            raise BenchError(f"{where}: image path leaves the data folder: {entry['image']}")
        if not image.is_file():
            raise BenchError(f"{where}: reference image not found: {image}")
        pool[subject_id] = Subject(
            id=subject_id,
            phrase=str(entry["phrase"]),
            kind=str(entry["kind"]),
            image=image,
            source=str(entry["source"]),
            license=str(entry["license"]),
        )
    return pool


def pool_label(data_dir: Path) -> dict[str, str]:
    """The pool's `name` and `description` (top-level keys of subjects.yaml; the name defaults to the folder's):
    what the site says about the pool every row used."""
    path = Path(data_dir) / "subjects.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    document = document if isinstance(document, dict) else {}
    return {"name": str(document.get("name") or Path(data_dir).resolve().name),
            "description": str(document.get("description") or "")}


def load_reference(subject: Subject) -> Image.Image:
    try:
        with Image.open(subject.image) as image:
            return image.convert("RGB")
    except OSError as error:
        raise BenchError(f"{subject.image}: cannot decode reference image of {subject.id} ({error})") from error


def import_pool(source_dir: Path, data_dir: Path, kind: str, license: str, size: int = 512) -> list[str]:
    """Add subjects from a folder of subject folders (XVerse / COSMISC layout) to the pool.

    Each sub-folder of `source_dir` is one identity; its first image (sorted by
    name) becomes the reference, its folder name (underscores -> spaces) the
    phrase unless a `phrase.txt` is present. Subjects already imported (same
    source path) keep their IDs; new ones get the next free IDs. Returns the new IDs.
    """
    source_dir, data_dir = Path(source_dir), Path(data_dir)
    if kind not in KINDS:
        raise BenchError(f"--kind must be one of {KINDS}")
    folders = sorted(p for p in source_dir.iterdir() if p.is_dir()) if source_dir.is_dir() else []
    if not folders:
        raise BenchError(f"{source_dir}: no subject folders found (expected one folder of images per identity)")
    path = data_dir / "subjects.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    entries: list[dict] = list((document or {}).get("subjects") or [])
    known_sources = {entry.get("source") for entry in entries}
    next_number = max((int(str(e["id"])[1:]) for e in entries), default=0) + 1
    new_ids: list[str] = []
    for folder in folders:
        source = f"{source_dir.name}/{folder.name}"
        if source in known_sources:
            continue
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise BenchError(f"{folder}: no reference image ({', '.join(IMAGE_SUFFIXES)})")
        phrase_file = folder / "phrase.txt"
        phrase = phrase_file.read_text(encoding="utf-8").strip() if phrase_file.exists() else folder.name.replace("_", " ")
        subject_id = f"S{next_number:03d}"
        next_number += 1
        try:
            with Image.open(images[0]) as image:
                reference = square_crop(image.convert("RGB"), size)
        except OSError as error:
            raise BenchError(f"{images[0]}: cannot decode image ({error})") from error
        atomic_write_png(data_dir / "subjects" / f"{subject_id}.png", reference)
        entries.append({
            "id": subject_id, "phrase": phrase, "kind": kind, "image": f"subjects/{subject_id}.png",
            "source": source, "license": license,
        })
        new_ids.append(subject_id)
    header = "# Subject pool; IDs are stable forever (prompts refer to them). Edited by `collapsebench pool import`.\n"
    kept = {key: (document or {})[key] for key in ("name", "description") if (document or {}).get(key)}
    atomic_write_text(path, header + yaml.safe_dump({**kept, "subjects": entries}, sort_keys=False, allow_unicode=True))
    return new_ids


def square_crop(image: Image.Image, size: int) -> Image.Image:
    """Center-crop to a square and resize, so every reference has the same framing."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)

