"""`qwen-tui` without a model: the first-run offer, local names for --model, the newest model."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time

from hub_helpers import REPO, cli_env, make_hub, run_cli, sha256

from qwen_tui.models.first_run import choose_model


def test_headless_without_a_model_names_the_recommended_pull_and_the_fallbacks(tmp_path):
    result = run_cli(cli_env(tmp_path), "-p", "hi")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qwen-tui: error: no model given: `qwen-tui models pull qwen3.5:")
    assert "`qwen-tui --demo`" in lines[0] and "`--model PATH`" in lines[0]


def test_model_names_resolve_through_the_registry(tiny_qwen35_path, tmp_path):
    env = cli_env(tmp_path)
    mine = tmp_path / "mine.gguf"
    shutil.copy(tiny_qwen35_path, mine)
    assert run_cli(env, "models", "add", str(mine), "--name", "tiny").returncode == 0
    result = run_cli(env, "--model", "tiny", "-p", "hi", "--json", "--max-tokens", "1", "--no-save")
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout.splitlines()[0])
    assert first["type"] == "model" and first["path"] == str(mine) and first["architecture"] == "qwen35"

    # with no --model at all, the newest local model is used, and that is said
    result = run_cli(env, "-p", "hi", "--json", "--max-tokens", "1", "--no-save")
    assert result.returncode == 0, result.stderr
    assert f"using tiny ({mine})" in result.stderr

    missing = run_cli(env, "--model", "qwen3.5:4b", "-p", "hi")
    assert missing.returncode == 2
    assert "qwen3.5:4b is not downloaded yet: qwen-tui models pull qwen3.5:4b" in missing.stderr


def test_first_run_offer_pulls_the_recommendation(tiny_qwen35_path, tmp_path, monkeypatch):
    """Accepting the offer pulls the recommended preset (here served by the fake Hub)."""
    from qwen_tui.models import fit

    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(fit, "detect", lambda: fit.Hardware(2 * 1024**3, 2 * 1024**3, 2))  # a Pi: 0.8B
    said, asked = [], []
    hub = make_hub(tiny_qwen35_path)
    hub.add(REPO, "Qwen3.5-0.8B-Q6_K.gguf", tiny_qwen35_path)
    with hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        path = choose_model(said.append, interactive=True, ask=lambda q: asked.append(q) or "")
    assert asked == ["Download qwen3.5:0.8b:Q6_K from the Hugging Face Hub now? [Y/n] "]
    assert said[0].startswith("No model yet. For this machine qwen-tui recommends Qwen 3.5 0.8B Q6_K")
    pulled = tmp_path / "data" / "models" / REPO / "Qwen3.5-0.8B-Q6_K.gguf"
    assert path == str(pulled) and sha256(pulled) == sha256(tiny_qwen35_path)
    assert said[-1] == f"Ready: qwen3.5:0.8b-q6_k ({pulled})"


def _run_on_a_terminal(env, answer: bytes, timeout: float = 60) -> tuple[int, str]:
    """`qwen-tui` with stdin and stdout on a real pty, answering the offer's question."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "qwen_tui"], env=env, stdin=slave, stdout=slave, stderr=slave,
                            close_fds=True)
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not answered and b"[Y/n]" in out:
            os.write(master, answer)
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=10)
    os.close(master)
    return proc.returncode, out.decode(errors="replace")


def test_first_run_on_a_terminal_offline_points_to_demo_and_model_path(tmp_path):
    env = cli_env(tmp_path, endpoint="http://127.0.0.1:9")
    code, out = _run_on_a_terminal(env, b"y\r")
    assert code == 2, out
    assert "No model yet. For this machine qwen-tui recommends Qwen 3.5" in out
    assert "cannot reach http://127.0.0.1:9" in out and "--demo" in out and "--model PATH" in out


def test_first_run_declined(tmp_path):
    code, out = _run_on_a_terminal(cli_env(tmp_path), b"n\r")
    assert code == 2, out
    assert "no model chosen: `qwen-tui models pull qwen3.5:" in out and "--demo" in out
