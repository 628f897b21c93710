"""Start llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on
127.0.0.1 for tests and benchmarks of RemoteEngine; a subprocess, so qwen-tui itself still
never imports llama_cpp here.

    with llama_server(model_path, n_ctx=4096) as url:   # "http://127.0.0.1:PORT/v1"
        ...
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(model: str | Path, *, n_ctx: int = 4096, threads: int = 1, thinking: bool = False,
                 api_key: str | None = None, log_path: str | Path | None = None,
                 startup_s: float = 120.0) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
           "--verbose", "false", "--logits_all", "false", "--chat_template_kwargs", json.dumps({"enable_thinking": thinking})]
    # --logits_all false: its default (true) computes the output layer for every prompt token,
    # which for Qwen 3.5's 248K vocabulary makes prompt evaluation several times slower.
    if api_key:
        cmd += ["--api_key", api_key]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode} while starting")
            try:
                # Any HTTP answer means it is up (401 too, when it has an API key).
                urllib.request.urlopen(url + "/models", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start within {startup_s:g} s") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()
