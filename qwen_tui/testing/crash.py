"""Kill a real `qwen-tui -p` with SIGKILL while it streams (for the test and the soak benchmark)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time


def stream_and_kill(model, home, rng) -> tuple[list[tuple[float, str]], float, int]:
    """Start a headless answer, SIGKILL the main process at a random moment while it streams."""
    env = {**os.environ, "QWEN_TUI_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwen_tui", "--model", str(model), "-p", "Tell me a very long story about a dragon.",
         "--json", "--max-tokens", "3000", "--temperature", "0.9", "--seed", str(rng.randrange(1 << 30))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    received: list[tuple[float, str]] = []
    first = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            event = json.loads(line)
            if event["type"] == "text":
                received.append((time.monotonic(), event["text"]))
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first.wait(60), "no text streamed"
    time.sleep(rng.uniform(0.05, 2.5))
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(5)
    return received, killed_at, proc.pid


def worker_gone(group: int, timeout: float = 10.0) -> bool:
    """The inference worker must not outlive a killed app (it notices the closed socket)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
