"""The conversation as the user sees it: an ordered list of messages, independent of any UI.

Reasoning is kept apart from the answer (Qwen 3.5's template drops earlier turns' reasoning
from the prompt anyway, and the UI shows it collapsed).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None  # for assistant messages: stop, length, cancelled, error
    tool_calls: list | None = None  # assistant messages that called tools (template format)

    @classmethod
    def from_template(cls, entry: dict) -> Message:
        return cls(entry["role"], entry.get("content") or "", entry.get("reasoning_content") or "",
                   tool_calls=entry.get("tool_calls"))


@dataclass
class Conversation:
    system_prompt: str | None = None
    messages: list[Message] = field(default_factory=list)

    def add_user(self, text: str) -> Message:
        message = Message("user", text)
        self.messages.append(message)
        return message

    def add_assistant(self) -> Message:
        message = Message("assistant")
        self.messages.append(message)
        return message

    def clear(self) -> None:
        self.messages.clear()

    def for_template(self) -> list[dict]:
        """Messages for the chat template: finished turns only, empty cancelled answers dropped."""
        out: list[dict] = []
        if self.system_prompt:
            out.append({"role": "system", "content": self.system_prompt})
        for m in self.messages:
            if m.role == "assistant" and not m.content and not m.tool_calls and m.finish_reason in ("cancelled", "error"):
                continue
            entry = {"role": m.role, "content": m.content}
            if m.role == "assistant" and m.reasoning:
                entry["reasoning_content"] = m.reasoning
            if m.tool_calls:
                entry["tool_calls"] = m.tool_calls
            out.append(entry)
        # A trailing unanswered assistant placeholder is not history.
        if out and out[-1]["role"] == "assistant" and not out[-1]["content"] and not out[-1].get("tool_calls"):
            out.pop()
        return out

    @property
    def last_answer(self) -> Message | None:
        for m in reversed(self.messages):
            if m.role == "assistant" and m.content:
                return m
        return None
