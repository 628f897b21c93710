"""The conversation as the user sees it: an ordered list of messages, independent of any UI.

Reasoning is kept apart from the answer (Qwen 3.5's template drops earlier turns' reasoning
from the prompt anyway, and the UI shows it collapsed).

Compaction (qwen_tui/context/compaction.py) changes what the model sees, never what is lost: a
summary message (`kind="summary"`) keeps the messages it stands for in `replaced`, and a message
whose text was elided or truncated keeps its full text in `original`. Messages changed by the
same compaction share its number (`compaction`), so it can be undone as one.
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
    pinned: bool = False  # kept verbatim by compaction
    kind: str = ""  # "" or "summary": a compaction summary, sent to the model as a marked user message
    original: str | None = None  # the full text, when compaction elided or truncated `content`
    replaced: list[Message] = field(default_factory=list)  # a summary: the messages it stands for
    compaction: int | None = None  # the compaction that made this message what it is
    store_id: int | None = None  # its row in the session store, when known
    images: list[str] = field(default_factory=list)  # user messages: attached image files (engine/images.py)

    @classmethod
    def from_template(cls, entry: dict) -> Message:
        return cls(entry["role"], entry.get("content") or "", entry.get("reasoning_content") or "",
                   tool_calls=entry.get("tool_calls"), original=entry.get("_original"),
                   compaction=entry.get("_compaction"), images=list(entry.get("images") or []))

    def for_template(self) -> dict:
        if self.kind == "summary":
            return {"role": "user", "content": SUMMARY_HEADER + self.content}
        entry: dict = {"role": self.role, "content": self.content}
        if self.role == "assistant" and self.reasoning:
            entry["reasoning_content"] = self.reasoning
        if self.tool_calls:
            entry["tool_calls"] = self.tool_calls
        if self.images:
            entry["images"] = list(self.images)
        return entry


SUMMARY_HEADER = "[Summary of the earlier conversation, written when it was compacted to fit the context window]\n"


@dataclass
class Conversation:
    system_prompt: str | None = None
    messages: list[Message] = field(default_factory=list)

    def add_user(self, text: str, images: list[str] | None = None) -> Message:
        message = Message("user", text, images=list(images or []))
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
            out.append(m.for_template())
        # A trailing unanswered assistant placeholder is not history.
        if out and out[-1]["role"] == "assistant" and not out[-1]["content"] and not out[-1].get("tool_calls"):
            out.pop()
        return out

    # -- exchanges and compactions --------------------------------------------------------------

    def last_user_index(self) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "user" and self.messages[i].kind != "summary":
                return i
        return None

    def drop_last_exchange(self) -> list[Message]:
        """Remove the last user message and everything after it (its answer, tool calls); return them."""
        i = self.last_user_index()
        if i is None:
            return []
        dropped = self.messages[i:]
        del self.messages[i:]
        return dropped

    def compaction_numbers(self) -> list[int]:
        """The compactions in effect, oldest first."""
        return sorted({m.compaction for m in self.messages if m.compaction is not None})

    def next_compaction_number(self) -> int:
        numbers = self.compaction_numbers()
        nested = [r.compaction for m in self.messages for r in m.replaced if r.compaction is not None]
        return max([0, *numbers, *nested]) + 1

    def compacted(self, number: int) -> list[Message]:
        """The messages compaction `number` made (summaries, elided and truncated messages)."""
        return [m for m in self.messages if m.compaction == number]

    def undo_compaction(self, number: int | None = None) -> list[Message]:
        """Undo compaction `number` (default: the latest): summaries give back the messages they
        replaced, elided and truncated messages get their full text back. Returns the messages
        it changed (the summaries, and the shortened messages now restored)."""
        numbers = self.compaction_numbers()
        if number is None:
            if not numbers:
                return []
            number = numbers[-1]
        changed: list[Message] = []

        def restore(messages: list[Message]) -> list[Message]:
            out: list[Message] = []
            for m in messages:
                if m.compaction != number:
                    out.append(m)
                elif m.kind == "summary":
                    changed.append(m)
                    out.extend(restore(m.replaced))  # messages it elided before summarising them too
                else:
                    changed.append(m)
                    out.append(m)
                    if m.original is not None:
                        m.content, m.original = m.original, None
                    m.compaction = None
            return out

        self.messages[:] = restore(self.messages)
        return changed

    @property
    def last_answer(self) -> Message | None:
        for m in reversed(self.messages):
            if m.role == "assistant" and m.content:
                return m
        return None
