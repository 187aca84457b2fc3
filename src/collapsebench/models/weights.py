"""Finding pinned model weights in the local model cache, never on the network.

Model containers run with the network off and the Hugging Face cache mounted
read-only, so a missing checkpoint must fail at once with the command that
fetches it, not hang on a download. A folder path is accepted in place of a
repository id (tests and hand-downloaded checkpoints). The cache's snapshot
folder is named by the commit it holds, which is what we record as the
revision actually used, also where the model file left the revision unpinned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapsebench.core.errors import BenchError
from collapsebench.core.hub import COMMIT, repo_folder


@dataclass(frozen=True)
class WeightsPin:
    """One checkpoint a model needs: a hub repository (or a local folder) at a revision."""

    repo: str
    revision: str | None = None  # a 40-hex commit; None = the cached `main`, recorded as resolved

    @classmethod
    def from_setting(cls, value: Any, where: str) -> WeightsPin:
        if not isinstance(value, dict) or not isinstance(value.get("repo"), str):
            raise BenchError(f"{where}: expected a mapping with 'repo' (and optionally 'revision'), got {value!r}")
        revision = value.get("revision")
        if revision is not None and not COMMIT.match(str(revision)):
            raise BenchError(f"{where}: revision must be a 40-hex commit id or null, got {revision!r}")
        return cls(repo=value["repo"], revision=revision)

    @property
    def is_local(self) -> bool:
        return Path(self.repo).is_dir()

    def download_command(self) -> str:
        return f"hf download {self.repo}" + (f" --revision {self.revision}" if self.revision else "")


def resolve(pin: WeightsPin, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Local folder of the checkpoint and the commit it holds; BenchError naming the fix if absent."""
    if pin.is_local:
        return Path(pin.repo), pin.revision or "local"
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(pin.repo, revision=pin.revision, cache_dir=cache_dir, local_files_only=True))
    except OSError as error:  # the hub's LocalEntryNotFoundError is an OSError in every version we pin
        raise BenchError(
            f"weights {pin.repo}@{pin.revision or 'main'} are not in the model cache"
            f"{f' {cache_dir}' if cache_dir else ''}: on a machine with network run "
            f"`{pin.download_command()}` (HF_HOME pointing at the cache you mount), then rerun"
        ) from error
    return folder, folder.name


def cached(pin: WeightsPin, hub_cache: Path) -> bool:
    """Whether `hub_cache` (a `.../huggingface/hub` folder) holds the pinned snapshot; a cheap host-side check."""
    if pin.is_local:
        return True
    snapshots = repo_folder(pin.repo, Path(hub_cache)) / "snapshots"
    if pin.revision:
        return (snapshots / pin.revision).is_dir()
    return snapshots.is_dir() and any(snapshots.iterdir())


def pins_of(settings: dict[str, Any]) -> list[WeightsPin]:
    """Every checkpoint named in adapter settings: `pipeline` and any setting that is a {repo, revision} mapping."""
    pins = []
    for key, value in settings.items():
        if isinstance(value, dict) and "repo" in value:
            pins.append(WeightsPin.from_setting(value, f"settings.{key}"))
    return pins
