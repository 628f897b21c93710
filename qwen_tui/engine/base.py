"""What the app, the agent and headless mode need from an engine, as a Protocol.

Two implementations satisfy it: `LocalEngine` (engine/local.py: llama.cpp in a worker process)
and `RemoteEngine` (engine/remote.py: an OpenAI-compatible server over HTTP). The contract:

- `load(progress=None) -> ModelInfo`: connect/load; raises `EngineError` with a one-line message.
  `info` is the same ModelInfo afterwards (None before). `info.n_ctx` feeds the context meter.
- `generate(messages | prompt=..., tools, thinking, max_tokens, sampling)`: an iterator of
  `engine.events` events whose last one is always `Finished` (reason "stop" | "length" |
  "cancelled" | "error"; errors during a generation come back as Finished("error"), not raised).
  Text comes as `TextDelta`, reasoning as `ReasoningDelta`; tool calls are in the text (Qwen's
  `<tool_call>` XML, parsed by agent/parser.py) or, from servers that parse them, as
  `ToolCallRequest` events. One generation at a time.
- `cancel()`: from any thread; the running generation ends promptly with Finished("cancelled").
- `tokenize(text) -> list[int]`: token ids (RemoteEngine: the server's, or an estimate when the
  server has no tokenize endpoint: see `RemoteEngine.token_counts`).
- `render(messages, tools, thinking) -> str`: the prompt text, where the engine knows its template.
- `close()`: release the worker / connections. Engines are context managers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from qwen_tui.engine.events import Event
from qwen_tui.engine.model_info import ModelInfo
from qwen_tui.engine.params import Sampling


@runtime_checkable
class Engine(Protocol):
    info: ModelInfo | None

    def load(self, progress: Callable[[float], None] | None = None) -> ModelInfo: ...

    def generate(
        self,
        messages: list[dict] | None = None,
        *,
        prompt: str | None = None,
        tools: list[dict] | None = None,
        thinking: bool | None = None,
        max_tokens: int = 4096,
        sampling: Sampling | None = None,
    ) -> Iterator[Event]: ...

    def cancel(self) -> None: ...

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]: ...

    def render(self, messages: list[dict], *, tools: list[dict] | None = None, thinking: bool | None = None) -> str: ...

    def close(self) -> None: ...
