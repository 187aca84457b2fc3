"""Which checkpoints a score used, and whether they are the pinned ones: the `smoke` / `real` / `custom` label.

Why: a `real` row claims "scored with the paper setup's DINOv2, DINO, CLIP (and OWLv2) at their pinned
commits", and only such rows are comparable on the leaderboard. params.yaml can name any id, a local folder
or another commit, and `score --backbone/--detector` swap in folders, so the label is earned after loading,
checkpoint by checkpoint, against the project's pins (`PINNED`, not whatever params.yaml says):

- the pinned id at the pinned commit (any commit where the pin is still unpinned) is the pinned checkpoint;
- anything else (a folder, another commit) still is when the files `from_pretrained` reads are
  byte-identical to the pinned snapshot in the hub cache, which can only be checked when it is there;
- otherwise the score is `custom`: recorded, shown apart, never ranked with the leaderboard.

scoring.json keeps each checkpoint's record: the id (or folder), the revision asked for, the commit loaded,
the sha256 of the loaded files and how it was verified (`weights_record`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collapsebench.core.hub import cached_ref, repo_folder
from collapsebench.scoring.backbones import DEFAULT_BACKBONES, BackboneSpec
from collapsebench.scoring.detection import DEFAULT_DETECTOR
from collapsebench.scoring.embed_cache import files_digest

PINNED: dict[str, dict[str, str | None]] = {**DEFAULT_BACKBONES, "detector": DEFAULT_DETECTOR}


def loaded_files(folder: Path) -> list[Path]:
    """The files `from_pretrained` reads from a checkpoint folder: the weights (*.safetensors when there are any,
    as transformers prefers them, else *.bin) and the configuration (model, preprocessing and tokenizer *.json,
    *.txt), so that the same weights behind another preprocessing do not pass for the pinned checkpoint.
    Other frameworks' weights and documentation are left out: a copy of a hub snapshot made with
    `hf download --local-dir` or `cp -rL` hashes like the snapshot."""
    files = [path for path in Path(folder).iterdir() if path.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"] or [p for p in files if p.suffix == ".bin"]
    return sorted(weights + [p for p in files if p.suffix in (".json", ".txt")])


def snapshot(repo: str, commit: str | None) -> Path | None:
    """The hub cache's folder of `repo`@`commit` (what `from_pretrained` reads offline), None when absent."""
    folder = repo_folder(repo) / "snapshots" / commit if commit else None
    return folder if folder is not None and folder.is_dir() else None


def weights_record(name: str, spec: BackboneSpec, identity: Mapping[str, str | None]) -> dict[str, Any]:
    """scoring.json's record of one checkpoint (`name`: dinov2, dino, clip or detector).

    `identity` is the engine's `weights_identity`, computed before loading: for a hub id it holds the commit
    the revision resolved to, the snapshot `from_pretrained` then reads. The sha256 is None only when that
    snapshot is not on this machine (every embedding came from the embedding cache; nothing was loaded).
    """
    if spec.is_local:
        record: dict[str, Any] = {"folder": spec.source, "sha256": files_digest(loaded_files(Path(spec.source)))}
    else:
        folder = snapshot(spec.source, identity.get("commit"))
        record = {"id": spec.source, "revision": spec.revision, "commit": identity.get("commit"),
                  "sha256": files_digest(loaded_files(folder)) if folder else None}
    return {**record, "verified": _verified(name, record)}


def _verified(name: str, record: Mapping[str, Any]) -> str | None:
    """How `record` is known to be the pinned checkpoint: "id+commit", "sha256" (same files), or None."""
    pinned = PINNED[name]
    if record.get("id") == pinned["id"] and pinned["revision"] in (None, record.get("commit")):
        return "id+commit"
    reference = snapshot(str(pinned["id"]), pinned["revision"] or cached_ref(str(pinned["id"])))
    if record["sha256"] and reference and files_digest(loaded_files(reference)) == record["sha256"]:
        return "sha256"
    return None


def scoring_label(profile: str, records: Mapping[str, Mapping[str, Any]]) -> str:
    """`smoke` (the random-weight stand-ins), `real` (every checkpoint verified as the pinned one) or `custom`."""
    if profile == "smoke":
        return "smoke"
    return "real" if all(record["verified"] for record in records.values()) else "custom"
