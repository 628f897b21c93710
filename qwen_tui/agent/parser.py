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

Where things are: this module finds reasoning, content and the extent of each call as text
streams in; `call_format.py` parses one complete call block (both formats) and words the errors;
`reply.py` holds the records and events (re-exported here).
"""

from __future__ import annotations

import json

from qwen_tui.agent.call_format import (
    CALL_CLOSE,
    CALL_OPEN,
    FUNCTION_TAG,
    JSON_FORMAT,
    JSON_NAME,
    PARAM_CLOSE,
    PARAMETER_TAG,
    THINK_CLOSE,
    THINK_OPEN,
    XML_FORMAT,
    malformed,
    parse_call,
    snip,
    unwrap,
)
from qwen_tui.agent.coercion import coerce, parameter_schemas
from qwen_tui.agent.reply import (
    ContentDelta,
    Event,
    ParsedReply,
    ParseError,
    ReasoningDelta,
    ToolCall,
    ToolCallArgument,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallName,
    ToolCallStarted,
)

__all__ = [
    "CALL_CLOSE", "CALL_OPEN", "JSON_FORMAT", "THINK_CLOSE", "THINK_OPEN", "XML_FORMAT",
    "ContentDelta", "Event", "ParseError", "ParsedReply", "ReasoningDelta", "StreamingReplyParser", "ToolCall",
    "ToolCallArgument", "ToolCallFailed", "ToolCallFinished", "ToolCallName", "ToolCallStarted", "parse_reply",
]


def parse_reply(text: str, tools: list[dict] | None = None, thinking: bool = False) -> ParsedReply:
    """Parse a whole reply. `tools`: OpenAI-style tool dicts, for value coercion. Never raises."""
    parser = StreamingReplyParser(tools, thinking)
    parser.feed(text)
    return parser.finish()


def _partial(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of text that is a proper prefix of one of tags."""
    for n in range(min(max(map(len, tags)) - 1, len(text)), 0, -1):
        if any(tag.startswith(text[-n:]) and n < len(tag) for tag in tags):
            return n
    return 0


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
                f"You wrote text after your tool call: {snip(stray)}. It was kept as part of your reply and the "
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
            call, errors, pairs = parse_call(raw, self._schemas)
        elif reopen >= 0 or final:
            raw = buf[:reopen] if reopen >= 0 else buf
            ended = "the next <tool_call> began" if reopen >= 0 else "your reply ended"
            why = f"<tool_call> was never closed with </tool_call> ({ended} first)"
            call, errors, pairs = None, [malformed(why, raw)], []
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
            match = FUNCTION_TAG.match(buf, len(CALL_OPEN))
            if match:
                name: object = match.group(1).strip()
                forming.xml, forming.pos = True, match.end()
            elif match := JSON_NAME.match(buf, len(CALL_OPEN)):
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
        while forming.xml and (match := PARAMETER_TAG.match(buf, forming.pos)):
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
            value, _ = coerce(unwrap(buf[match.end() : end]), self._schemas.get(forming.name, {}).get(arg))
            out.append(ToolCallArgument(forming.index, arg, value, done=True))
            forming.done, forming.shown, forming.pos = forming.done + 1, 0, end + len(PARAM_CLOSE)
