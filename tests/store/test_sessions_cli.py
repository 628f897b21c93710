"""`qwen-tui sessions ...` run as a real process (QWEN_TUI_HOME comes from conftest)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from qwen_tui.store import SessionStore


def sessions(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qwen_tui", "sessions", *args], cwd=cwd,
                          input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A folder with two sessions in the default store, the second one the latest.

    The store is shared by all tests: a word unique to this test keeps searches apart.
    """
    marker = "quokka" + uuid.uuid4().hex[:8]
    with SessionStore() as store:
        first = store.create_session(tmp_path, "Qwen3.5-0.8B")
        store.add_message(first, "user", "How do I reverse a list in Python?")
        store.add_message(first, "assistant", "Use reversed() or slicing.", finish_reason="stop")
        second = store.create_session(tmp_path, "Qwen3.5-4B", {"temperature": 0.6})
        store.add_message(second, "user", "Explain the hyperspectral quokka")
        answer = store.add_message(second, "assistant", reasoning="Unusual words.")
        store.append(answer, content=f"A {marker} is a marsupial.")
        store.finish_message(answer, "stop")
    (tmp_path / "ids").write_text(f"{first} {second} {marker}")
    return tmp_path


def ids(workspace: Path) -> list[str]:
    return (workspace / "ids").read_text().split()[:2]


def marker(workspace: Path) -> str:
    return (workspace / "ids").read_text().split()[2]


def test_list_shows_this_folders_sessions_latest_first(workspace):
    result = sessions("list", cwd=workspace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "UPDATED", "MSGS", "TITLE"]
    assert [line.split()[0] for line in lines[1:]] == ids(workspace)[::-1]
    assert "Explain the hyperspectral quokka" in lines[1]


def test_list_json_has_the_documented_keys(workspace):
    result = sessions("list", "--json", "--workspace", str(workspace), cwd=workspace.parent)
    listed = json.loads(result.stdout)
    assert [s["id"] for s in listed] == ids(workspace)[::-1]
    assert set(listed[0]) == {"id", "title", "workspace", "model", "created", "updated",
                              "message_count"}
    assert listed[0]["model"] == "Qwen3.5-4B" and listed[0]["message_count"] == 2
    assert listed[0]["workspace"] == str(workspace.resolve())
    assert listed[0]["updated"].endswith("Z")
    everywhere = json.loads(sessions("list", "--all", "--json", cwd=workspace).stdout)
    assert set(ids(workspace)) <= {s["id"] for s in everywhere}


def test_search_finds_streamed_text(workspace):
    result = sessions("search", marker(workspace), "marsupial", "--json", cwd=workspace)
    hits = json.loads(result.stdout)
    assert hits[0]["session_id"] == ids(workspace)[1]
    assert hits[0]["role"] == "assistant" and "**marsupial**" in hits[0]["snippet"]
    plain = sessions("search", marker(workspace), cwd=workspace)
    assert plain.stdout.startswith(ids(workspace)[1])
    assert f"assistant: A **{marker(workspace)}** is a marsupial." in plain.stdout


def test_show_and_export_accept_last_and_prefixes(workspace, tmp_path):
    shown = sessions("show", "last", cwd=workspace)
    assert shown.returncode == 0
    assert shown.stdout.startswith("# Explain the hyperspectral quokka")
    assert "<summary>Reasoning</summary>" in shown.stdout
    first = ids(workspace)[0]
    out = tmp_path / "out.json"
    exported = sessions("export", first, "--format", "json", "-o", str(out), cwd=workspace)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(out.read_text())
    assert data["session"]["id"] == first
    assert [m["content"] for m in data["messages"]][1] == "Use reversed() or slicing."
    markdown = sessions("export", "last", "--format", "md", cwd=workspace)
    assert f"A {marker(workspace)} is a marsupial." in markdown.stdout


def test_rename_then_rm_with_confirmation_rules(workspace):
    first, second = ids(workspace)
    assert sessions("rename", first, "Reversing", "lists", cwd=workspace).returncode == 0
    listed = json.loads(sessions("list", "--json", cwd=workspace).stdout)
    assert {s["id"]: s["title"] for s in listed}[first] == "Reversing lists"
    refused = sessions("rm", first, cwd=workspace)  # stdin is not a terminal
    assert refused.returncode == 2
    assert refused.stderr == "qwen-tui: error: not deleting without confirmation: add --yes\n"
    removed = sessions("rm", first, "--yes", cwd=workspace)
    assert removed.returncode == 0, removed.stderr
    assert [s["id"] for s in json.loads(sessions("list", "--json", cwd=workspace).stdout)] == [second]


@pytest.mark.parametrize("args, message", [
    (["show", "zzzzzzzzzzzz"], "no session with id 'zzzzzzzzzzzz'"),
    (["show", "!"], "no session with id '!'"),
    (["show", "0"], "matches several sessions"),
    (["export", "last", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(workspace, args, message):
    result = sessions(*args, cwd=workspace)
    assert result.returncode == 2
    assert result.stderr.startswith("qwen-tui: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_last_in_a_folder_without_sessions_says_so(tmp_path):
    result = sessions("show", "last", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"qwen-tui: error: there are no sessions for {tmp_path.resolve()} yet\n"
    assert sessions("list", cwd=tmp_path).stdout == ""


def test_export_to_an_unwritable_place_is_a_clear_error(workspace):
    result = sessions("export", "last", "-o", str(workspace / "missing" / "x.md"), cwd=workspace)
    assert result.returncode == 1
    assert result.stderr.startswith("qwen-tui: error: cannot write ")


def test_plain_sessions_lists_and_help_exits_0(workspace):
    assert sessions(cwd=workspace).stdout == sessions("list", cwd=workspace).stdout
    helped = sessions("--help", cwd=workspace)
    assert helped.returncode == 0 and "usage: qwen-tui sessions" in helped.stdout


def test_the_store_loads_neither_textual_nor_llama_cpp(tmp_path):
    code = ("import sys, qwen_tui.store.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'llama_cpp')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == "[]\n", result.stderr
