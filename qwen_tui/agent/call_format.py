"""One complete `<tool_call>...</tool_call>` block -> a ToolCall, or errors written for the model.

The two call formats (Qwen 3.5's XML and Hermes JSON, described in agent/parser.py) and the
messages that teach the model the right one live here; the streaming parser only finds where a
block starts and ends and hands the whole block to `parse_call`.
"""

from __future__ import annotations

import json
import re

from qwen_tui.agent.coercion import coerce
from qwen_tui.agent.reply import ParseError, ToolCall

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
PARAM_CLOSE, FUNC_CLOSE = "</parameter>", "</function>"

XML_FORMAT = (
    "<tool_call>\n<function=FUNCTION_NAME>\n<parameter=PARAMETER_NAME>\nVALUE\n</parameter>\n</function>\n</tool_call>"
)
JSON_FORMAT = '<tool_call>\n{"name": "FUNCTION_NAME", "arguments": {"PARAMETER_NAME": VALUE}}\n</tool_call>'

FUNCTION_TAG = re.compile(r"\s*<function=([^<>\n]*)>")
PARAMETER_TAG = re.compile(r"\s*<parameter=([^<>\n]*)>")
JSON_NAME = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")')

Parsed = tuple[ToolCall | None, list[ParseError], list[tuple[str, object]]]


def snip(text: str, limit: int = 60) -> str:
    """A short quote of what the model wrote, for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def malformed(why: str, raw: str, example: str = XML_FORMAT) -> ParseError:
    return ParseError(
        f"Your tool call was malformed because {why}, so it was not run (its text was kept as plain content). "
        f"The correct format is:\n{example}",
        raw,
    )


def unwrap(value: str) -> str:
    """Drop the one newline the template writes on each side of a parameter value."""
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


def parse_call(raw: str, schemas: dict[str, dict]) -> Parsed:
    """A complete `<tool_call>...</tool_call>` -> (call or None, errors, [(argument, value)])."""
    body = raw[len(CALL_OPEN) : -len(CALL_CLOSE)]
    head = body.lstrip()
    if head.startswith("{"):
        return _parse_json(head.rstrip(), raw)
    if head.startswith("<function"):
        return _parse_xml(body, raw, schemas)
    why = f"a <tool_call> block must start with <function=NAME>, but yours starts with {snip(head)}"
    if not head:
        why = "the <tool_call> block was empty"
    return None, [malformed(why, raw)], []


def _parse_xml(body: str, raw: str, schemas: dict[str, dict]) -> Parsed:
    def fail(why: str) -> Parsed:
        return None, [malformed(why, raw)], []

    match = FUNCTION_TAG.match(body)
    if not match:
        return fail("<function= was never closed with '>' (write <function=NAME> on a line of its own)")
    name = match.group(1).strip()
    if not name:
        return fail("<function=> names no function")
    props = schemas.get(name, {})
    pairs: list[tuple[str, object]] = []
    errors: list[ParseError] = []
    pos = match.end()
    while match := PARAMETER_TAG.match(body, pos):
        arg = match.group(1).strip()
        if not arg:
            return fail(f"a <parameter=> in your call to {name!r} names no parameter")
        end = body.find(PARAM_CLOSE, match.end())
        if end < 0:
            return fail(f"<parameter={arg}> in your call to {name!r} was never closed with </parameter>")
        text = unwrap(body[match.end() : end])
        value, wanted = coerce(text, props.get(arg))
        if wanted:
            errors.append(ParseError(
                f"In your call to {name!r}, parameter {arg!r} must be {wanted}, but its value {snip(text)} is not; "
                "the call was kept, with that value passed as a string.",
                raw,
            ))
        pairs.append((arg, value))
        pos = end + len(PARAM_CLOSE)
    rest = body[pos:].lstrip()
    if rest.startswith(FUNC_CLOSE):
        tail = rest[len(FUNC_CLOSE) :].strip()
        if tail:
            return fail(f"there is unexpected text {snip(tail)} between </function> and </tool_call>")
        return ToolCall(name, dict(pairs), raw), errors, pairs
    if rest.startswith("<parameter="):
        return fail(f"a <parameter= in your call to {name!r} was never closed with '>'")
    if not rest:
        return fail(f"<function={name}> was never closed with </function>")
    return fail(
        f"there is unexpected text {snip(rest)} inside <function={name}> "
        "(only <parameter=NAME>...</parameter> blocks and </function> belong there)"
    )


def _parse_json(text: str, raw: str) -> Parsed:
    def fail(why: str) -> Parsed:
        return None, [malformed(why, raw, JSON_FORMAT)], []

    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return fail(f"the JSON inside <tool_call> is not valid ({exc})")
    if not isinstance(obj, dict):
        return fail("the JSON inside <tool_call> is not an object")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return fail('its JSON has no "name" string')
    args = obj.get("arguments", obj.get("parameters"))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else None
        except (ValueError, RecursionError) as exc:
            return fail(f'its "arguments" string is not valid JSON ({exc})')
    args = {} if args is None else args
    if not isinstance(args, dict):
        return fail('its "arguments" is not a JSON object')
    return ToolCall(name.strip(), args, raw), [], list(args.items())
