"""One model step's stream: the engine's events in, the agent's events out, the parsed reply at the end.

The engine's reasoning and text are fed to `StreamingReplyParser`, reasoning re-wrapped in
`<think>` so that a call written inside an unclosed reasoning block is still found; calls a
server parsed itself (`ToolCallRequest`) are fed as Hermes-style text, so they are checked and
stored the same way as calls the model wrote.
"""

from __future__ import annotations

from collections.abc import Iterator

from qwen_tui.agent import events as ev
from qwen_tui.agent.messages import call_text
from qwen_tui.agent.parser import StreamingReplyParser
from qwen_tui.agent.reply import (
    ContentDelta,
    ParsedReply,
    ToolCallArgument,
    ToolCallFailed,
    ToolCallName,
    ToolCallStarted,
)
from qwen_tui.agent.reply import ReasoningDelta as ParsedReasoning
from qwen_tui.engine.events import Notice, ReasoningDelta, TextDelta, ToolCallRequest


class StepReader:
    """feed() every engine event but the final Finished, then flush(), then reply()."""

    def __init__(self, tools: list[dict] | None) -> None:
        self._parser = StreamingReplyParser(tools)
        self._forming: dict[int, dict] = {}  # the calls being written: name and arguments so far
        self._reasoning = False  # reasoning has been fed (inside the <think> we opened)
        self._text = False  # text has been fed (the <think> is closed)

    def feed(self, event: object) -> Iterator[ev.AgentEvent]:
        if isinstance(event, Notice):
            yield ev.Notice(event.text)
            return
        if isinstance(event, ReasoningDelta) and not self._text:
            text = event.text if self._reasoning else "<think>" + event.text
            self._reasoning = True
        elif isinstance(event, (TextDelta, ReasoningDelta, ToolCallRequest)):
            text = call_text(event) if isinstance(event, ToolCallRequest) else event.text
            if self._reasoning and not self._text:
                text = "</think>" + text
            self._text = True
        else:
            return
        yield from self._map(self._parser.feed(text))

    def flush(self) -> Iterator[ev.AgentEvent]:
        """The reply ended (or stopped): the events of what the parser still held back."""
        yield from self._map(self._parser.flush())

    def reply(self) -> ParsedReply:
        return self._parser.finish()

    def _map(self, parsed: list) -> Iterator[ev.AgentEvent]:
        forming = self._forming
        for p in parsed:
            if isinstance(p, ContentDelta):
                yield ev.AnswerDelta(p.text)
            elif isinstance(p, ParsedReasoning):
                yield ev.ReasoningDelta(p.text)
            elif isinstance(p, ToolCallStarted):
                forming[p.index] = {"name": None, "arguments": {}}
                yield ev.ToolCallForming(p.index, None, {})
            elif isinstance(p, (ToolCallName, ToolCallArgument)):
                entry = forming.setdefault(p.index, {"name": None, "arguments": {}})
                if isinstance(p, ToolCallName):
                    entry["name"] = p.name
                else:
                    entry["arguments"][p.name] = p.value_so_far
                yield ev.ToolCallForming(p.index, entry["name"], dict(entry["arguments"]))
            elif isinstance(p, ToolCallFailed):
                forming.pop(p.index, None)
            # ToolCallFinished: the call is announced by ToolCallRequested once the reply is complete
