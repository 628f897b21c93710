"""One streamed HTTP request for RemoteEngine, read in its own thread.

The generation thread reads lines from a queue, polling the cancel flag every POLL_S, so a
cancel returns at once in every phase (connecting, waiting for the first byte while the server
evaluates the prompt, streaming); `stop()` shuts the socket down so the server notices too.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Iterator

import httpx

POLL_S = 0.02  # how often a waiting generation looks at the cancel flag


class Cancelled(Exception):
    pass


class HTTPStatus(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class Exchange:
    """One streamed request, read in its own thread; lines come over a queue."""

    def __init__(self, client: httpx.Client, url: str, body: dict) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._stopped = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, args=(client, url, body), name="remote-engine-stream", daemon=True)
        self._thread.start()

    def _run(self, client: httpx.Client, url: str, body: dict) -> None:
        put = self._queue.put
        try:
            with client.stream("POST", url, json=body) as resp:
                stream = resp.extensions.get("network_stream")
                self._sock = stream.get_extra_info("socket") if stream is not None else None
                if self._stopped.is_set():
                    return self._shutdown()
                if resp.status_code >= 400:
                    body = resp.read()
                    self._sock = None
                    put(("status", resp.status_code, body))
                    return
                for line in resp.iter_lines():
                    if self._stopped.is_set():
                        return
                    put(("line", line))
                self._sock = None  # read to the end: the connection goes back to the pool intact
            put(("end",))
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            put(("exc", exc))

    def lines(self, cancelled: threading.Event) -> Iterator[str]:
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if cancelled.is_set() or self._stopped.is_set():
                    raise Cancelled() from None
                continue
            if cancelled.is_set():
                raise Cancelled()
            kind = item[0]
            if kind == "line":
                yield item[1]
            elif kind == "end":
                return
            elif kind == "status":
                raise HTTPStatus(item[1], item[2])
            else:
                raise item[1]

    def stop(self) -> None:
        """Stop reading and shut the socket, so the server sees the client go (any thread)."""
        if not self._stopped.is_set():
            self._stopped.set()
            self._shutdown()

    def _shutdown(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
