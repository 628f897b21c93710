"""The real `qwen-tui` with the real demo model in a real terminal (tmux): type, watch the answer
stream, stop it with Esc, quit, and find the terminal restored."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-t", session, "-p")


def wait_for(session: str, predicate, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = screen(session)
        if predicate(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"timed out; screen was:\n{screen(session)}")


@pytest.fixture
def session(demo_model_path, isolated_home):
    name = f"qwen-tui-test-{uuid.uuid4().hex[:8]}"
    command = (
        f"QWEN_TUI_HOME={isolated_home} {sys.executable} -m qwen_tui --model {demo_model_path} --no-think "
        f"--max-tokens 1500; echo QWEN_TUI_EXITED=$?"
    )
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", "bash", "--norc", "-c",
                    command + "; sleep 60"], check=True, env=env, timeout=10)
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=10)


def test_type_stream_stop_and_quit(session):
    wait_for(session, lambda s: "idle" in s and "ctx 0 /" in s)  # loaded in the background
    tmux("send-keys", "-t", session, "-l", "Tell me a long story about a dragon who loves tea.")
    tmux("send-keys", "-t", session, "Enter")
    streaming = wait_for(session, lambda s: "answering" in s)
    assert "Tell me a long story about a dragon who loves tea." in streaming
    # the answer grows while it streams
    first = wait_for(session, lambda s: "answering" in s and len(s.split("assistant", 1)[-1].strip()) > 40)
    time.sleep(0.5)
    tmux("send-keys", "-t", session, "Escape")
    stopped = wait_for(session, lambda s: "[stopped]" in s and "idle" in s, timeout=10)
    assert "tok/s" in stopped
    assert first != stopped
    tmux("send-keys", "-t", session, "C-q")
    done = wait_for(session, lambda s: "QWEN_TUI_EXITED=0" in s, timeout=15)
    # Terminal restored: the alternate screen is gone, the app's frame is not left behind.
    assert "╭─ you" not in done and "Send" not in done


def test_a_256_colour_terminal_at_80x24_gets_256_colour_output_and_a_usable_screen(demo_model_path, isolated_home,
                                                                                   tmp_path):
    """COLORTERM unset and TERM=xterm-256color, as in many SSH sessions and older tmux setups: the
    app must not send 24-bit colour (it would show as garbage or wrong colours there)."""
    name = f"qwen-tui-256-{uuid.uuid4().hex[:8]}"
    raw = tmp_path / "output.bin"
    command = (
        f"env -u COLORTERM TERM=xterm-256color QWEN_TUI_HOME={isolated_home} {sys.executable} -m qwen_tui "
        f"--model {demo_model_path} --no-think; echo QWEN_TUI_EXITED=$?"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "bash", "--norc", "-c",
                    "sleep 0.5; " + command + "; sleep 60"], check=True, timeout=10)
    try:
        tmux("pipe-pane", "-o", "-t", name, f"cat >> {raw}")
        shown = wait_for(name, lambda s: "idle" in s and "ctx 0 /" in s)
        lines = shown.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "Send" in shown or "Quit" in shown  # the footer with the keys fits
        tmux("send-keys", "-t", name, "C-q")
        wait_for(name, lambda s: "QWEN_TUI_EXITED=0" in s, timeout=15)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=10)
    output = raw.read_bytes()
    assert b"\x1b[38;5;" in output or b";38;5;" in output  # 256-colour foregrounds
    assert b"38;2;" not in output and b"48;2;" not in output  # and no 24-bit colour at all
