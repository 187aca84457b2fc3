"""The DVC objects of a GPU run, verified before they reach the results remote and before anything is committed.

A run hands its images on as DVC objects (`dvc-objects/files/md5/<2 hex>/<30 hex>[.dir]`, stage_results.sh). The
commit job must not trust them: an object whose bytes do not hash to its name would be published under a
genuine name, and `dvc push` exits 0 when some objects are missing ("Some of the cache files do not exist"), so
a commit could name images the remote never got. Hence three steps, each a `collapsebench publish` subcommand
that scripts/commit_results.sh runs:

1. `import-objects DIR`: every object of an artifact is a regular file (core/untrusted.py) whose md5 is its
   name, or nothing is imported; then each is written into the local cache.
2. `check-cache TARGET.dvc ...`: every object a target names (its `.dir` listing and each file in it) is in the
   local cache with the right md5; the missing or damaged ones are listed.
3. `check-remote --remote NAME TARGET.dvc ...`, after `dvc push`: every one of those objects is on the remote,
   asked object by object (`dvc status -c` trusts a `.dir` on the remote to mean all its files are there, so it
   cannot see a partial push). Only then does the script commit.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_bytes
from collapsebench.core.untrusted import check_tree, read_checked

OBJECT = re.compile(r"^files/md5/([0-9a-f]{2})/([0-9a-f]{30})(\.dir)?$")
CACHE = Path(".dvc/cache")


@dataclass(frozen=True)
class Target:
    """What one images.dvc names: its folder's `.dir` object and, once that is read, every file object."""

    dvc_file: Path
    dir_oid: str  # "<32 hex>.dir"


def object_path(root: Path, oid: str) -> Path:
    return root / "files" / "md5" / oid[:2] / oid[2:]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def import_objects(source: Path, cache: Path = CACHE) -> int:
    """Step 1 (see the module docstring); returns the number of objects imported."""
    entries = check_tree(source)
    loaded: list[tuple[str, bytes]] = []
    for entry in entries:
        match = OBJECT.match(entry.relative)
        if not match:
            raise BenchError(f"{source / entry.relative}: not a DVC object path (files/md5/<2 hex>/<30 hex>[.dir]); "
                             "nothing was imported")
        data = read_checked(source, entry)
        name = match.group(1) + match.group(2)
        if md5_hex(data) != name:
            raise BenchError(f"{source / entry.relative}: its bytes hash to md5 {md5_hex(data)}, not to its name "
                             f"{name}; the artifact is damaged or forged and nothing was imported")
        loaded.append((name + (match.group(3) or ""), data))
    for oid, data in loaded:
        atomic_write_bytes(object_path(cache, oid), data)
    return len(loaded)


def read_target(dvc_file: Path) -> Target:
    """An images.dvc as stage_results.sh writes it: one output, the folder `images`, hashed as a `.dir` object."""
    try:
        document = yaml.safe_load(Path(dvc_file).read_text(encoding="utf-8"))
        outs = document["outs"]
        (out,) = outs
        oid, path = str(out["md5"]), out["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise BenchError(f"{dvc_file}: not an images.dvc with one output ({error})") from error
    if path != "images" or not re.fullmatch(r"[0-9a-f]{32}\.dir", oid):
        raise BenchError(f"{dvc_file}: expected the folder `images` hashed as a .dir object, got {path!r} {oid!r}")
    return Target(Path(dvc_file), oid)


def listed_oids(target: Target, cache: Path = CACHE) -> list[str]:
    """The `.dir` object and every file object it lists, read from the local cache."""
    listing = object_path(cache, target.dir_oid)
    try:
        entries = json.loads(listing.read_bytes())
        oids = [str(item["md5"]) for item in entries]
    except FileNotFoundError:
        raise BenchError(f"{target.dvc_file}: its listing {target.dir_oid} is not in the cache") from None
    except (ValueError, KeyError, TypeError) as error:
        raise BenchError(f"{listing}: not a DVC .dir listing ({error})") from error
    bad = [oid for oid in oids if not re.fullmatch(r"[0-9a-f]{32}", oid)]
    if bad:
        raise BenchError(f"{listing}: entries that are not md5 hashes: {bad[:5]}")
    return [target.dir_oid, *oids]


def check_cache(dvc_files: list[Path], cache: Path = CACHE) -> int:
    """Step 2; returns the number of objects checked."""
    problems, count = [], 0
    for target in map(read_target, dvc_files):
        for oid in listed_oids(target, cache):
            count += 1
            path = object_path(cache, oid)
            if not path.is_file():
                problems.append(f"{oid} (missing)")
            elif md5_hex(path.read_bytes()) != oid.removesuffix(".dir"):
                problems.append(f"{oid} (its bytes do not hash to its name)")
        if problems:
            raise BenchError(f"{target.dvc_file}: {len(problems)} objects are not in the cache as named: "
                             + ", ".join(problems[:20]) + "; nothing is pushed or committed")
    return count


def check_remote(dvc_files: list[Path], remote: str, repo_root: Path = Path(".")) -> int:
    """Step 3; returns the number of objects found on the remote."""
    from dvc.repo import Repo

    repo = Repo(str(repo_root))
    try:
        odb = repo.cloud.get_remote_odb(remote)
        count = 0
        for target in map(read_target, dvc_files):
            oids = listed_oids(target, Path(repo.cache.local.path).parent.parent)
            missing = [oid for oid in oids if not odb.exists(oid)]
            if missing:
                raise BenchError(f"{target.dvc_file}: {len(missing)} of its {len(oids)} objects are not on the "
                                 f"remote '{remote}' after the push: {', '.join(missing[:20])}; nothing is committed")
            count += len(oids)
        return count
    finally:
        repo.close()
