"""What `Agent.run()` yields, in order, for whoever drives it (UI, headless, tests).

Per step (one generation): `AnswerDelta` / `ReasoningDelta` / `ToolCallForming` while the model
writes, then `StepFinished`; then, for each call in the reply, `ToolCallRequested` ->
`ToolCallDecided` (not for an unknown tool) -> `ToolCallResult`. `Notice`s may come at any time.
The last event is always `AgentFinished`, whose `messages` is the whole conversation to keep.
A `ToolCallForming` index with no `ToolCallRequested` after the step's `StepFinished` was a
malformed call (its text arrives as answer text; the model is told and a `Notice` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from qwen_tui.agent.parser import ToolCall
from qwen_tui.engine.events import Finished
from qwen_tui.tools.runner import ToolResult


@dataclass(frozen=True)
class AnswerDelta:
    """A piece of the answer (text outside reasoning and tool calls)."""

    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning (`<think>` block)."""

    text: str


@dataclass(frozen=True)
class ToolCallForming:
    """A call being written: `name` is None until known; `arguments_so_far` maps each argument
    seen so far to its raw text (still being written) or, once complete, its final value."""

    index: int
    name: str | None
    arguments_so_far: dict[str, Any]


@dataclass(frozen=True)
class ToolCallRequested:
    """The model asked for this call; `tool` is None when no tool has that name."""

    call: ToolCall
    tool: Any  # qwen_tui.tools.Tool | None


@dataclass(frozen=True)
class ToolCallDecided:
    """Whether the call runs. `answer`: what the user said when asked ("once", "session",
    "project", "deny"), None when the policy decided alone."""

    call: ToolCall
    verdict: Literal["allow", "deny"]
    reason: str
    answer: str | None = None


@dataclass(frozen=True)
class ToolCallResult:
    """What the call gave (`result.denied` when refused; `ok` False when it failed or was skipped)."""

    call: ToolCall
    result: ToolResult


@dataclass(frozen=True)
class Notice:
    """Something to show the user that is not part of the answer."""

    text: str


@dataclass(frozen=True)
class StepFinished:
    """One generation ended (`finished.reason`: stop, length, cancelled, error). `tool_calls`: the
    calls its reply made, in the chat template's format (stored with the message)."""

    step: int
    finished: Finished
    tool_calls: list = field(default_factory=list)


@dataclass(frozen=True)
class AgentFinished:
    """The run is over. reason: "answered", "step_limit", "cancelled" or "error" (see `error`)."""

    reason: Literal["answered", "step_limit", "cancelled", "error"]
    messages: list[dict] = field(default_factory=list)
    error: str | None = None

    @property
    def answer(self) -> str:
        """The final assistant message's content ("" when the run ended without one)."""
        last = self.messages[-1] if self.messages else {}
        return last.get("content") or "" if last.get("role") == "assistant" and not last.get("tool_calls") else ""


AgentEvent = (
    AnswerDelta | ReasoningDelta | ToolCallForming | ToolCallRequested | ToolCallDecided
    | ToolCallResult | Notice | StepFinished | AgentFinished
)
