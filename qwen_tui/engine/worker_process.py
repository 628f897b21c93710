"""The engine's worker process as the app sees it: start it, exchange messages, say why it died.

LocalEngine (engine/local.py) owns one. The worker (`python -m qwen_tui.engine.worker`) gets a
socketpair end (a `multiprocessing.connection.Connection`) and the one-byte cancel mapping;
its stdout and stderr go to llama.cpp's log, where a crash's reason (an assert, an error) is
read back from. This module does not import llama_cpp: it runs in the app process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path

from qwen_tui.engine.errors import EngineCrashed, EngineError, ModelLoadError
from qwen_tui.engine.params import LoadParams

LOAD_TIMEOUT_S = 600.0


def signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerProcess:
    """One worker process at a time: (re)started with `start`, gone after `stop` or a crash."""

    def __init__(self, log_path: Path, cancel_fd: int) -> None:
        self.log_path = log_path
        self._cancel_fd = cancel_fd
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.log_offset = 0  # where llama.cpp's log stood when the current request began

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.conn is not None

    def start(self, params: LoadParams, progress=None) -> dict:
        """Stop any running worker, start a fresh one and load the model: the model's description."""
        self.stop()
        parent_sock, child_sock = socket.socketpair()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.mark_log()
        cancel_fd = self._cancel_fd
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qwen_tui.engine.worker", "--conn-fd", str(child_sock.fileno()),
                 "--cancel-fd", str(cancel_fd)],
                pass_fds=(child_sock.fileno(), cancel_fd),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.conn.send(params)
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while True:
            msg = self.recv(deadline)
            if msg is None:
                raise self.crash_error("while loading the model")
            if msg[0] == "progress":
                if progress is not None:
                    progress(msg[1])
            elif msg[0] == "ready":
                return msg[1]
            elif msg[0] == "load_error":
                reason = self.log_reason() or msg[2]
                self.stop()
                raise ModelLoadError(f"{Path(params.path).name}: {reason}")

    def send(self, msg) -> None:
        assert self.conn is not None
        self.conn.send(msg)

    def recv(self, deadline: float | None = None):
        """Next message from the worker, or None if it died (its end of the socket closed)."""
        assert self.conn is not None
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not wait([self.conn], timeout):
            self.stop()
            raise EngineError("llama.cpp did not answer in time; the engine was stopped")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def mark_log(self) -> None:
        """What llama.cpp logs from now on is what a crash's reason is looked for in."""
        self.log_offset = self._log_size()

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_reason(self) -> str:
        """The most telling line llama.cpp logged since the mark (an assert, an error)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.log_offset)
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for marker in ("GGML_ASSERT", "GGML_ABORT", "error loading model:", "unknown model architecture", "error:"):
            for line in reversed(lines):
                if marker in line:
                    text = line.strip().split("error loading model: ", 1)[-1]
                    return re.sub(r"\S*/([^/\s]+\.(?:c|cc|cpp|h)):", r"\1:", text)  # drop build paths
        return ""

    def crash_error(self, when: str) -> EngineCrashed:
        """The worker died: reap it and say how (signal, llama.cpp's last telling log line)."""
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        sig = signal_name(code)
        reason = self.log_reason()
        self.conn = None
        msg = f"llama.cpp crashed ({sig}) {when}" + (f": {reason}" if reason else "")
        return EngineCrashed(msg, signal_name=sig, log_tail=reason)

    def stop(self) -> None:
        """Ask the worker to shut down (it frees the model), kill it if it does not."""
        proc, conn = self.proc, self.conn
        self.proc = self.conn = None
        if conn is not None:
            try:
                conn.send(("shutdown",))
                if conn.poll(2):
                    conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
            conn.close()
        if proc is not None:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
