"""The messages the agent loop adds to the conversation, and the request it sends for one.

Pure functions (no engine, no tools run here), in the shapes Qwen 3.5's chat template reads:
an assistant message with `content`, `reasoning_content` and `tool_calls` whose `arguments` are
dicts; one `{"role": "tool"}` message per result (images as paths under "images", which the
engines turn into image input).
"""

from __future__ import annotations

import json

from qwen_tui.agent.reply import ParsedReply
from qwen_tui.engine.events import ToolCallRequest
from qwen_tui.tools.runner import ToolResult


def request_messages(messages: list[dict], extra_system: str) -> list[dict]:
    """What is sent to the model: qwen-tui's own notes dropped, `extra_system` (the plugins'
    system prompt text) merged into the system message, never stored in `messages`."""
    # keys starting with "_" are qwen-tui's own notes (compaction keeps originals there)
    messages = [{k: v for k, v in m.items() if not k.startswith("_")} if any(k[:1] == "_" for k in m) else m
                for m in messages]
    if not extra_system:
        return list(messages)
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        first = dict(messages[0])
        first["content"] = (first["content"].rstrip() + "\n\n" + extra_system).strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": extra_system}, *messages]


def assistant_message(reply: ParsedReply) -> dict:
    message: dict = {"role": "assistant", "content": reply.content}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": dict(c.arguments)}} for c in reply.tool_calls
        ]
    return message


def partial_message(reply: ParsedReply) -> dict | None:
    """A stopped reply: what was said (not its calls, which never ran), or None if nothing was."""
    if not (reply.content or reply.reasoning):
        return None
    message: dict = {"role": "assistant", "content": reply.content}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    return message


def tool_message(result: ToolResult) -> dict:
    content = result.for_model()
    message = {"role": "tool", "content": content if content.strip() else "(no output)"}
    if result.ok and result.images:  # the engine puts each image's embedding after the text
        message["images"] = [str(image.path) for image in result.images]
    return message


def errors_message(reply: ParsedReply) -> dict:
    """One tool message telling the model what was wrong with its calls (each message once)."""
    seen: list[str] = []
    for error in reply.errors:
        if error.message not in seen:
            seen.append(error.message)
    return {"role": "tool", "content": "Error: " + "\n\n".join(seen)}


def call_text(call: ToolCallRequest) -> str:
    """A call the server parsed itself (remote engines), written as the Hermes-style text the
    parser reads, so it is validated, announced and stored like a call the model wrote."""
    name = json.dumps(call.name).replace("</", "<\\/")
    arguments = json.dumps(call.arguments).replace("</", "<\\/")  # a string holding the JSON
    return f'\n<tool_call>\n{{"name": {name}, "arguments": {arguments}}}\n</tool_call>'
