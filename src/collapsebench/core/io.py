"""Crash-safe file writing.

Every file a stage produces is written to a temporary sibling and renamed into
place, so a killed run leaves either the old file or the new one, never a
truncated one. Append-only JSON-lines files (the manifest, refusals, the run log) go through
`append_line`, which fsyncs each line and first cuts a torn tail left by a crash mid-append.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, published_mode())  # mkstemp makes 0600; results and the site are read by others
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cut_torn_tail(path: Path) -> bool:
    """Cut a last line with no newline (a crash mid-append), so the next append starts on a fresh line."""
    path = Path(path)
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    atomic_write_text(path, data[: data.rfind(b"\n") + 1].decode("utf-8", "replace"))
    return True


def append_line(path: Path, line: str) -> bool:
    """Append one newline-terminated line and fsync it, cutting a torn tail first; whether one was cut."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cut = cut_torn_tail(path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    return cut


def published_mode(folder: bool = False) -> int:
    """The mode a plain `open()` (or `mkdir`) would give under this process's umask: 0644 / 0755 typically."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def make_temp_folder(parent: Path, prefix: str) -> Path:
    """`tempfile.mkdtemp` with the permissions of a normal folder (mkdtemp makes 0700)."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    folder.chmod(published_mode(folder=True))
    return folder


def replace_folder(staging: Path, target: Path) -> None:
    """Put a finished `staging` folder at `target`, replacing what is there with two renames (no moment
    without a complete folder at `target` but the instant between them). Callers check first that an existing
    `target` is theirs to replace."""
    if target.exists():
        old = make_temp_folder(target.parent, f".{target.name}.old-")
        target.rename(old / target.name)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_png(path: Path, image: Image.Image) -> bytes:
    """Encode `image` as PNG, write it atomically and return the encoded bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return data


def atomic_write_csv(path: Path, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in fieldnames})
    atomic_write_text(path, buffer.getvalue())


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def _csv_value(value: Any) -> Any:
    """Floats at 6 decimals; text that a spreadsheet would run as a formula (a display name from a pull request,
    `=HYPERLINK(...)`) escaped with a leading apostrophe, the OWASP rule. Numbers, even negative ones, stay
    numbers: only text that does not parse as a number is escaped. Escaping here, where the tables are written,
    keeps the site's downloads byte-for-byte copies of results/."""
    if isinstance(value, float):
        return f"{value:.6f}"
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
