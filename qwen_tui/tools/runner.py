"""Run one tool call safely: validate, run with a timeout, catch errors, cap the output.

    run_tool(tool, arguments, *, timeout=30.0, max_output_chars=20_000, context=None) -> ToolResult

- Arguments are checked against the tool's schema first (missing required, unknown, wrong
  type, not one of an enum): the error names the parameter and what was expected, so the model
  can correct its call. Enum parameters are converted to their members.
- Every tool runs in its own *daemon* thread (``async def`` tools in a fresh event loop inside
  it), and the caller waits at most ``timeout`` seconds (the tool's own ``timeout`` attribute
  wins). A Python thread cannot be killed: a sync tool that times out keeps running in the
  background until it returns (its result is dropped); an async tool is cancelled. Being a
  daemon thread it never keeps the interpreter from exiting.
- An exception becomes ``ToolResult(ok=False, error="TypeName: message")`` (no traceback
  unless ``traceback=True``). A ``str`` result is returned as is, anything else as JSON
  (``default=str``); ``None`` gives ``""``.
- Output longer than ``max_output_chars`` keeps its head and tail around
  ``[... N characters elided ...]`` and sets ``truncated``.
- A tool may return ``ToolOutput(content, images=[ImageAttachment(...)])`` (attachments.py):
  ``content`` is treated as above and the images land in ``ToolResult.images``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback as tb
from dataclasses import dataclass, field

from qwen_tui.tools.attachments import ImageAttachment, ToolOutput
from qwen_tui.tools.tool import Tool, ToolContext

__all__ = ["ToolResult", "run_tool", "validate_arguments", "cap_output"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_OUTPUT = 20_000


@dataclass
class ToolResult:
    ok: bool
    content: str
    error: str | None = None
    elapsed_ms: float = 0.0
    truncated: bool = False
    denied: bool = False  # refused by the approval policy (never ran)
    images: list[ImageAttachment] = field(default_factory=list)  # from a ToolOutput (attachments.py)

    def for_model(self) -> str:
        """The text to send back to the model as the tool's response."""
        return self.content if self.ok else f"Error: {self.error}"

    def to_dict(self) -> dict:
        return {"ok": self.ok, "content": self.content, "error": self.error, "elapsed_ms": round(self.elapsed_ms, 1), "truncated": self.truncated, "denied": self.denied,
                "images": [image.to_dict() for image in self.images]}


_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _describe(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(value: object, schema: dict, where: str) -> str | None:
    """An error message, or None when `value` fits `schema` (the subset `Tool` generates)."""
    if not schema:
        return None
    if "anyOf" in schema:
        if any(_check(value, sub, where) is None for sub in schema["anyOf"]):
            return None
        return f"{where} has the wrong type: got {_describe(value)}"
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(_CHECKS.get(k, lambda v: True)(value) for k in kinds):
        return f"{where} must be {' or '.join(kinds)}, got {type(value).__name__} {_describe(value)}"
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(c) for c in schema["enum"])
        return f"{where} must be one of {choices}; got {_describe(value)}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = _check(item, schema["items"], f"{where}[{i}]")
            if problem:
                return problem
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            problem = _check(item, schema["additionalProperties"], f"{where}[{key!r}]")
            if problem:
                return problem
    return None


def validate_arguments(tool: Tool, arguments: object) -> list[str]:
    """Problems with `arguments` for `tool`, each a sentence the model can act on ([] if fine)."""
    if not isinstance(arguments, dict):
        return [f"arguments for {tool.name} must be a JSON object, got {type(arguments).__name__}"]
    props = tool.parameters.get("properties", {})
    problems = []
    missing = [p for p in tool.parameters.get("required", []) if p not in arguments]
    if missing:
        problems.append(f"missing required argument{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}")
    unknown = [a for a in arguments if a not in props]
    if unknown:
        known = ", ".join(repr(p) for p in props) or "none"
        problems.append(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)} (parameters: {known})")
    for name, value in arguments.items():
        if name in props:
            problem = _check(value, props[name], f"argument {name!r}")
            if problem:
                problems.append(problem)
    return problems


def cap_output(text: str, limit: int) -> tuple[str, bool]:
    """Keep the head (2/3) and tail (1/3) of `text` around an elision marker, in at most
    `limit` characters (only the marker itself when `limit` is smaller than it)."""
    if limit <= 0 or len(text) <= limit:
        return text, False
    keep = max(limit - len(f"\n[... {len(text)} characters elided ...]\n"), 0)
    head, tail = keep * 2 // 3, keep - keep * 2 // 3
    marker = f"\n[... {len(text) - head - tail} characters elided ...]\n"
    return text[:head] + marker + (text[len(text) - tail:] if tail else ""), True


def _serialise(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _error(message: str, start: float) -> ToolResult:
    return ToolResult(ok=False, content="", error=message, elapsed_ms=(time.monotonic() - start) * 1000)


def run_tool(
    tool: Tool,
    arguments: dict,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_output_chars: int = DEFAULT_MAX_OUTPUT,
    context: ToolContext | None = None,
    traceback: bool = False,
) -> ToolResult:
    """Validate and run one call; never raises (everything becomes a `ToolResult`)."""
    start = time.monotonic()
    problems = validate_arguments(tool, arguments)
    if problems:
        return _error(f"invalid arguments for tool {tool.name!r}: " + "; ".join(problems), start)
    kwargs = dict(arguments)
    for name, enum_cls in tool.enums.items():
        if kwargs.get(name) is not None:
            kwargs[name] = enum_cls(kwargs[name])
    if tool.context_param:
        kwargs[tool.context_param] = context if context is not None else ToolContext()
    limit = tool.timeout if tool.timeout is not None else timeout

    box: dict = {}
    done = threading.Event()
    loop_box: dict = {}

    def work() -> None:
        try:
            if tool.is_async:
                loop = asyncio.new_event_loop()
                try:
                    task = loop.create_task(tool.fn(**kwargs))
                    loop_box["loop"], loop_box["task"] = loop, task
                    box["value"] = loop.run_until_complete(task)
                finally:
                    loop.close()
            else:
                box["value"] = tool.fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - a tool's failure is a result, even SystemExit
            box["error"] = exc
            box["trace"] = tb.format_exc() if traceback else None
        finally:
            done.set()

    thread = threading.Thread(target=work, name=f"tool:{tool.name}", daemon=True)
    thread.start()
    if not done.wait(limit):
        loop, task = loop_box.get("loop"), loop_box.get("task")
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass
        return _error(f"tool {tool.name!r} timed out after {limit:g} s (it was stopped or left running in the background)", start)
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, asyncio.CancelledError):
            message = f"tool {tool.name!r} was cancelled"
        else:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if box.get("trace"):
            message += "\n" + box["trace"]
        return _error(message, start)
    value, images = box.get("value"), []
    if isinstance(value, ToolOutput):  # a result with images for the model (attachments.py)
        value, images = value.content, [i for i in value.images if isinstance(i, ImageAttachment)]
    content, truncated = cap_output(_serialise(value), max_output_chars)
    return ToolResult(ok=True, content=content, error=None, elapsed_ms=(time.monotonic() - start) * 1000, truncated=truncated, images=images)


def execute_call(
    call,
    *,
    registry,
    policy,
    host=None,
    context: ToolContext | None = None,
    ask=None,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_output_chars: int = DEFAULT_MAX_OUTPUT,
) -> ToolResult:
    """The agent's whole path for one parsed call (``call.name``, ``call.arguments``): look the
    tool up, ask the approval `policy`, run it, tell the plugins (``tool_call_finished``).

    `ask(call, tool, decision) -> "once" | "session" | "project" | "deny"` is used when the
    policy says "ask" (without it, "ask" means deny). Never raises.
    """
    start = time.monotonic()
    tool = registry.get(call.name)
    if tool is None:
        names = ", ".join(registry.names()) or "none"
        result = _error(f"unknown tool {call.name!r}; available tools: {names}", start)
    else:
        decision = policy.decide(call, tool)
        verdict, reason = decision.verdict, decision.reason
        if verdict == "ask":
            answer = ask(call, tool, decision) if ask is not None else "deny"
            if answer in ("once", "session", "project"):
                policy.remember(tool.name, answer)
                verdict = "allow"
            else:
                verdict, reason = "deny", f"the user did not allow {tool.name}"
        if verdict == "allow":
            result = run_tool(tool, call.arguments, timeout=timeout, max_output_chars=max_output_chars, context=context)
        else:
            result = _error(f"not allowed: {reason}", start)
            result.denied = True
    if host is not None:
        host.tool_call_finished(call, result)
    return result
