"""Reading folders that an untrusted party wrote: a model container's output, an artifact, a pull request's files.

A container that has its output folder mounted writable can plant anything there: a symlink to a host file
(`provenance.json -> /etc/passwd`), a hard link, a FIFO that blocks the reader, a device. Copying such a folder
with `cp`, `dvc add` or `open()` follows the link and publishes the host's file. So everything that leaves such a
folder goes through this module, which takes regular files only:

- every entry is looked at with `lstat` semantics (`follow_symlinks=False`, `O_NOFOLLOW`), never through a link;
- a symlink, a hard link (more than one name for the inode), a device, FIFO or socket is an `UntrustedTreeError`
  naming its path, and nothing is copied (the whole tree is checked before the first byte is written);
- each file is opened with `O_NOFOLLOW` relative to its checked folder's descriptor and checked again on the open
  descriptor (same inode, still a regular file with one link), so a swap between the check and the read is caught;
- folders on the way down from a trusted root are checked the same way (`real_dir`), so a planted
  `shards/0-of-4 -> /host/dir` is refused before anything is created, chowned or mounted under it.

`collapsebench untrusted check|copy` exposes this to the workflow scripts (scripts/stage_*.sh, collect_shards.sh,
commit_results.sh).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_bytes

MAX_FILE_BYTES = 256 * 1024 * 1024  # no image, manifest or table comes near this; a bigger file is an attack
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class UntrustedTreeError(BenchError):
    """An entry of an untrusted folder that is not a plain folder or a plain, singly linked regular file."""


@dataclass(frozen=True)
class Entry:
    relative: str  # posix path under the checked root
    size: int
    inode: tuple[int, int]  # (st_dev, st_ino) at check time


def _what(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: Path, why: str) -> UntrustedTreeError:
    return UntrustedTreeError(f"{path}: {why}; only regular files are taken from an untrusted folder, nothing "
                              "was copied or published")


def real_dir(path: Path, root: Path, create: bool = False) -> Path:
    """`path` (under the trusted `root`) checked to be a real folder at every level below `root`, never a link.

    With `create`, missing levels are made (mkdir never follows a link it creates). Returns `path`.
    """
    path, root = Path(path), Path(root)
    try:
        parts = path.relative_to(root).parts
    except ValueError as error:
        raise BenchError(f"{path}: not under {root}") from error
    current = root
    for part in parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not create:
                raise BenchError(f"{current}: does not exist") from None
            current.mkdir()
            continue
        if stat.S_ISLNK(info.st_mode):
            raise _refuse(current, "is a symlink where a folder belongs")
        if not stat.S_ISDIR(info.st_mode):
            raise _refuse(current, f"is {_what(info.st_mode)} where a folder belongs")
    return path


def check_tree(root: Path, only: Iterable[str] | None = None) -> list[Entry]:
    """Every regular file under `root` (or under its top-level entries named in `only`), each checked as the
    module docstring says; raises on the first entry that is not a plain folder or file."""
    root = Path(root)
    try:
        top = os.open(root, _OPEN_DIR)
    except OSError as error:
        raise _refuse(root, f"cannot be opened as a real folder ({error.strerror})") from error
    try:
        wanted = None if only is None else set(only)
        return list(_walk(top, root, "", wanted))
    finally:
        os.close(top)


def _walk(dir_fd: int, root: Path, prefix: str, wanted: set[str] | None) -> Iterator[Entry]:
    for name in sorted(os.listdir(dir_fd)):
        if wanted is not None and not prefix and name not in wanted:
            continue
        relative = f"{prefix}{name}"
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            child = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
            try:
                yield from _walk(child, root, f"{relative}/", None)
            finally:
                os.close(child)
        elif not stat.S_ISREG(info.st_mode):
            raise _refuse(root / relative, f"is {_what(info.st_mode)}")
        elif info.st_nlink != 1:
            raise _refuse(root / relative, f"is a hard link ({info.st_nlink} names for one file)")
        elif info.st_size > MAX_FILE_BYTES:
            raise _refuse(root / relative, f"is {info.st_size} bytes, over the {MAX_FILE_BYTES} byte limit")
        else:
            yield Entry(relative, info.st_size, (info.st_dev, info.st_ino))


def read_checked(root: Path, entry: Entry) -> bytes:
    """The bytes of a checked entry, opened without following a link at any level and re-checked on the open
    file (same inode, regular, one link), so nothing swapped in after `check_tree` is read."""
    root = Path(root)
    *folders, name = entry.relative.split("/")
    fds = [os.open(root, _OPEN_DIR)]
    try:
        for folder in folders:
            fds.append(os.open(folder, _OPEN_DIR, dir_fd=fds[-1]))
        try:
            fd = os.open(name, _OPEN_FILE, dir_fd=fds[-1])
        except OSError as error:
            raise _refuse(root / entry.relative, f"cannot be opened without following a link ({error.strerror})") \
                from error
        try:
            info = os.fstat(fd)
            if ((info.st_dev, info.st_ino) != entry.inode or not stat.S_ISREG(info.st_mode)
                    or info.st_nlink != 1):
                raise _refuse(root / entry.relative, "changed between its check and its read")
            chunks, left = [], MAX_FILE_BYTES + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
            if left <= 0:
                raise _refuse(root / entry.relative, f"grew over the {MAX_FILE_BYTES} byte limit while read")
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        for fd in reversed(fds):
            os.close(fd)


def read_file(root: Path, relative: str) -> bytes:
    """One file of an untrusted folder, read as `check_tree` + `read_checked` would."""
    entries = {entry.relative: entry for entry in check_tree(root, [relative.split("/")[0]])}
    if relative not in entries:
        raise BenchError(f"{Path(root) / relative}: missing")
    return read_checked(root, entries[relative])


def copy_tree(source: Path, target: Path, only: Iterable[str] | None = None) -> list[str]:
    """Copy the regular files of `source` (or of its top-level entries in `only`) to `target`, each written
    atomically; the whole tree is checked first, so a refused tree copies nothing. Returns the relative paths."""
    entries = check_tree(source, only)
    for entry in entries:
        atomic_write_bytes(Path(target) / entry.relative, read_checked(source, entry))
    return [entry.relative for entry in entries]
