"""kill -9 a real `qwen-tui` while it streams: every session reopens, none is blank, and at most
the last second of text is lost. (More kills: benchmarks/kill_soak.py.)"""

from __future__ import annotations

import os
import random

import pytest

from qwen_tui.store import SessionStore
from qwen_tui.testing.crash import stream_and_kill, worker_gone

KILLS = int(os.environ.get("QWEN_TUI_TEST_KILLS", "50"))


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
