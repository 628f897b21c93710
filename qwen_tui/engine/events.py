"""What a generation yields, as small picklable dataclasses (they cross a process boundary)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning (Qwen 3.5's `<think>` block)."""

    text: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not an error (e.g. a recovered crash)."""

    text: str


@dataclass(frozen=True)
class ToolCallRequest:
    """A complete tool call the server parsed itself (OpenAI `tool_calls`; remote engines only).

    `arguments` is the JSON text as the server sent it; the agent validates it like a call the
    model wrote as text. Local engines never yield this: their calls are in the text."""

    index: int
    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int  # tokens in the prompt
    prompt_tokens_evaluated: int  # of those, how many llama.cpp had to process (the rest came from cache)
    completion_tokens: int


@dataclass(frozen=True)
class Timings:
    prompt_ms: float  # evaluating the prompt
    decode_ms: float  # generating the completion
    first_token_ms: float  # request start to first generated token

    @property
    def decode_tokens_per_s(self) -> float:
        return 0.0 if self.decode_ms <= 0 else 1000.0 / self.decode_ms

    def tokens_per_s(self, completion_tokens: int) -> float:
        return completion_tokens * 1000.0 / self.decode_ms if self.decode_ms > 0 else 0.0


@dataclass(frozen=True)
class Finished:
    """The last event of every generation.

    reason: "stop" (end of turn), "length" (max_tokens or context full), "cancelled", "error".
    """

    reason: str
    usage: Usage
    timings: Timings
    error: str | None = None
    extra: dict = field(default_factory=dict)


Event = TextDelta | ReasoningDelta | Notice | ToolCallRequest | Finished
