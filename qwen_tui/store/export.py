"""A stored session as Markdown (to read or share) or as JSON (for scripts).

`export_json` keys are stable; a change that removes or renames one bumps FORMAT_VERSION:

    {"format": "qwen-tui.session", "format_version": 1,
     "session": {"id", "title", "workspace", "model", "kind", "settings",
                 "created", "updated", "message_count"},
     "messages": [{"id", "position", "role", "content", "reasoning", "tool_calls",
                   "tool_call_id", "tool_name", "finish_reason", "usage", "timings",
                   "compacted_by", "created"}]}

Times are ISO-8601 UTC strings ("2026-11-27T05:08:30Z"); `finish_reason` null means the
message never finished (interrupted); `compacted_by` is the id of the summary message that
replaces it in the model's context.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from qwen_tui.store.records import SUMMARY_ROLE, Message, SessionRecord

FORMAT = "qwen-tui.session"
FORMAT_VERSION = 1
SESSION_KEYS = ("id", "title", "workspace", "model", "kind", "settings", "created", "updated",
                "message_count")
MESSAGE_KEYS = ("id", "position", "role", "content", "reasoning", "tool_calls", "tool_call_id",
                "tool_name", "finish_reason", "usage", "timings", "compacted_by", "created")


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_json(record: SessionRecord) -> dict:
    session = {key: getattr(record.session, key) for key in SESSION_KEYS}
    session["created"] = iso_utc(session["created"])
    session["updated"] = iso_utc(session["updated"])
    messages = []
    for message in record.messages:
        item = {key: getattr(message, key) for key in MESSAGE_KEYS}
        item["created"] = iso_utc(item["created"])
        messages.append(item)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "session": session,
            "messages": messages}


def fenced(text: str, language: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip(chr(10))}\n{fence}"


def _heading(message: Message, replaced: int) -> str:
    if message.role == SUMMARY_ROLE:
        return f"## Summary of {replaced} earlier message{'s' if replaced != 1 else ''}"
    if message.role == "tool":
        name = f" `{message.tool_name}`" if message.tool_name else ""
        return f"## Tool result{name}"
    return f"## {message.role.capitalize()}"


def export_markdown(record: SessionRecord) -> str:
    session = record.session
    lines = [f"# {session.title or 'Untitled session'}", "",
             f"- id: `{session.id}`",
             f"- workspace: `{session.workspace}`",
             f"- model: `{session.model or 'unknown'}`",
             f"- kind: {session.kind}",
             f"- created: {iso_utc(session.created)}",
             f"- updated: {iso_utc(session.updated)}",
             f"- messages: {session.message_count}"]
    if session.settings:
        lines.append(f"- settings: `{json.dumps(session.settings, sort_keys=True)}`")
    replaced_by: dict[int, int] = {}
    for message in record.messages:
        if message.compacted_by is not None:
            replaced_by[message.compacted_by] = replaced_by.get(message.compacted_by, 0) + 1
    for message in record.messages:
        lines += ["", _heading(message, replaced_by.get(message.id, 0)), ""]
        if message.compacted_by is not None:
            lines += [f"*(compacted: the model sees summary #{message.compacted_by} instead)*", ""]
        if message.reasoning:
            lines += ["<details>", "<summary>Reasoning</summary>", "", message.reasoning.strip(),
                      "", "</details>", ""]
        if message.role == "tool":
            if message.tool_call_id:
                lines += [f"Call id: `{message.tool_call_id}`", ""]
            lines.append(fenced(message.content))
        elif message.content:
            lines.append(message.content.strip())
        for call in message.tool_calls or []:
            lines += ["", _tool_call(call)] if lines[-1] else [_tool_call(call)]
        if message.role == "assistant" and message.finish_reason is None:
            lines += ["", "*(interrupted: this answer did not finish)*"]
    return "\n".join(lines).rstrip() + "\n"


def _tool_call(call: object) -> str:
    """One tool call: OpenAI-style {"id", "function": {"name", "arguments"}} or anything else."""
    name, call_id, arguments = None, None, call
    if isinstance(call, dict):
        function = call.get("function") if isinstance(call.get("function"), dict) else call
        name = function.get("name")
        call_id = call.get("id")
        arguments = function.get("arguments", function.get("args", call))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    body = arguments if isinstance(arguments, str) else json.dumps(
        arguments, indent=2, ensure_ascii=False, default=str)
    title = f"**Tool call** `{name or 'unknown'}`" + (f" (id `{call_id}`)" if call_id else "")
    return f"{title}\n\n{fenced(body, 'json')}"
