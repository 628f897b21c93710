"""The plain data the session store hands out, and the small rules for ids and titles."""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_tui.store.db import StoreError

KINDS = ("chat", "headless")
TITLE_LENGTH = 60
SUMMARY_ROLE = "summary"  # a compaction summary; the context builder decides how to present it
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case: sorts like time
_id_lock = threading.Lock()
_last_id_ms = 0


class SessionNotFound(StoreError):
    """No session matches the id, prefix or `last` that was given."""


class AmbiguousSession(StoreError):
    """An id prefix matches more than one session."""


@dataclass(frozen=True)
class SessionSummary:
    id: str
    title: str | None
    workspace: str
    model: str
    kind: str
    created: float  # unix seconds
    updated: float  # unix seconds: the last write of any of its messages
    message_count: int


@dataclass(frozen=True)
class Session(SessionSummary):
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    id: int
    session_id: str
    position: int
    role: str
    content: str
    reasoning: str
    tool_calls: list | None
    tool_call_id: str | None
    tool_name: str | None
    finish_reason: str | None  # None: still streaming, or interrupted before it finished
    usage: dict | None
    timings: dict | None
    compacted_by: int | None  # the summary message that replaces this one in the context
    created: float
    pinned: int = 0  # 1: kept verbatim by compaction (schema 2)
    summary_kind: str | None = None  # summaries: "summary" (of the rows they replace) or "elision" (schema 2)
    images: list | None = None  # attached image files, absolute paths (schema 3)


@dataclass(frozen=True)
class SessionRecord:
    session: Session
    messages: list[Message]  # every message in order, compacted ones included

    @property
    def active_messages(self) -> list[Message]:
        """The messages the model sees: compacted originals replaced by their summaries."""
        return [m for m in self.messages if m.compacted_by is None]


@dataclass(frozen=True)
class SearchHit:
    session_id: str
    session_title: str | None
    message_id: int
    role: str
    snippet: str  # the match marked with ** on both sides


def new_session_id() -> str:
    """12 characters: 50 bits of milliseconds (so ids sort by creation) + 10 random bits."""
    global _last_id_ms
    with _id_lock:
        millis = max(int(time.time() * 1000), _last_id_ms + 1)
        _last_id_ms = millis
    value = (millis << 10) | secrets.randbits(10)
    return "".join(ID_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(12)))


def workspace_key(workspace: str | Path) -> str:
    return str(Path(workspace).expanduser().resolve())


def default_title(text: str) -> str:
    words = " ".join(text.split())
    if len(words) <= TITLE_LENGTH:
        return words
    head = words[:TITLE_LENGTH]
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip(" ,.;:") + "…"


def to_json(value: Any) -> str | None:
    # default=str: an odd value (a Path, a datetime) is kept as text rather than lost.
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
