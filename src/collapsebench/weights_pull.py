"""`collapsebench weights pull | check`: put exactly the checkpoints a run needs into the Hugging Face cache, or
say, without network, what the cache lacks.

Why a command: model containers and the scoring image run with the network off and the cache mounted
read-only, so every checkpoint must be in the cache, at the commit the run asks for, before the run starts.
Which checkpoints those are is already written down (the {repo, revision} pins of models/<name>/model.yaml,
and params.yaml `scoring`); a hand-kept list of download commands drifts away from them.

- `pull` asks the hub for each checkpoint's file list at its commit (one request with a short timeout, so an
  unreachable hub is reported in seconds rather than after the hub library's retries), refuses before
  downloading anything when the disk cannot hold what is missing, then lets `snapshot_download` fetch the rest:
  complete files are skipped; a transfer cut off mid-file is resumed (from its last 10 MiB chunk) while the
  process lives, and after a killed pull the cut file starts over (huggingface_hub 2.x drops partial files).
- `check` reads the cache only: per checkpoint, present at the wanted commit, at another commit, incomplete
  (an interrupted pull), or absent.
- A pin with `revision: null` names no commit to fetch or to check. `pull` records the commit it resolved in
  weights.lock.json (commit that file): later pulls fetch that same commit, and the cache's `main` ref is
  pointed at it, since that ref is what an unpinned loader reads offline.

Not part of any pipeline stage (dvc.yaml does not depend on this file): it only fills the cache.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collapsebench.benchmark.model_config import load_model_config
from collapsebench.core.errors import BenchError
from collapsebench.core.hub import COMMIT, cached_commits, cached_ref, repo_folder
from collapsebench.core.io import atomic_write_json, atomic_write_text
from collapsebench.models.weights import WeightsPin, pins_of

LOCK_FILE = Path("weights.lock.json")
LOCK_ABOUT = ("Commits that `collapsebench weights pull` resolved for checkpoints pinned with revision: null "
              "(models/*/model.yaml, params.yaml scoring). Later pulls fetch these commits; commit this file.")
DEFAULT_TIMEOUT_S = 10.0  # per request; HF_HUB_ETAG_TIMEOUT overrides it, as it does for the hub library


@dataclass
class Needed:
    """One checkpoint and who needs it ("model mosaic", "scoring dinov2")."""

    pin: WeightsPin
    users: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fetch:
    """What `pull` will download for one checkpoint: its commit and the bytes the cache lacks."""

    repo: str
    commit: str
    missing_bytes: int
    unpinned: bool


@dataclass(frozen=True)
class Status:
    """`check`'s finding for one checkpoint."""

    need: Needed
    state: str  # ok | incomplete | missing
    commit: str | None  # the commit a run needs (or, unpinned and unlocked, the one it would load)
    detail: str = ""

    @property
    def missing(self) -> bool:
        return self.state != "ok"

    def line(self) -> str:
        pin = self.need.pin
        text = pin.repo if pin.is_local else f"{pin.repo}@{self.commit or 'main'}"
        return f"  {self.state:<10} {text}{f': {self.detail}' if self.detail else ''}  [{', '.join(self.need.users)}]"


def needed_weights(params: Mapping[str, Any], models_dir: Path, models: Sequence[str],
                   scoring: bool) -> list[Needed]:
    """The checkpoints of `models` (their model.yaml pins) and, with `scoring`, of the real scoring profile
    (backbones, the detector when matched SCR is on, the face networks when face identity is on), each once. Neither given: what params.yaml's
    pipeline runs (the models its `models` selects, and the scoring checkpoints when its profile is real)."""
    if not models and not scoring:
        from collapsebench.benchmark.registry import (
            DEFAULT_SELECTION,
            generates_here,
            select,
        )

        models = [c.name for c in select(params.get("models", DEFAULT_SELECTION), models_dir, "params.yaml: models")
                  if generates_here(c)]
        scoring = (params.get("scoring") or {}).get("profile") == "real"
    found: dict[tuple[str, str | None], Needed] = {}

    def add(pin: WeightsPin, user: str) -> None:
        found.setdefault((pin.repo, pin.revision), Needed(pin)).users.append(user)

    for name in models:
        for pin in pins_of(load_model_config(models_dir, name).adapter_settings()):
            add(pin, f"model {name}")
    if scoring:
        from collapsebench.scoring.config import ScoringConfig

        config = ScoringConfig.from_params(params, profile="real")
        specs = {**config.backbones, **({"detector": config.matched.detector} if config.matched else {})}
        for name, spec in specs.items():
            add(WeightsPin(spec.source, spec.revision), f"scoring {name}")
        if config.face is not None:  # face identity: two ONNX files, each in its own pinned repository
            for onnx in (config.face.detector, config.face.recognizer):
                add(WeightsPin(onnx.source, onnx.revision), f"scoring {onnx.name}")
    return list(found.values())


# ---------------------------------------------------------------- the lock file

def read_lock(path: Path) -> dict[str, dict[str, str]]:
    """repo -> {"commit", "pulled"} for unpinned checkpoints already pulled; {} when there is no lock file."""
    if not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BenchError(f"{path}: not valid JSON ({error})") from error
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not all(
            isinstance(entry, dict) and COMMIT.match(str(entry.get("commit", ""))) for entry in weights.values()):
        raise BenchError(f'{path}: expected {{"weights": {{REPO: {{"commit": <40-hex commit>, "pulled": DATE}}}}}}')
    return weights


def locked_commit(pin: WeightsPin, lock: Mapping[str, Mapping[str, str]]) -> str | None:
    """The commit a run needs: the pin's own, else the one recorded in the lock (None: unpinned, never pulled)."""
    return pin.revision or (lock.get(pin.repo) or {}).get("commit")


# ---------------------------------------------------------------- check (no network)

def check_weights(needs: Sequence[Needed], hub_cache: Path, lock_path: Path = LOCK_FILE) -> list[Status]:
    """What the cache holds for each checkpoint, read from disk only."""
    lock = read_lock(lock_path)
    return [_status(need, hub_cache, locked_commit(need.pin, lock)) for need in needs]


def _status(need: Needed, hub_cache: Path, wanted: str | None) -> Status:
    pin = need.pin
    state, commit, detail = _state(pin, hub_cache, wanted)
    if pin.revision is None and not pin.is_local:
        note = "commit recorded in the lock file" if wanted else "not locked: `weights pull` records what it fetches"
        detail = f"{detail}; unpinned, {note}" if detail else f"unpinned, {note}"
    return Status(need, state, commit, detail)


def _state(pin: WeightsPin, hub_cache: Path, wanted: str | None) -> tuple[str, str | None, str]:
    """(ok | incomplete | missing, the commit concerned, why) for one checkpoint."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if pin.is_local:
        return "ok", None, "a local folder"
    try:
        validate_repo_id(pin.repo)
    except HFValidationError:
        return "missing", None, "neither an existing folder nor a hub repository id"
    # What a run will load: the pinned commit, or for an unpinned pin whatever the cache's `main` points to.
    loads = pin.revision or cached_ref(pin.repo, hub_cache)
    if loads and wanted and loads != wanted:
        return "missing", wanted, f"the cache's main ref points to {loads}, not to this commit"
    complete = _complete(pin.repo, loads, hub_cache) if loads else None
    if complete is not None:
        return ("ok", loads, "") if complete else ("incomplete", loads, "files are missing (an interrupted pull?)")
    found = ", ".join(cached_commits(pin.repo, hub_cache))
    if not found:
        return "missing", wanted, "not in the cache"
    return "missing", wanted, (f"the cache holds {found} instead" if pin.revision else
                               f"the cache holds {found} but no main ref, which an unpinned load reads")


def _complete(repo: str, commit: str, hub_cache: Path) -> bool | None:
    """Whether the cache holds every file of `repo`@`commit` (None: no snapshot of that commit at all).

    The hub library keeps each snapshot's file list next to it and checks a snapshot against it offline; a
    snapshot without that list (filled by `from_pretrained` or an older huggingface_hub) counts as complete.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        snapshot_download(repo, revision=commit, cache_dir=hub_cache, local_files_only=True)
    except IncompleteSnapshotError:
        return False
    except LocalEntryNotFoundError:
        return None
    return True


def describe(statuses: Sequence[Status], hub_cache: Path) -> str:
    """`check`'s printout: one line per checkpoint, then what to do about anything missing."""
    if not statuses:
        return "weights: nothing needed (no model names a checkpoint and scoring is not on the real profile)"
    lines = [f"weights in {hub_cache}:", *(status.line() for status in statuses)]
    missing = sum(status.missing for status in statuses)
    lines.append(f"{missing} of {len(statuses)} missing for an offline run; with network run "
                 "`collapsebench weights pull` with the same arguments" if missing
                 else "everything an offline run needs is in the cache (HF_HUB_OFFLINE=1 is safe)")
    return "\n".join(lines)


# ---------------------------------------------------------------- pull (network)

def pull_weights(needs: Sequence[Needed], hub_cache: Path, lock_path: Path = LOCK_FILE,
                 endpoint: str | None = None) -> list[Fetch]:
    """Download every hub checkpoint of `needs` into `hub_cache` at its pinned (or locked) commit.

    Every file list is fetched first and the disk checked against the total, so a pull that cannot finish
    is refused before it starts. `endpoint` (default: HF_ENDPOINT, read by the hub library) is the hub to
    ask. Returns what was fetched.
    """
    hub_cache = Path(hub_cache)
    if _offline():
        raise BenchError(_offline_message("HF_HUB_OFFLINE is set, so the hub cannot be asked for anything", hub_cache))
    lock = read_lock(lock_path)
    plan = [_plan(need.pin, locked_commit(need.pin, lock), hub_cache, endpoint)
            for need in needs if not need.pin.is_local]
    _check_space(plan, hub_cache)
    from huggingface_hub import snapshot_download

    for fetch in plan:
        with _hub_errors(fetch.repo, fetch.commit, hub_cache, endpoint):
            snapshot_download(fetch.repo, revision=fetch.commit, cache_dir=hub_cache, endpoint=endpoint,
                              etag_timeout=_timeout())
        if fetch.unpinned:
            atomic_write_text(repo_folder(fetch.repo, hub_cache) / "refs" / "main", fetch.commit)
        if fetch.unpinned and (lock.get(fetch.repo) or {}).get("commit") != fetch.commit:
            lock[fetch.repo] = {"commit": fetch.commit, "pulled": datetime.now(UTC).date().isoformat()}
            atomic_write_json(Path(lock_path), {"about": LOCK_ABOUT, "weights": lock})
    return plan


def _plan(pin: WeightsPin, commit: str | None, hub_cache: Path, endpoint: str | None) -> Fetch:
    """The commit to fetch (an unpinned, unlocked pin: the hub's current `main`) and the bytes not yet cached."""
    from huggingface_hub import HfApi

    with _hub_errors(pin.repo, commit or "main", hub_cache, endpoint):
        info = HfApi(endpoint=endpoint).model_info(pin.repo, revision=commit or "main", files_metadata=True,
                                                   timeout=_timeout())
    snapshot = repo_folder(pin.repo, hub_cache) / "snapshots" / str(info.sha)
    missing = sum((sibling.lfs.size if sibling.lfs else sibling.size) or 0 for sibling in info.siblings or []
                  if not (snapshot / sibling.rfilename).is_file())
    return Fetch(pin.repo, str(info.sha), missing, unpinned=pin.revision is None)


def _check_space(plan: Sequence[Fetch], hub_cache: Path) -> None:
    needed = sum(fetch.missing_bytes for fetch in plan)
    existing = next(folder for folder in (hub_cache, *hub_cache.parents) if folder.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        sizes = ", ".join(f"{fetch.repo} {_gb(fetch.missing_bytes)}" for fetch in plan if fetch.missing_bytes)
        raise BenchError(f"weights pull: {_gb(needed)} to download ({sizes}) but only {_gb(free)} free at "
                         f"{existing}; nothing was downloaded. Free some space, or pass --cache DIR on a larger "
                         "disk (and point HF_HUB_CACHE at it for the runs)")


@contextmanager
def _hub_errors(repo: str, revision: str, hub_cache: Path, endpoint: str | None) -> Iterator[None]:
    """The hub library's exceptions as BenchErrors that say what to do."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo}@{revision}"
    try:
        yield
    except GatedRepoError as error:
        raise BenchError(
            f"{where} is gated: open {endpoint or constants.ENDPOINT}/{repo} logged in to the hub and accept its "
            "licence, then log in here with `hf auth login` (`huggingface-cli login` in older huggingface_hub) or "
            "set HF_TOKEN to a token of that account, and rerun") from error
    except RevisionNotFoundError as error:
        raise BenchError(f"{where}: the hub has no such revision; fix the pin in models/<name>/model.yaml or "
                         "params.yaml `scoring`") from error
    except HFValidationError as error:
        raise BenchError(f"{repo}: neither an existing folder nor a hub repository id ({error})") from error
    except RepositoryNotFoundError as error:
        raise BenchError(f"{repo}: no such repository on the hub, or a private one (log in with `hf auth login` or "
                         "set HF_TOKEN)") from error
    except (OfflineModeIsEnabled, httpx2.TransportError, LocalEntryNotFoundError) as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BenchError(_offline_message(f"cannot reach the Hugging Face hub for {where} ({cause})", hub_cache)
                         ) from error
    except HfHubHTTPError as error:
        raise BenchError(f"{where}: the hub answered HTTP {error.response.status_code}; try again later") from error


def _offline_message(problem: str, hub_cache: Path) -> str:
    return (f"{problem}. Without network: run the same "
            f"`collapsebench weights pull` on a machine that has it, copy (or mount) its cache folder here as "
            f"{hub_cache}, set HF_HUB_OFFLINE=1 and confirm with `collapsebench weights check`. An interrupted "
            "pull keeps its complete files: running it again resumes.")


def _offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), as set now or when the hub library was imported."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.is_offline_mode() or any(str(flag).upper() in {"1", "ON", "YES", "TRUE"} for flag in flags)


def _timeout() -> float:
    return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or DEFAULT_TIMEOUT_S)


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"
