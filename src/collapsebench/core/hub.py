"""Pinned Hugging Face checkpoints: what a full commit looks like, how a pin reaches `from_pretrained`, and what
the local hub cache holds.

A branch or tag can move; a 40-hex commit cannot. Every loader in the
project (backbones, detector, adapters' weights) passes its pin the same way,
so "unpinned" means one thing everywhere: no `revision` argument at all.
Runs are offline, so when a checkpoint is missing the only useful answer is
what the cache holds instead and the command that fills it (`missing_hint`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

COMMIT = re.compile(r"^[0-9a-f]{40}$")
PULL_SCORING = "collapsebench weights pull --scoring"  # fills the cache with the scoring checkpoints


def default_hub_cache() -> Path:
    """Where the host's Hugging Face hub cache is (the same rules the hub library uses)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"))
    return home / "hub"


def revision_kwargs(revision: str | None) -> dict[str, Any]:
    """`{"revision": ...}` for `from_pretrained` when pinned, `{}` when not (the hub's default branch)."""
    return {"revision": revision} if revision else {}


def repo_folder(repo: str, hub_cache: Path | None = None) -> Path:
    """`repo`'s folder in a hub cache (`models--org--name`, the hub library's layout); default: HF_HUB_CACHE."""
    return Path(hub_cache or default_hub_cache()) / f"models--{repo.replace('/', '--')}"


def cached_commits(repo: str, hub_cache: Path | None = None) -> list[str]:
    """Commits of `repo` that have a snapshot folder in the cache (no network)."""
    snapshots = repo_folder(repo, hub_cache) / "snapshots"
    return sorted(p.name for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []


def cached_ref(repo: str, hub_cache: Path | None = None, ref: str = "main") -> str | None:
    """The commit the cache's `ref` points to: what an unpinned load reads when offline."""
    path = repo_folder(repo, hub_cache) / "refs" / ref
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def missing_hint(repo: str, revision: str | None, pull: str) -> str:
    """For a checkpoint that did not load: the commit wanted, the commits the cache holds, and how to fill it."""
    cache = default_hub_cache()
    found = cached_commits(repo, cache)
    held = f"holds commit(s) {', '.join(found)}" if found else "holds no snapshot of it"
    return (f"{repo} was wanted at {revision or 'main (unpinned)'}; the cache {cache} {held}. With network run "
            f"`{pull}` (HF_HUB_CACHE or HF_HOME pointing at that cache); on an air-gapped machine copy a cache "
            "filled that way elsewhere to this path and set HF_HUB_OFFLINE=1.")
