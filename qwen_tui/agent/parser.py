"""Parse what a Qwen model writes into reasoning, content and tool calls, whole or streamed.

    parse_reply(text, tools=None, thinking=False) -> ParsedReply(content, reasoning, tool_calls, errors)
    p = StreamingReplyParser(tools, thinking); events = p.feed(delta) ...; events = p.flush(); reply = p.finish()

Formats understood (several calls per reply, text and/or reasoning before them):

- Qwen 3.5 XML (what its chat template tells the model to write)::

      <tool_call>
      <function=NAME>
      <parameter=ARG>
      VALUE (may span lines)
      </parameter>
      </function>
      </tool_call>

  Exactly one newline is dropped on each side of a value (the template writes
  `<parameter=x>\\n` + value + `\\n</parameter>`), so a value's own trailing newline survives.
  With `tools` (OpenAI style) the value is coerced to its parameter's JSON-schema type (see
  `coercion.py`); without a schema for it, it stays a string.
- Hermes JSON (other Qwen models): `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`;
  `arguments` may also be a string holding a JSON object. Values are taken as they are.
- Reasoning: with `thinking=True` the prompt ended inside `<think>`, so the reply starts with
  reasoning; a reply starting (after whitespace) with `<think>` opens it either way (the tag is
  dropped). It ends at `</think>` or, as in llama.cpp, at a `<tool_call>` before any `</think>`.

Results: `content` is all text outside reasoning and tool calls, joined and `strip()`-ed;
`reasoning` likewise. A call runs from `<tool_call>` to the first `</tool_call>`, so values
cannot contain `</tool_call>` (nor `<tool_call>`, nor `</parameter>` in the XML form). Unknown
tool names are returned like any other. Nothing raises on malformed input: a broken call (never
closed, `<function=` without `>`, missing `</parameter>` or `</function>`, bad JSON, ...) is kept
as content and reported as a `ParseError` whose message is written for the model to read; a
well-formed call whose value fails coercion is returned with the string value plus a
`ParseError`; text after a complete call is content plus a `ParseError` (tool calls must come last).

Streaming: `feed()` returns events; concatenating the `ContentDelta` texts gives exactly the
final `content` (leading whitespace is never sent, trailing whitespace is held until more text
follows it), and likewise `ReasoningDelta` / `reasoning`. Text that could still become a tag is
held back. `ToolCallStarted(index)` comes at `<tool_call>`, then `ToolCallName`, then
`ToolCallArgument`s (with `done=False` the raw text so far, with `done=True` the final value),
and finally `ToolCallFinished(call)` or, for a malformed call, `ToolCallFailed(error)`, after
which its text arrives as content. `index` is the position the call takes in
`tool_calls` (a failed call's index is reused by the next one). `finish()` equals
`parse_reply(whole text)` for any chunking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from qwen_tui.agent.coercion import coerce, parameter_schemas

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
PARAM_CLOSE, FUNC_CLOSE = "</parameter>", "</function>"

XML_FORMAT = (
    "<tool_call>\n<function=FUNCTION_NAME>\n<parameter=PARAMETER_NAME>\nVALUE\n</parameter>\n</function>\n</tool_call>"
)
JSON_FORMAT = '<tool_call>\n{"name": "FUNCTION_NAME", "arguments": {"PARAMETER_NAME": VALUE}}\n</tool_call>'

_FUNC = re.compile(r"\s*<function=([^<>\n]*)>")
_PARAM = re.compile(r"\s*<parameter=([^<>\n]*)>")
_JSON_NAME = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")')


@dataclass
class ToolCall:
    """A well-formed call; `raw` is the exact text of its `<tool_call>...</tool_call>`."""

    name: str
    arguments: dict
    raw: str


@dataclass
class ParseError:
    """Something the model got wrong, told to the model: what, and the correct format.

    `raw` is the text concerned: the whole `<tool_call>...</tool_call>` (or up to where it broke
    off), or for text after the calls that text."""

    message: str
    raw: str


@dataclass
class ParsedReply:
    """The reply, parsed; see the module docstring for how content and reasoning are trimmed."""

    content: str
    reasoning: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    index: int


@dataclass(frozen=True)
class ToolCallName:
    index: int
    name: str


@dataclass(frozen=True)
class ToolCallArgument:
    index: int
    name: str
    value_so_far: object  # the raw text so far while done is False; the final (coerced) value once done
    done: bool = False


@dataclass(frozen=True)
class ToolCallFinished:
    index: int
    call: ToolCall


@dataclass(frozen=True)
class ToolCallFailed:
    index: int
    error: ParseError


Event = (
    ContentDelta | ReasoningDelta | ToolCallStarted | ToolCallName
    | ToolCallArgument | ToolCallFinished | ToolCallFailed
)


def parse_reply(text: str, tools: list[dict] | None = None, thinking: bool = False) -> ParsedReply:
    """Parse a whole reply. `tools`: OpenAI-style tool dicts, for value coercion. Never raises."""
    parser = StreamingReplyParser(tools, thinking)
    parser.feed(text)
    return parser.finish()


def _snip(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _malformed(why: str, raw: str, example: str = XML_FORMAT) -> ParseError:
    return ParseError(
        f"Your tool call was malformed because {why}, so it was not run (its text was kept as plain content). "
        f"The correct format is:\n{example}",
        raw,
    )


def _unwrap(value: str) -> str:
    """Drop the one newline the template writes on each side of a parameter value."""
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


def _partial(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of text that is a proper prefix of one of tags."""
    for n in range(min(max(map(len, tags)) - 1, len(text)), 0, -1):
        if any(tag.startswith(text[-n:]) and n < len(tag) for tag in tags):
            return n
    return 0


Parsed = tuple[ToolCall | None, list[ParseError], list[tuple[str, object]]]


def _parse_call(raw: str, schemas: dict[str, dict]) -> Parsed:
    """A complete `<tool_call>...</tool_call>` -> (call or None, errors, [(argument, value)])."""
    body = raw[len(CALL_OPEN) : -len(CALL_CLOSE)]
    head = body.lstrip()
    if head.startswith("{"):
        return _parse_json(head.rstrip(), raw)
    if head.startswith("<function"):
        return _parse_xml(body, raw, schemas)
    why = f"a <tool_call> block must start with <function=NAME>, but yours starts with {_snip(head)}"
    if not head:
        why = "the <tool_call> block was empty"
    return None, [_malformed(why, raw)], []


def _parse_xml(body: str, raw: str, schemas: dict[str, dict]) -> Parsed:
    def fail(why: str) -> Parsed:
        return None, [_malformed(why, raw)], []

    match = _FUNC.match(body)
    if not match:
        return fail("<function= was never closed with '>' (write <function=NAME> on a line of its own)")
    name = match.group(1).strip()
    if not name:
        return fail("<function=> names no function")
    props = schemas.get(name, {})
    pairs: list[tuple[str, object]] = []
    errors: list[ParseError] = []
    pos = match.end()
    while match := _PARAM.match(body, pos):
        arg = match.group(1).strip()
        if not arg:
            return fail(f"a <parameter=> in your call to {name!r} names no parameter")
        end = body.find(PARAM_CLOSE, match.end())
        if end < 0:
            return fail(f"<parameter={arg}> in your call to {name!r} was never closed with </parameter>")
        text = _unwrap(body[match.end() : end])
        value, wanted = coerce(text, props.get(arg))
        if wanted:
            errors.append(ParseError(
                f"In your call to {name!r}, parameter {arg!r} must be {wanted}, but its value {_snip(text)} is not; "
                "the call was kept, with that value passed as a string.",
                raw,
            ))
        pairs.append((arg, value))
        pos = end + len(PARAM_CLOSE)
    rest = body[pos:].lstrip()
    if rest.startswith(FUNC_CLOSE):
        tail = rest[len(FUNC_CLOSE) :].strip()
        if tail:
            return fail(f"there is unexpected text {_snip(tail)} between </function> and </tool_call>")
        return ToolCall(name, dict(pairs), raw), errors, pairs
    if rest.startswith("<parameter="):
        return fail(f"a <parameter= in your call to {name!r} was never closed with '>'")
    if not rest:
        return fail(f"<function={name}> was never closed with </function>")
    return fail(
        f"there is unexpected text {_snip(rest)} inside <function={name}> "
        "(only <parameter=NAME>...</parameter> blocks and </function> belong there)"
    )


def _parse_json(text: str, raw: str) -> Parsed:
    def fail(why: str) -> Parsed:
        return None, [_malformed(why, raw, JSON_FORMAT)], []

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


class _Channel:
    """One kind of text (content or reasoning), sent without leading or trailing whitespace."""

    def __init__(self, event: type) -> None:
        self._event = event
        self._parts: list[str] = []
        self._held = ""  # whitespace that is only sent once more text follows it

    def add(self, text: str, out: list) -> None:
        if not self._parts:
            text = text.lstrip()
        body = text.rstrip()
        if not body:
            self._held += text
            return
        piece, self._held = self._held + body, text[len(body) :]
        self._parts.append(piece)
        out.append(self._event(piece))

    @property
    def text(self) -> str:
        return "".join(self._parts)


class _Forming:
    """What has been announced of the call being written."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.name: str | None = None
        self.xml = False
        self.pos = 0  # where the next <parameter= may start
        self.done = 0  # arguments announced as done
        self.shown = 0  # length of the partial value last announced
        self.scanned = 0  # the buffer up to here holds no closing tag


_START, _REASONING, _CONTENT, _CALL = range(4)


class StreamingReplyParser:
    """Parse a reply as it streams: feed() deltas, then flush() for the last events and finish()."""

    def __init__(self, tools: list[dict] | None = None, thinking: bool = False) -> None:
        self._schemas = parameter_schemas(tools)
        self._thinking = thinking
        self._state = _START
        self._buf = ""  # text not decided yet
        self._content = _Channel(ContentDelta)
        self._reasoning = _Channel(ReasoningDelta)
        self._calls: list[ToolCall] = []
        self._errors: list[ParseError] = []
        self._after: str | None = None  # content written after the first complete call
        self._stray = False  # some of it is plain text (not a failed call)
        self._forming: _Forming | None = None
        self._result: ParsedReply | None = None

    def feed(self, delta: str) -> list[Event]:
        """Take the next piece of the reply; returns the events it decides."""
        if self._result is not None:
            raise ValueError("StreamingReplyParser.feed() called after finish()")
        self._buf += delta
        out: list[Event] = []
        self._pump(out, final=False)
        return out

    def flush(self) -> list[Event]:
        """End of the reply: decide everything still held back and return the last events."""
        if self._result is not None:
            return []
        out: list[Event] = []
        self._pump(out, final=True)
        errors = list(self._errors)
        stray = (self._after or "").strip()
        if self._stray:
            errors.append(ParseError(
                f"You wrote text after your tool call: {_snip(stray)}. It was kept as part of your reply and the "
                "tool call was kept too, but tool calls must come last: put any explanation before the first "
                "<tool_call> and end your reply right after the last </tool_call>.",
                stray,
            ))
        self._result = ParsedReply(self._content.text, self._reasoning.text, list(self._calls), errors)
        return out

    def finish(self) -> ParsedReply:
        """The final result (flushing first if needed); equal to parse_reply() of the whole text."""
        self.flush()
        assert self._result is not None
        return self._result

    def _plain(self, text: str, out: list, failed: bool = False) -> None:
        self._content.add(text, out)
        if self._after is not None:
            self._after += text
            self._stray = self._stray or (not failed and bool(text.strip()))

    def _pump(self, out: list, final: bool) -> None:
        while True:
            buf = self._buf
            if self._state == _START:
                head = buf.lstrip()
                if head.startswith(THINK_OPEN):  # the model opened the block (again, if thinking)
                    self._buf, self._state = head[len(THINK_OPEN) :], _REASONING
                elif final or not THINK_OPEN.startswith(head):
                    self._state = _REASONING if self._thinking else _CONTENT
                else:
                    return  # could still become <think>
            elif self._state == _REASONING:
                found = [(i, tag) for tag in (THINK_CLOSE, CALL_OPEN) if (i := buf.find(tag)) >= 0]
                if not found:
                    keep = 0 if final else _partial(buf, (THINK_CLOSE, CALL_OPEN))
                    self._reasoning.add(buf[: len(buf) - keep], out)
                    self._buf = buf[len(buf) - keep :]
                    return
                idx, tag = min(found)
                self._reasoning.add(buf[:idx], out)
                self._buf = buf[idx + len(THINK_CLOSE) :] if tag == THINK_CLOSE else buf[idx:]
                self._state = _CONTENT
            elif self._state == _CONTENT:
                idx = buf.find(CALL_OPEN)
                if idx < 0:
                    keep = 0 if final else _partial(buf, (CALL_OPEN,))
                    self._plain(buf[: len(buf) - keep], out)
                    self._buf = buf[len(buf) - keep :]
                    return
                self._plain(buf[:idx], out)
                self._buf, self._state = buf[idx:], _CALL
                self._forming = _Forming(len(self._calls))
                out.append(ToolCallStarted(self._forming.index))
            elif not self._end_call(out, final):
                return

    def _end_call(self, out: list, final: bool) -> bool:
        """In a call (the buffer starts with <tool_call>): settle it if its end is known."""
        buf, forming = self._buf, self._forming
        assert forming is not None
        start = max(len(CALL_OPEN), forming.scanned - len(CALL_CLOSE))
        reopen = buf.find(CALL_OPEN, start)
        close = buf.find(CALL_CLOSE, start, len(buf) if reopen < 0 else reopen)
        if close >= 0:
            raw = buf[: close + len(CALL_CLOSE)]
            call, errors, pairs = _parse_call(raw, self._schemas)
        elif reopen >= 0 or final:
            raw = buf[:reopen] if reopen >= 0 else buf
            ended = "the next <tool_call> began" if reopen >= 0 else "your reply ended"
            why = f"<tool_call> was never closed with </tool_call> ({ended} first)"
            call, errors, pairs = None, [_malformed(why, raw)], []
        else:
            forming.scanned = len(buf)
            self._progress(out)
            return False
        self._buf, self._state, self._forming = buf[len(raw) :], _CONTENT, None
        self._errors += errors
        if call is None:
            out.append(ToolCallFailed(forming.index, errors[0]))
            self._plain(raw, out, failed=True)
            return True
        if forming.name != call.name:
            out.append(ToolCallName(forming.index, call.name))
        out += [ToolCallArgument(forming.index, arg, value, done=True) for arg, value in pairs[forming.done :]]
        out.append(ToolCallFinished(forming.index, call))
        self._calls.append(call)
        self._after = "" if self._after is None else self._after
        return True

    def _progress(self, out: list) -> None:
        """Announce the name and arguments of the call being written, as far as they are known."""
        buf, forming = self._buf, self._forming
        assert forming is not None
        if forming.name is None:
            match = _FUNC.match(buf, len(CALL_OPEN))
            if match:
                name: object = match.group(1).strip()
                forming.xml, forming.pos = True, match.end()
            elif match := _JSON_NAME.match(buf, len(CALL_OPEN)):
                try:
                    name = json.loads(match.group(1)).strip()
                except ValueError:
                    return
            else:
                return
            if not name:
                return
            forming.name = str(name)
            out.append(ToolCallName(forming.index, forming.name))
        while forming.xml and (match := _PARAM.match(buf, forming.pos)):
            arg = match.group(1).strip()
            end = buf.find(PARAM_CLOSE, match.end())
            if not arg:
                return
            if end < 0:
                text = buf[match.end() :]
                text = text[: len(text) - _partial(text, ("\n" + PARAM_CLOSE, PARAM_CLOSE))]
                text = text[1:] if text.startswith("\n") else text
                if len(text) > forming.shown:
                    forming.shown = len(text)
                    out.append(ToolCallArgument(forming.index, arg, text))
                return
            value, _ = coerce(_unwrap(buf[match.end() : end]), self._schemas.get(forming.name, {}).get(arg))
            out.append(ToolCallArgument(forming.index, arg, value, done=True))
            forming.done, forming.shown, forming.pos = forming.done + 1, 0, end + len(PARAM_CLOSE)
