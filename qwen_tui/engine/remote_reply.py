"""One streamed chat answer from an OpenAI-compatible server, chunk by chunk (no I/O here).

`RemoteEngine` reads the SSE `data` payloads off the connection and feeds them to `ChatStream`,
which maps `delta.content` to TextDelta (a `<think>` block inside it is split off as reasoning,
for servers that don't), `delta.reasoning_content` / `delta.reasoning` to ReasoningDelta, and
accumulates native `tool_calls` deltas by index; it also keeps what the server said about usage
and timings, and the text, for counting when the server reports no usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from qwen_tui.engine.events import Event, ReasoningDelta, ToolCallRequest
from qwen_tui.engine.reasoning import ReasoningSplitter
from qwen_tui.engine.remote_wire import add_call_delta, error_text


class StreamFailed(Exception):
    """The stream itself says the answer failed (the message is one line, fit to show)."""


class ChatStream:
    def __init__(self) -> None:
        self.splitter = ReasoningSplitter()
        self.calls: dict[int, dict] = {}
        self.text_parts: list[str] = []
        self.usage: dict | None = None
        self.timings: dict | None = None
        self.reason: str | None = None  # the last finish_reason
        self.n_chunks = 0  # chunks that carried text or calls: about one per token
        self.first: float | None = None  # monotonic time of the first such chunk
        self.last: float | None = None
        self.done = False  # "[DONE]" was seen

    def feed(self, payload: str) -> Iterator[Event]:
        """The events of one SSE payload; raises StreamFailed for an error chunk or non-JSON."""
        if payload.strip() == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise StreamFailed(f"the server sent something that is not JSON: {error_text(payload, 80)}") from None
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            yield from self.splitter.flush()  # what came before the failure is kept
            raise StreamFailed(f"the server failed mid-answer: {error_text(json.dumps(chunk))}")
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            pieces: list[Event | None] = []
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought:
                pieces.append(ReasoningDelta(thought))
            content = delta.get("content") if "delta" in choice else choice.get("text")
            if content:
                pieces += self.splitter.feed(content)
            for tc in delta.get("tool_calls") or []:
                add_call_delta(self.calls, tc)
                pieces.append(None)  # counts as a chunk; the call is announced at the end
            if pieces:
                now = time.monotonic()
                self.first = self.first or now
                self.last = now
                self.n_chunks += 1
                self.text_parts += [thought or "", content or ""]
            for event in pieces:
                if event is not None:
                    yield event
            self.reason = choice.get("finish_reason") or self.reason

    def flush(self) -> Iterator[Event]:
        """Text the reasoning splitter still holds (a tag that never completed)."""
        yield from self.splitter.flush()

    def tool_calls(self) -> Iterator[ToolCallRequest]:
        """The native calls, complete, in index order (their arguments count as generated text)."""
        for index in sorted(self.calls):
            c = self.calls[index]
            self.text_parts.append(c["arguments"])
            yield ToolCallRequest(index, c["name"], c["arguments"], c["id"])

    @property
    def text(self) -> str:
        return "".join(self.text_parts)
