"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for RemoteEngine's error paths: real
HTTP (sockets, chunked SSE, status codes), with the behaviour a real server shows only rarely
(401, 404, 500 mid-stream, silence, slow chunks, native tool calls) on demand.

    def chat(h, body):                       # h: the request handler; body: the parsed JSON
        h.sse([{"choices": [{"delta": {"content": "hi"}}]}, "[DONE]"], gap=0.1)
    with OpenAIStub(chat=chat) as stub:      # stub.url: "http://127.0.0.1:PORT/v1"
        ...; stub.requests                   # [(method, path, headers, body)]
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk(content: str | None = None, *, reasoning: str | None = None, finish: str | None = None,
          tool_calls: list | None = None, usage: dict | None = None) -> dict:
    delta: dict = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    out: dict = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        out = {"object": "chat.completion.chunk", "choices": [], "usage": usage}
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.server.stub.connections.append(self.connection)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _dispatch(self, method: str) -> None:
        body = self._body() if method == "POST" else {}
        stub = self.server.stub
        stub.requests.append((method, self.path, dict(self.headers), body))
        route = stub.routes.get(self.path.split("?")[0])
        if route is None:
            self.json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            route(self, body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    # -- responses ---------------------------------------------------------------------------

    def json(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def event(self, item) -> None:
        """One SSE event: a dict (sent as JSON), "[DONE]", or raw text (a comment like ": ping")."""
        if isinstance(item, dict):
            text = "data: " + json.dumps(item) + "\n\n"
        elif item == "[DONE]":
            text = "data: [DONE]\n\n"
        else:
            text = item
        self._write_chunk(text.encode())

    def end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def sse(self, items, gap: float = 0.0, *, end: bool = True) -> None:
        self.start_sse()
        for item in items:
            if gap:
                time.sleep(gap)
            self.event(item)
        if end:
            self.end_sse()

    def hang(self, seconds: float = 30.0) -> None:
        """Say nothing (until the client leaves or `seconds` pass)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.server.stub.stopping.is_set():
            time.sleep(0.02)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: OpenAIStub


def models_route(ids: list[str]) -> Callable:
    return lambda h, body: h.json(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})


class OpenAIStub:
    def __init__(self, *, chat: Callable | None = None, models: list[str] | Callable | None = None,
                 routes: dict[str, Callable] | None = None) -> None:
        self.requests: list[tuple[str, str, dict, dict]] = []
        self.stopping = threading.Event()
        self.connections: list = []
        self.routes: dict[str, Callable] = {
            "/v1/models": models if callable(models) else models_route(models if models is not None else ["stub-model"]),
        }
        if chat is not None:
            self.routes["/v1/chat/completions"] = chat
        self.routes.update(routes or {})
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def chat_bodies(self) -> list[dict]:
        return [b for m, p, h, b in self.requests if p.endswith("/chat/completions")]

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for conn in self.connections:  # keep-alive connections too: the server is gone
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
