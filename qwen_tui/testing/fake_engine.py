"""A scripted engine with LocalEngine's interface, for UI logic tests (not a substitute for the
real-model tests). It streams given replies at a given rate and honours cancel()."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Event, Finished, Notice, ReasoningDelta, TextDelta, Timings, Usage
from qwen_tui.engine.local import ModelInfo
from qwen_tui.engine.resources import ThreadPlan


class FakeEngine:
    def __init__(
        self,
        replies: list | None = None,  # per request (cycled): str, (reasoning, str), or callable(request) -> either
        *,
        reasoning: str = "",
        tokens_per_s: float = 0.0,  # 0: as fast as possible
        load_seconds: float = 0.0,
        load_error: str | None = None,
        crash_on_turn: int | None = None,
        chunk: int = 4,
        n_ctx: int = 262_144,
    ) -> None:
        self.replies = replies or ["Hello! This is a **scripted** answer."]
        self.reasoning = reasoning
        self.tokens_per_s = tokens_per_s
        self.load_seconds = load_seconds
        self.load_error = load_error
        self.crash_on_turn = crash_on_turn
        self.chunk = chunk
        self.n_ctx = n_ctx
        self.info: ModelInfo | None = None
        self.requests: list[dict] = []
        self._cancel = threading.Event()
        self.closed = False

    def load(self, progress=None) -> ModelInfo:
        steps = 10
        for i in range(steps + 1):
            if progress:
                progress(i / steps)
            time.sleep(self.load_seconds / steps)
        if self.load_error:
            raise EngineError(self.load_error)
        self.info = ModelInfo(
            path=Path("fake.gguf"), name="fake-model", architecture="qwen35", file_size=500_000_000, quant="Q4_K",
            n_params=800_000_000, n_ctx=self.n_ctx, n_ctx_train=262_144, context_reason="test",
            threads=ThreadPlan(1, 1, "test"), n_gpu_layers=0, use_extra_bufts=False, chat_template=None,
        )
        return self.info

    def cancel(self) -> None:
        self._cancel.set()

    # A stand-in tokenizer (words, punctuation, whitespace runs and <|special|> tokens), so token
    # accounting and the context meter can be tested with this engine too.
    _TOKEN = re.compile(r"<\|[a-z_]+\|>|\w+|[^\w\s]|\s+")

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        return [hash(t) & 0xFFFF for t in self._TOKEN.findall(text)]

    def render(self, messages: list[dict], *, tools: list[dict] | None = None, thinking: bool | None = None) -> str:
        from qwen_tui.engine.template import render_chat

        return render_chat(None, messages, tools=tools, thinking=thinking)

    def close(self) -> None:
        self.closed = True

    def generate(self, messages=None, *, prompt=None, tools=None, thinking=None, max_tokens=4096, sampling=None) -> Iterator[Event]:
        turn = len(self.requests)
        self.requests.append({"messages": messages, "thinking": thinking, "tools": tools, "sampling": sampling,
                              "max_tokens": max_tokens})
        self._cancel.clear()
        if self.crash_on_turn == turn:
            yield Notice("llama.cpp crashed (SIGSEGV) while generating. The model was restarted.")
            yield Finished("error", Usage(10, 10, 0), Timings(0, 0, 0), error="llama.cpp crashed (SIGSEGV) while generating")
            return
        reply = self.replies[turn % len(self.replies)]
        if callable(reply):  # scripted per request: reply(request) -> str
            reply = reply(self.requests[-1])
        reasoning = self.reasoning
        if isinstance(reply, tuple):  # (reasoning, text) for this request
            reasoning, reply = reply
        delay = 1.0 / self.tokens_per_s if self.tokens_per_s else 0.0
        n = 0
        for kind, text in (("reasoning", reasoning if thinking is not False else ""), ("text", reply)):
            for i in range(0, len(text), self.chunk):
                if self._cancel.is_set():
                    yield Finished("cancelled", Usage(10, 10, n), Timings(1, 1, 1))
                    return
                piece = text[i : i + self.chunk]
                yield ReasoningDelta(piece) if kind == "reasoning" else TextDelta(piece)
                n += 1
                if delay:
                    time.sleep(delay)
        # Simulated, not measured, timings: screens that show tok/s stay identical run to run.
        simulated_ms = n * (1000.0 / self.tokens_per_s if self.tokens_per_s else 10.0)
        yield Finished("stop", Usage(100 + 20 * turn, 100, n), Timings(5, simulated_ms, 5))
