"""The `qwen-tui` command as a user runs it: real processes, real models, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qwen_tui", *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def test_version_and_help_import_nothing_heavy():
    code = (
        "import sys, qwen_tui.cli\n"
        "for argv in (['--version'], ['--help']):\n"
        "    try: qwen_tui.cli.main(argv)\n"
        "    except SystemExit: pass\n"
        "print('HEAVY', sorted(m for m in ('llama_cpp', 'textual', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert "qwen-tui 0.1.0" in out and "usage: qwen-tui" in out
    assert "HEAVY []" in out


def test_headless_answer_on_stdout(demo_model_path):
    proc = run("--model", str(demo_model_path), "-p", "What is the capital of France? Answer in one word.",
               "--temperature", "0", "--max-tokens", "20")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_headless_json_lines(demo_model_path):
    proc = run("--model", str(demo_model_path), "-p", "Say hello", "--json", "--max-tokens", "8", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "model" and events[0]["architecture"] == "llama" and events[0]["n_threads"] >= 1
    finished = [e for e in events if e["type"] == "finished"][-1]
    assert finished["reason"] in ("stop", "length")
    assert finished["usage"]["completion_tokens"] <= 8
    session = events[-1]
    assert session["type"] == "session" and len(session["id"]) == 12  # -p runs are stored sessions too
    # streamed, not one piece at the end: the worker sends the first piece at once and batches
    # the rest every 30 ms (engine/worker.py TextBatcher), so 8 tokens are at least 2 pieces
    texts = [e["text"] for e in events if e["type"] == "text"]
    assert len(texts) >= 2 or finished["usage"]["completion_tokens"] < 2, texts


def test_piped_stdin_is_part_of_the_prompt(demo_model_path):
    base = run("--model", str(demo_model_path), "-p", "summarise", "--json", "--max-tokens", "1")
    piped = run("--model", str(demo_model_path), "-p", "summarise", "--json", "--max-tokens", "1",
                stdin="The quick brown fox jumps over the lazy dog. " * 20)
    tokens = [[json.loads(line) for line in p.stdout.splitlines() if '"finished"' in line][-1]["usage"]["prompt_tokens"]
              for p in (base, piped)]
    assert tokens[1] > tokens[0] + 150


def test_qwen35_think_and_no_think(tiny_qwen35_path, tmp_path):
    grammar = tmp_path / "reply.gbnf"
    grammar.write_text('root ::= "Reasoning here." "</think>" "\\n\\n" "The answer."\n')
    proc = run("--model", str(tiny_qwen35_path), "-p", "q", "--think", "--grammar-file", str(grammar), "--max-tokens", "40")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "The answer."
    assert "Reasoning here." in proc.stderr
    grammar.write_text('root ::= "Straight to it."\n')
    proc = run("--model", str(tiny_qwen35_path), "-p", "q", "--no-think", "--grammar-file", str(grammar), "--max-tokens", "40")
    assert proc.stdout.strip() == "Straight to it."


def _one_line_error(proc, expected: str) -> None:
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("qwen-tui: error: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_model_files_get_one_line_errors(tmp_path, demo_model_path):
    _one_line_error(run("--model", str(tmp_path / "missing.gguf"), "-p", "hi"), "model file not found")
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    _one_line_error(run("--model", str(text), "-p", "hi"), "is not a GGUF model file")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(demo_model_path.read_bytes()[:3_000_000])
    _one_line_error(run("--model", str(cut), "-p", "hi"), "truncated")


def test_unsupported_architecture_one_line(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "notarealarch")
    writer.add_context_length(128)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    _one_line_error(run("--model", str(path), "-p", "hi"), "unknown model architecture: 'notarealarch'")


def test_context_too_big_for_memory(demo_model_path):
    _one_line_error(run("--model", str(demo_model_path), "--ctx", "400000000", "-p", "hi"), "not enough memory")


def test_no_model_given():
    _one_line_error(run("-p", "hi"), "--demo")


def test_damaged_session_database_is_set_aside(demo_model_path, tmp_path):
    import os

    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "sessions.sqlite3").write_bytes(os.urandom(8192))
    proc = subprocess.run(
        [sys.executable, "-m", "qwen_tui", "--model", str(demo_model_path), "-p", "Say hi", "--max-tokens", "5"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "QWEN_TUI_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert list((home / "data").glob("sessions.sqlite3.damaged-*"))
    listing = subprocess.run([sys.executable, "-m", "qwen_tui", "sessions", "list", "--json"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "QWEN_TUI_HOME": str(home)})
    assert len(json.loads(listing.stdout)) == 1  # this run was saved in the fresh store


PLUGIN = '''
from qwen_tui import hookimpl

def add_numbers(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    return a + b

@hookimpl
def register_tools(register):
    register(add_numbers)
'''


def test_headless_tool_call_denied_by_default_then_allowed(tiny_qwen35_path, tmp_path):
    plugin = tmp_path / "adder.py"
    plugin.write_text(PLUGIN)
    grammar = tmp_path / "call.gbnf"
    grammar.write_text('root ::= "<tool_call>\\n<function=add_numbers>\\n<parameter=a>\\n2\\n</parameter>\\n'
                       '<parameter=b>\\n3\\n</parameter>\\n</function>\\n</tool_call>"\n')
    base = ["--model", str(tiny_qwen35_path), "-p", "add 2 and 3", "--no-think", "--plugin", str(plugin),
            "--grammar-file", str(grammar), "--max-steps", "2", "--json", "--max-tokens", "200"]
    denied = [json.loads(line) for line in run(*base).stdout.splitlines()]
    assert {"type": "tool_call", "name": "add_numbers", "arguments": {"a": 2, "b": 3}} in denied
    assert any(e["type"] == "tool_denied" and e["name"] == "add_numbers" for e in denied)
    assert not any(e["type"] == "tool_result" and e["ok"] for e in denied)
    allowed = [json.loads(line) for line in run(*base, "--allow", "add_numbers").stdout.splitlines()]
    results = [e for e in allowed if e["type"] == "tool_result" and e["ok"]]
    assert results and results[0]["content"] == "5"
