"""A tiny Hugging Face hub on 127.0.0.1, for testing downloads without the network.

It answers the requests huggingface_hub makes for `model_info` and `snapshot_download`, the way the real hub
does (huggingface_hub/hf_api.py, file_download.py):

- GET  /api/models/<repo>/revision/<rev>[?blobs=True]  -> {"id", "sha", "siblings": [{"rfilename", "size", ...}]}
- GET  /api/models/<repo>/tree/<rev>?recursive=True    -> [{"type": "file", "path", "size", "oid"}]
- HEAD /<repo>/resolve/<rev>/<file>                     -> X-Repo-Commit, ETag (the blob's name), Content-Length
- GET  /<repo>/resolve/<rev>/<file>, with `Range: bytes=N-` -> 206 and the rest of the file

Errors carry the `X-Error-Code` header the hub library turns into its exceptions (GatedRepo, RepoNotFound,
RevisionNotFound). Hooks make it misbehave: `drop_once` cuts a file's transfer once after some bytes,
`stall` sends some bytes and then waits until `release` is set (a process to kill mid-file).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self) -> None:
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> path -> content
        self.branches: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.gated: set[str] = set()
        self.drop_once: dict[str, int] = {}  # file path -> bytes sent before the connection is cut, once
        self.stall: dict[str, int] = {}  # file path -> bytes sent before waiting for `release`
        self.stalled = threading.Event()  # set when a stalled transfer has sent its bytes
        self.release = threading.Event()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.url = ""

    def add(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        """A commit of `files` on `branch` of `repo`; returns its id."""
        commit = hashlib.sha1(repo.encode() + json.dumps(sorted((k, v.hex()) for k, v in files.items())).encode()
                              ).hexdigest()
        self.commits.setdefault(repo, {})[commit] = files
        self.branches.setdefault(repo, {})[branch] = commit
        return commit

    def resolve(self, repo: str, revision: str) -> str | None:
        return revision if revision in self.commits.get(repo, {}) else self.branches.get(repo, {}).get(revision)

    @contextmanager
    def serve(self) -> Iterator[FakeHub]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            self.release.set()
            server.shutdown()
            server.server_close()


def closed_port_url() -> str:
    """The URL of a port nothing listens on: a hub that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_HEAD(self) -> None:
            self._route(body=False)

        def do_GET(self) -> None:
            self._route(body=True)

        def _route(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo, kind, revision = "/".join(parts[2:4]), parts[4], parts[5]
                if self._found(repo, revision):
                    self._api(repo, kind, hub.resolve(repo, revision) or "")
            elif len(parts) >= 5 and parts[2] == "resolve":
                repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if self._found(repo, revision):
                    self._file(hub.resolve(repo, revision) or "", repo, name, body)
            else:
                self._error(404, "EntryNotFound")

        def _found(self, repo: str, revision: str) -> bool:
            if repo in hub.gated:
                self._error(403, "GatedRepo", f"Access to model {repo} is restricted. You must have access to it "
                                              "and be authenticated to access it. Please log in.")
            elif repo not in hub.commits:
                self._error(401, "RepoNotFound")
            elif hub.resolve(repo, revision) is None:
                self._error(404, "RevisionNotFound")
            else:
                return True
            return False

        def _api(self, repo: str, kind: str, commit: str) -> None:
            files = hub.commits[repo][commit]
            if kind == "revision":
                data: object = {"id": repo, "sha": commit, "siblings": [
                    {"rfilename": name, "size": len(content), "blobId": _git_oid(content)}
                    for name, content in files.items()]}
            else:
                data = [{"type": "file", "path": name, "size": len(content), "oid": _git_oid(content)}
                        for name, content in files.items()]
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _file(self, commit: str, repo: str, name: str, body: bool) -> None:
            content = hub.commits[repo][commit].get(name)
            if content is None:
                self._error(404, "EntryNotFound", headers={"X-Repo-Commit": commit})
                return
            headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                       "Accept-Ranges": "bytes"}
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            part = content[start:]
            if not body:
                self._send(206 if start else 200, b"", headers, length=len(part))
                return
            cut = hub.drop_once.pop(name, None) if not start else None
            stall = hub.stall.get(name) if not start else None
            if cut is None and stall is None:
                self._send(206 if start else 200, part, headers)
                return
            self._send(200, part[:cut or stall], headers, length=len(part))
            if stall is not None:
                hub.stalled.set()
                hub.release.wait(30)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # the rest never comes: a dropped transfer

        def _error(self, status: int, code: str, message: str = "", headers: dict[str, str] | None = None) -> None:
            payload = json.dumps({"error": message or code}).encode()
            self._send(status, payload, {"X-Error-Code": code, "X-Error-Message": message or code,
                                         "Content-Type": "application/json", **(headers or {})})

        def _send(self, status: int, payload: bytes, headers: dict[str, str], length: int | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload) if length is None else length))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

    return Handler


def _git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
