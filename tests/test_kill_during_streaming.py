"""kill -9 a real `qwen-tui` while it streams: every session reopens, none is blank, and at most
the last second of text is lost. (More kills: benchmarks/kill_soak.py.)"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from qwen_tui.store import SessionStore

KILLS = int(os.environ.get("QWEN_TUI_TEST_KILLS", "50"))


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


@pytest.mark.timeout(900)
def test_sigkill_while_streaming_loses_at_most_the_last_second(demo_model_path, tmp_path):
    rng = random.Random(20261127)
    home = tmp_path / "home"
    for n in range(KILLS):
        received, killed_at, pid = stream_and_kill(demo_model_path, home, rng)
        assert worker_gone(pid), f"kill {n}: the llama.cpp worker outlived the app"
        store = SessionStore(home / "data" / "sessions.sqlite3")
        try:
            assert store.problem is None, store.problem
            sessions = store.list_sessions(limit=1000)
            assert len(sessions) == n + 1, f"kill {n}: a session is missing"
            record = store.load(sessions[0].id)
        finally:
            store.close()
        answer = [m for m in record.messages if m.role == "assistant"][-1]
        streamed = "".join(text for _, text in received)
        safe = "".join(text for at, text in received if at <= killed_at - 1.0)
        assert answer.content.strip(), f"kill {n}: the stored answer is blank"
        assert streamed.startswith(answer.content), f"kill {n}: stored text is not what was streamed"
        assert answer.content.startswith(safe), (
            f"kill {n}: lost more than the last second ({len(safe) - len(answer.content)} chars missing)"
        )
