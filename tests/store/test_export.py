"""Exports: Markdown a person can read and JSON a script can rely on."""

from __future__ import annotations

import json

import pytest

from qwen_tui.store import SessionStore
from qwen_tui.store.export import MESSAGE_KEYS, SESSION_KEYS, export_json, export_markdown


@pytest.fixture
def record(tmp_path):
    with SessionStore(tmp_path / "s.sqlite3") as store:
        session_id = store.create_session(tmp_path, "Qwen3.5-4B", {"temperature": 0.6})
        store.add_message(session_id, "user", "Read the README")
        calls = [{"id": "call_1", "type": "function",
                  "function": {"name": "read_file", "arguments": '{"path": "README.md"}'}}]
        store.add_message(session_id, "assistant", reasoning="I should open it.",
                          tool_calls=calls, finish_reason="tool_calls")
        store.add_message(session_id, "tool", "# Title\n```sh\nmake\n```", tool_call_id="call_1",
                          tool_name="read_file")
        answer = store.add_message(session_id, "assistant", "It explains how to build.")
        store.finish_message(answer, "stop", usage={"completion_tokens": 6})
        store.add_message(session_id, "assistant", "Half an ans")  # never finished
        yield store.load(session_id)


def test_markdown_has_title_metadata_roles_reasoning_and_tool_blocks(record):
    text = export_markdown(record)
    assert text.startswith("# Read the README\n")
    assert f"- id: `{record.session.id}`" in text
    assert "- model: `Qwen3.5-4B`" in text
    assert '- settings: `{"temperature": 0.6}`' in text
    assert text.count("## Assistant") == 3 and "## User" in text
    assert "<details>\n<summary>Reasoning</summary>\n\nI should open it.\n\n</details>" in text
    assert "**Tool call** `read_file` (id `call_1`)\n\n```json\n{\n  \"path\": \"README.md\"\n}\n```" in text
    # The tool output holds a ``` fence of its own: the outer fence is longer.
    assert "## Tool result `read_file`" in text
    assert "````\n# Title\n```sh\nmake\n```\n````" in text
    assert text.rstrip().endswith("*(interrupted: this answer did not finish)*")
    assert text.count("interrupted") == 1


def test_json_export_has_stable_keys_and_round_trips(record):
    data = json.loads(json.dumps(export_json(record)))
    assert data["format"] == "qwen-tui.session" and data["format_version"] == 1
    assert tuple(data["session"]) == SESSION_KEYS
    assert all(tuple(message) == MESSAGE_KEYS for message in data["messages"])
    assert data["session"]["settings"] == {"temperature": 0.6}
    assert data["session"]["created"].endswith("Z") and "T" in data["session"]["created"]
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "assistant"]
    assert data["messages"][1]["tool_calls"][0]["function"]["name"] == "read_file"
    assert data["messages"][3]["usage"] == {"completion_tokens": 6}
    assert data["messages"][4]["finish_reason"] is None


def test_compacted_messages_are_exported_and_marked(tmp_path):
    with SessionStore(tmp_path / "s.sqlite3") as store:
        session_id = store.create_session(tmp_path, "m")
        first = store.add_message(session_id, "user", "q1")
        second = store.add_message(session_id, "assistant", "a1", finish_reason="stop")
        summary = store.record_compaction(session_id, "asked q1", [first, second])
        record = store.load(session_id)
    text = export_markdown(record)
    assert "## Summary of 2 earlier messages\n\nasked q1" in text
    assert text.count(f"*(compacted: the model sees summary #{summary} instead)*") == 2
    assert [m["compacted_by"] for m in export_json(record)["messages"]] == [None, summary, summary]
