"""`collapsebench pool fetch`: pinned downloads, sha256 checks, resume, lock file, offline error.

A local HTTP server (with Range support) serves a temp folder laid out like the
real source URLs: a GitHub raw file per person and one zip archive of animals,
as in pools/xversebench.yaml.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from PIL import Image

from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.pool_fetch import load_definition
from collapsebench.cli import main

REPO = Path(__file__).resolve().parents[1]
COMMIT = "65e2581aac0faffe4607881a10cc486186f6499d"
ZIP_COMMIT = "459b06499fad3dac842c4b1f7a053fb3328d91c7"
PERSON = f"bytedance/XVerse/{COMMIT}/assets/XVerseBench/human/00_boy.jpg"
PERSON_SPACE = f"bytedance/XVerse/{COMMIT}/assets/XVerseBench/human/04_little girl.jpg"
ARCHIVE = f"datasets/yuangpeng/dreambench_plus/resolve/{ZIP_COMMIT}/data.zip"


@dataclass
class Server:
    root: Path
    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header)
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before hanging up (once)


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(self.path.lstrip("/"))
            server.requests.append((path, self.headers.get("Range", "")))
            file = server.root / path
            if not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            start = int(self.headers["Range"][len("bytes="):].rstrip("-")) if self.headers.get("Range") else 0
            if start >= len(data) and start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if path in server.drop_after:
                body = body[:server.drop_after.pop(path)]  # hang up mid-file, as a flaky network does
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "upstream"
    state = Server(root=root, url="")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (60, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def publish(root: Path, path: str, data: bytes) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def upstream(server: Server) -> dict[str, str]:
    """Two persons (plain files) and two animals (members of one zip, padded so it is worth resuming)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("data/images/live_subject/animal/00.jpg", jpeg((200, 150, 90)))
        bundle.writestr("data/images/live_subject/animal/21.jpg", jpeg((90, 90, 200), (40, 70)))
        bundle.writestr("data/padding.bin", bytes(range(256)) * 256)
    return {PERSON: publish(server.root, PERSON, jpeg((250, 10, 10))),
            PERSON_SPACE: publish(server.root, PERSON_SPACE, jpeg((10, 250, 10), (50, 80))),
            ARCHIVE: publish(server.root, ARCHIVE, archive.getvalue())}


def definition(folder: Path, base: str, hashes: dict[str, str], archive_sha: str = "") -> Path:
    """pools/mini.yaml: persons pinned by sha256, animals pinned by URL only (their hash goes to the lock)."""
    def person(number: int, path: str, phrase: str) -> dict:
        return {"id": f"S00{number}", "key": f"person-{number}", "kind": "person", "phrase": phrase,
                "url": f"{base}/{path.replace(' ', '%20')}", "sha256": hashes[path], "license": "Apache-2.0"}

    def animal(number: int, member: str, phrase: str) -> dict:
        return {"id": f"S00{number}", "key": f"animal-{number}", "kind": "animal", "phrase": phrase,
                "url": f"{base}/{ARCHIVE}", "member": f"data/images/live_subject/animal/{member}",
                "sha256": archive_sha, "license": "Apache-2.0"}

    subjects = [person(1, PERSON, "a little boy"), person(2, PERSON_SPACE, "a laughing little girl"),
                animal(3, "00.jpg", "a kitten"), animal(4, "21.jpg", "a Siamese cat")]
    path = folder / "pools" / "mini.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"subjects": subjects}, sort_keys=False))
    return path


def fetch(tmp_path: Path) -> int:
    return main(["pool", "fetch", "mini", "--pools", str(tmp_path / "pools"), "--data", str(tmp_path / "pool"),
                 "--cache", str(tmp_path / "cache")])


def test_fetch_builds_a_pool_and_reuses_verified_files(tmp_path: Path, server: Server,
                                                       capsys: pytest.CaptureFixture) -> None:
    hashes = upstream(server)
    definition(tmp_path, server.url, hashes)
    assert fetch(tmp_path) == 0
    pool = load_pool(tmp_path / "pool")
    assert [(s.id, s.kind, s.phrase) for s in pool.values()] == [
        ("S001", "person", "a little boy"), ("S002", "person", "a laughing little girl"),
        ("S003", "animal", "a kitten"), ("S004", "animal", "a Siamese cat")]
    assert pool["S003"].source.endswith("data.zip member data/images/live_subject/animal/00.jpg")
    for subject in pool.values():
        with Image.open(subject.image) as image:
            assert image.size == (512, 512)
    with Image.open(pool["S004"].image) as image:
        assert image.getpixel((256, 256))[2] > 150  # the zip member's own pixels, not another subject's
    cached = tmp_path / "cache" / "127.0.0.1" / PERSON_SPACE  # laid out like the URL, spaces decoded
    assert cached.is_file()
    lock = json.loads((tmp_path / "pools" / "mini.lock.json").read_text())
    assert lock["files"][f"{server.url}/{ARCHIVE}"]["sha256"] == hashes[ARCHIVE]
    assert len(server.requests) == 3  # the archive is downloaded once for both animals
    assert "3 files downloaded" in capsys.readouterr().out

    assert fetch(tmp_path) == 0  # everything verified in the cache: no request at all
    assert len(server.requests) == 3
    assert "0 files downloaded, 3 from the cache" in capsys.readouterr().out


def test_sha_mismatch_is_refused_and_nothing_is_published(tmp_path: Path, server: Server,
                                                          capsys: pytest.CaptureFixture) -> None:
    hashes = upstream(server)
    hashes[PERSON_SPACE] = "0" * 64
    definition(tmp_path, server.url, hashes)
    assert fetch(tmp_path) == 2
    error = capsys.readouterr().err
    assert "sha256 mismatch for S002 (person-2)" in error
    assert f"{server.url}/{PERSON_SPACE.replace(' ', '%20')}" in error
    actual = hashlib.sha256((server.root / PERSON_SPACE).read_bytes()).hexdigest()
    assert f"has sha256 {actual}, expected {'0' * 64}" in error
    assert not (tmp_path / "pool").exists()
    assert not (tmp_path / "pools" / "mini.lock.json").exists()
    assert not (tmp_path / "cache" / "127.0.0.1" / PERSON_SPACE).exists()  # the bad bytes are gone


def test_a_dropped_connection_is_resumed_with_range(tmp_path: Path, server: Server,
                                                    capsys: pytest.CaptureFixture) -> None:
    hashes = upstream(server)
    definition(tmp_path, server.url, hashes, archive_sha=hashes[ARCHIVE])
    server.drop_after[ARCHIVE] = 10_000
    assert fetch(tmp_path) == 2
    assert "rerunning the same command resumes it" in capsys.readouterr().err
    part = tmp_path / "cache" / "127.0.0.1" / (ARCHIVE + ".part")
    assert part.stat().st_size == 10_000
    assert not (tmp_path / "pool").exists()

    assert fetch(tmp_path) == 0
    assert (ARCHIVE, "bytes=10000-") in server.requests
    assert not part.exists()
    assert len(load_pool(tmp_path / "pool")) == 4


def test_offline_fails_fast_and_says_how_to_proceed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on: the connection is refused, as with no network
        probe.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{probe.getsockname()[1]}"
    definition(tmp_path, base, {PERSON: "a" * 64, PERSON_SPACE: "b" * 64})
    started = time.monotonic()
    assert fetch(tmp_path) == 2
    assert time.monotonic() - started < 10
    error = capsys.readouterr().err
    assert f"{base}/{PERSON}: cannot connect" in error
    assert "There is no network connection" in error
    assert "3 file(s) are not in the download cache" in error
    assert "--cache DIR" in error and "copy DIR here" in error


def test_the_lock_file_is_written_once_and_then_enforced(tmp_path: Path, server: Server,
                                                         capsys: pytest.CaptureFixture) -> None:
    hashes = upstream(server)
    definition(tmp_path, server.url, hashes)
    assert fetch(tmp_path) == 0
    lock = tmp_path / "pools" / "mini.lock.json"
    written = lock.read_text()
    assert hashes[ARCHIVE] in written

    publish(server.root, ARCHIVE, b"PK not the same archive any more")  # upstream bytes change under the URL
    (tmp_path / "cache" / "127.0.0.1" / ARCHIVE).unlink()
    assert fetch(tmp_path) == 2
    error = capsys.readouterr().err
    assert "sha256 mismatch for S003 (animal-3), S004 (animal-4)" in error
    assert f"expected {hashes[ARCHIVE]} (from {lock})" in error
    assert lock.read_text() == written
    assert len(load_pool(tmp_path / "pool")) == 4  # the pool built before is left as it was


def test_definitions_are_validated(tmp_path: Path) -> None:
    path = definition(tmp_path, "https://example.org", {PERSON: "", PERSON_SPACE: ""})
    document = yaml.safe_load(path.read_text())
    document["subjects"][0]["phrase"] = "a very tall young man"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(Exception, match="S001: phrase 'a very tall young man' has more than 4 words"):
        load_definition(path)
    document["subjects"][0]["phrase"] = "a tall man"
    document["subjects"][0]["url"] = "https://example.org/bytedance/XVerse/main/00_boy.jpg"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(Exception, match="S001: url must be http.s. and pinned to a 40-hex commit"):
        load_definition(path)


def test_the_checked_in_xversebench_definition_is_valid() -> None:
    from collapsebench.benchmark.casting import MAX_PHRASE_TOKENS
    from collapsebench.core.clip_tokens import count_tokens

    pool = load_definition(REPO / "pools" / "xversebench.yaml")
    kinds = [entry.kind for entry in pool.entries]
    assert (kinds.count("person"), kinds.count("animal")) == (20, 45)
    assert [entry.id for entry in pool.entries] == [f"S{n:03d}" for n in range(1, 66)]
    assert all(entry.sha256 for entry in pool.entries)
    too_long = [e.phrase for e in pool.entries if count_tokens(e.phrase) - 2 > MAX_PHRASE_TOKENS]
    assert not too_long, f"phrases over {MAX_PHRASE_TOKENS} CLIP tokens do not fit every prompt"
