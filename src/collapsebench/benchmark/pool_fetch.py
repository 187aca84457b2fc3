"""`collapsebench pool fetch NAME`: build a subject pool from pinned public files.

`pools/NAME.yaml` lists each subject with the URL of its reference image at a
pinned revision (a 40-hex commit in the URL), optionally a `member` inside a
zip archive at that URL, and the sha256 of the downloaded bytes where it is
known. Hashes that could not be known when the definition was written are
recorded on the first fetch in `pools/NAME.lock.json` (commit it), and every
later fetch is held to them: trust on first use, then never again.

Downloads go to a cache folder laid out like the URLs (`CACHE/host/path`), so a
cache made on a machine with network can be copied to one without. A partial
download stays as `FILE.part` and the next run continues it with an HTTP Range
request. Nothing is built until every file is verified, and the pool folder is
built in a staging folder and swapped in whole, so a failed fetch never leaves
a half-built pool. Only the standard library speaks HTTP here (urllib).
"""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from PIL import Image

from collapsebench.benchmark.pool import (
    KINDS,
    SUBJECT_ID,
    load_pool,
    require_fields,
    square_crop,
)
from collapsebench.core.errors import BenchError
from collapsebench.core.io import (
    atomic_write_json,
    atomic_write_png,
    atomic_write_text,
    make_temp_folder,
    replace_folder,
    sha256_file,
)

PINNED = re.compile(r"/[0-9a-f]{40}/")  # a full commit id in the URL path: the bytes cannot move under us
SHA256 = re.compile(r"^[0-9a-f]{64}$")
KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_PHRASE_WORDS = 4  # up to 10 phrases go into one prompt, which must fit CLIP's 77 tokens
CHUNK = 1 << 16
USER_AGENT = "collapsebench-pool-fetch"
POOL_MARKER = "subjects.yaml"


@dataclass(frozen=True)
class PoolEntry:
    id: str
    key: str
    kind: str
    phrase: str
    url: str
    sha256: str  # of the bytes at `url` (the archive, for a member); "" when pinned by URL only
    member: str  # path inside the zip archive at `url`; "" for a plain image file
    license: str


@dataclass(frozen=True)
class PoolDefinition:
    name: str
    path: Path
    entries: list[PoolEntry]

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f"{self.name}.lock.json")

    def urls(self) -> list[str]:
        """Each file to download once, in definition order (members of one archive share it)."""
        return list(dict.fromkeys(entry.url for entry in self.entries))

    def users(self, url: str) -> str:
        """The subjects that come from `url`, for error messages."""
        keys = [f"{e.id} ({e.key})" for e in self.entries if e.url == url]
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


@dataclass(frozen=True)
class FetchReport:
    subjects: int
    downloaded: int  # files fetched over the network by this run
    cached: int  # files already in the cache and verified
    data_dir: Path
    lock_path: Path


def load_definition(path: Path) -> PoolDefinition:
    """Read and validate `pools/NAME.yaml`; every problem names the file and the entry."""
    path = Path(path)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise BenchError(f"{path}: pool definition not found" + (f" (known: {', '.join(known)})" if known else ""))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BenchError(f"{path}: not valid YAML ({error})") from error
    rows = document.get("subjects") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not rows:
        raise BenchError(f"{path}: expected a non-empty list under 'subjects'")
    entries = [_entry(path, index, row) for index, row in enumerate(rows)]
    for field in ("id", "key"):
        seen: set[str] = set()
        for entry in entries:
            value = getattr(entry, field)
            if value in seen:
                raise BenchError(f"{path}: duplicate {field} {value}")
            seen.add(value)
    hashes: dict[str, str] = {}
    for entry in entries:
        if entry.sha256 and hashes.setdefault(entry.url, entry.sha256) != entry.sha256:
            raise BenchError(f"{path}: subject {entry.id}: {entry.url} is listed with two different sha256")
    return PoolDefinition(name=path.stem, path=path, entries=entries)


def _entry(path: Path, index: int, row: object) -> PoolEntry:
    row = require_fields(f"{path}: subjects[{index}]", row, ("id", "key", "kind", "phrase", "url", "license"))
    entry = PoolEntry(id=str(row["id"]), key=str(row["key"]), kind=str(row["kind"]), phrase=str(row["phrase"]).strip(),
                      url=str(row["url"]), sha256=str(row.get("sha256") or "").lower(),
                      member=str(row.get("member") or ""), license=str(row["license"]))
    where = f"{path}: subject {entry.id}"
    if not SUBJECT_ID.match(entry.id):
        raise BenchError(f"{where}: id must look like S001")
    if not KEY.match(entry.key):
        raise BenchError(f"{where}: key must be lower-case letters, digits, '.', '_' or '-', got {entry.key!r}")
    if entry.kind not in KINDS:
        raise BenchError(f"{where}: kind must be one of {KINDS}, got {entry.kind!r}")
    if len(entry.phrase.split()) > MAX_PHRASE_WORDS:
        raise BenchError(f"{where}: phrase {entry.phrase!r} has more than {MAX_PHRASE_WORDS} words "
                         "(10 phrases must fit one 77-token CLIP prompt)")
    if urlsplit(entry.url).scheme not in ("http", "https") or not PINNED.search(entry.url):
        raise BenchError(f"{where}: url must be http(s) and pinned to a 40-hex commit, got {entry.url}")
    if entry.sha256 and not SHA256.match(entry.sha256):
        raise BenchError(f"{where}: sha256 must be 64 hex digits or empty, got {entry.sha256!r}")
    return entry


def cache_path(cache_dir: Path, url: str) -> Path:
    """`CACHE/host/path` of a URL: readable, so files downloaded by hand can be put where they belong."""
    parts = urlsplit(url)
    segments = [parts.hostname or ""] + [unquote(s) for s in parts.path.split("/") if s]
    if any(s in ("", ".", "..") or "/" in s or "\\" in s for s in segments):
        raise BenchError(f"{url}: cannot be stored in the download cache (empty or '..' path segment)")
    return Path(cache_dir).joinpath(*segments)


def read_lock(path: Path) -> dict[str, str]:
    """URL -> sha256 recorded by earlier fetches ({} before the first one)."""
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {url: str(info["sha256"]) for url, info in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BenchError(f"{path}: not a pool lock file ({error}); restore it from git or delete it") from error


def fetch_pool(definition_path: Path, data_dir: Path, cache_dir: Path, size: int = 512, timeout: float = 15.0,
               progress: Callable[[str], None] = lambda message: None) -> FetchReport:
    """Download (or find in the cache) and verify every file, then build the pool folder at `data_dir`."""
    definition = load_definition(definition_path)
    data_dir, cache_dir = Path(data_dir), Path(cache_dir)
    if data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / POOL_MARKER).is_file():
        raise BenchError(f"{data_dir}: exists and is not a subject pool (no {POOL_MARKER}); refusing to replace it")
    lock = read_lock(definition.lock_path)
    urls = definition.urls()
    verified: dict[str, str] = {}
    downloaded = 0
    for number, url in enumerate(urls, 1):
        target = cache_path(cache_dir, url)
        expected = _expected(definition, url, lock)
        if not target.is_file():
            progress(f"pool fetch: [{number}/{len(urls)}] downloading {url}")
            missing = sum(not cache_path(cache_dir, u).is_file() for u in urls)
            _download(url, target, timeout, definition.name, cache_dir, missing)
            downloaded += 1
        verified[url] = _verify(definition, url, target, expected)
    _write_lock(definition, verified)
    _build(definition, {url: cache_path(cache_dir, url) for url in urls}, data_dir, size)
    return FetchReport(subjects=len(load_pool(data_dir)), downloaded=downloaded, cached=len(urls) - downloaded,
                       data_dir=data_dir, lock_path=definition.lock_path)


def _expected(definition: PoolDefinition, url: str, lock: dict[str, str]) -> str:
    """The definition's hash when it has one (it is reviewed in git), else the one the lock recorded."""
    declared = next((e.sha256 for e in definition.entries if e.url == url and e.sha256), "")
    return declared or lock.get(url, "")


def _download(url: str, target: Path, timeout: float, name: str, cache_dir: Path, missing: int) -> None:
    """Fetch `url` into `target.part`, continuing a partial one with Range; rename to `target` when complete."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = response.status == 206
            if resumed and _range_start(response) != offset:
                part.unlink()
                raise BenchError(f"{url}: the server answered a resume from byte {offset} with "
                                 f"{response.headers.get('Content-Range')!r}; {part} was deleted, rerun to start over")
            announced = int(response.headers.get("Content-Length") or -1)
            received = 0
            with open(part, "ab" if resumed else "wb") as handle:  # a 200 answer is the whole file again
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    handle.write(chunk)
                    received += len(chunk)
            if received < announced:  # read(n) returns b"" on a hang-up instead of raising
                raise http.client.IncompleteRead(b"", announced - received)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left after the offset: the .part is the whole file
            part.replace(target)
            return
        raise BenchError(f"{url}: HTTP {error.code} {error.reason}; check the URL in the pool definition") from error
    except urllib.error.URLError as error:
        raise BenchError(
            f"{url}: cannot connect ({error.reason}). There is no network connection to {urlsplit(url).hostname} "
            f"from here. {missing} file(s) are not in the download cache {cache_dir}. On a machine with network run "
            f"`collapsebench pool fetch {name} --cache DIR`, copy DIR here and pass `--cache DIR` (or copy its "
            f"contents into {cache_dir}); this file belongs at {target}") from error
    except (http.client.HTTPException, OSError) as error:
        kept = part.stat().st_size if part.is_file() else 0
        raise BenchError(f"{url}: download interrupted after {kept} bytes ({error or type(error).__name__}); "
                         f"{part} is kept and rerunning the same command resumes it") from error
    part.replace(target)


def _range_start(response: http.client.HTTPResponse) -> int:
    """First byte of a 206 answer (`Content-Range: bytes START-END/TOTAL`); -1 when unreadable."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else -1


def _verify(definition: PoolDefinition, url: str, target: Path, expected: str) -> str:
    """Hash the downloaded file; a mismatch deletes it (its bytes are never used) and names everything involved."""
    actual = sha256_file(target)
    if expected and actual != expected:
        target.unlink()
        source = "the pool definition" if any(e.sha256 for e in definition.entries if e.url == url) \
            else definition.lock_path
        raise BenchError(f"sha256 mismatch for {definition.users(url)}: {url} has sha256 {actual}, "
                         f"expected {expected} (from {source}); the file was deleted and nothing was built")
    return actual


def _write_lock(definition: PoolDefinition, verified: dict[str, str]) -> None:
    """Record every verified hash (rewritten only when it changes, so a clean checkout stays clean)."""
    document = {"pool": definition.name, "definition": definition.path.name,
                "files": {url: {"sha256": sha} for url, sha in verified.items()}}
    current = definition.lock_path.read_text(encoding="utf-8") if definition.lock_path.is_file() else ""
    if current != json.dumps(document, indent=2, sort_keys=True) + "\n":
        atomic_write_json(definition.lock_path, document)


def _build(definition: PoolDefinition, files: dict[str, Path], data_dir: Path, size: int) -> None:
    """Write subjects.yaml + square references into a staging folder, then swap it in for `data_dir`."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_folder(data_dir.parent, f".{data_dir.name}.new-")
    try:
        rows = []
        for entry in definition.entries:
            try:
                with Image.open(io.BytesIO(_reference_bytes(entry, files[entry.url]))) as image:
                    reference = square_crop(image.convert("RGB"), size)
            except OSError as error:
                raise BenchError(f"{entry.url}: cannot decode the image of {entry.id} ({error})") from error
            atomic_write_png(staging / "subjects" / f"{entry.id}.png", reference)
            rows.append({"id": entry.id, "phrase": entry.phrase, "kind": entry.kind,
                         "image": f"subjects/{entry.id}.png",
                         "source": entry.url + (f" member {entry.member}" if entry.member else ""),
                         "license": entry.license})
        header = (f"# Subject pool built by `collapsebench pool fetch {definition.name}` from "
                  f"pools/{definition.path.name}; do not edit (change the definition and fetch again).\n")
        atomic_write_text(staging / POOL_MARKER,
                          header + yaml.safe_dump({"subjects": rows}, sort_keys=False, allow_unicode=True))
        replace_folder(staging, data_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _reference_bytes(entry: PoolEntry, path: Path) -> bytes:
    if not entry.member:
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if entry.member not in names:
                near = [n for n in names if n.rsplit("/", 1)[-1] == entry.member.rsplit("/", 1)[-1]][:5]
                raise BenchError(f"{entry.url}: archive has no member {entry.member} for {entry.id}"
                                 + (f" (same file name: {', '.join(near)})" if near else ""))
            return archive.read(entry.member)
    except zipfile.BadZipFile as error:
        raise BenchError(f"{path}: not a zip archive ({error}), but {entry.id} names a member in it") from error


