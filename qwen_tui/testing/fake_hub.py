"""A Hugging Face Hub stand-in on 127.0.0.1 for `models pull` tests (point HF_ENDPOINT at it).

It answers what huggingface_hub 2.x asks when it lists and downloads a model's files:

- `GET /api/models/{repo}[/revision/{rev}]?blobs=true`: `id`, `sha`, `siblings` with LFS size/sha256;
- `HEAD|GET /{repo}/resolve/{rev}/{file}`: `X-Repo-Commit`, `ETag`, `X-Linked-Etag` (the sha256),
  `X-Linked-Size`, `Content-Length`, `Accept-Ranges`; a GET honours `Range: bytes=N-` (206);
- 404s carry `X-Error-Code: RepoNotFound` / `EntryNotFound` as the Hub's do.

Faults for tests: `corrupt` (serve wrong bytes under the right checksum), `drop_after` (close the
connection after N bytes of the first GET of a file), `pause_after` (stop after N bytes until an
event is set, so that a test can kill the client mid-transfer). Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 256 * 1024


@dataclass
class HubFile:
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    drop_after: dict[str, int] = field(default_factory=dict)
    pause_after: dict[str, tuple[int, threading.Event]] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def add(self, repo: str, filename: str, data: bytes | Path) -> None:
        self.repos.setdefault(repo, {})[filename] = HubFile(data.read_bytes() if isinstance(data, Path) else data)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, filename: str) -> list[Request]:
        return [r for r in self.log if r.method == "GET" and r.path.endswith("/" + filename)]

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True).start()
        return self

    def stop(self) -> None:
        for _, event in self.pause_after.values():
            event.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _not_found(self, code: str) -> None:
        body = json.dumps({"error": f"{code}"}).encode()
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.log.append(Request(self.command, path, self.headers.get("Range")))
        if m := _API.match(path):
            return self._api(m.group("repo"))
        if m := _RESOLVE.match(path):
            return self._resolve(m.group("repo"), m.group("file"))
        self._not_found("RepoNotFound")

    def _api(self, repo: str) -> None:
        files = self.hub.repos.get(repo)
        if files is None:
            return self._not_found("RepoNotFound")
        siblings = [{"rfilename": name, "size": len(f.data), "blobId": hashlib.sha1(f.data).hexdigest(),
                     "lfs": {"size": len(f.data), "sha256": f.sha256, "pointerSize": 134}}
                    for name, f in files.items()]
        body = json.dumps({"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _resolve(self, repo: str, filename: str) -> None:
        files = self.hub.repos.get(repo)
        if files is None:
            return self._not_found("RepoNotFound")
        hub_file = files.get(filename)
        if hub_file is None:
            return self._not_found("EntryNotFound")
        data = hub_file.data
        if filename in self.hub.corrupt:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start = 0
        rng = self.headers.get("Range")
        if rng and (m := re.match(r"bytes=(\d+)-$", rng)):
            start = int(m.group(1))
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hub_file.sha256}"')
        self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        first = len(self.hub.gets(filename)) == 1
        drop = self.hub.drop_after.get(filename) if first else None
        pause = self.hub.pause_after.get(filename) if first else None
        sent = 0
        try:
            while sent < len(body):
                limit = len(body)
                if drop is not None:
                    limit = min(limit, drop)
                if pause is not None:
                    limit = min(limit, pause[0])
                if sent >= limit:
                    if pause is not None:
                        pause[1].wait(60)
                    self.close_connection = True
                    return
                n = min(CHUNK, limit - sent)
                self.wfile.write(body[sent:sent + n])
                sent += n
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
