"""Stored sessions: every chat and headless run kept in one SQLite file, never lost.

See docs/sessions.md for the schema, the durability guarantees and the `qwen-tui sessions` CLI.
This package imports neither textual nor llama_cpp.
"""

from qwen_tui.store.db import SCHEMA_VERSION, StoreBusy, StoreDamaged, StoreError, default_path
from qwen_tui.store.records import (
    AmbiguousSession, Message, SearchHit, Session, SessionNotFound, SessionRecord, SessionSummary,
)
from qwen_tui.store.sessions import SessionStore

__all__ = [
    "SCHEMA_VERSION", "AmbiguousSession", "Message", "SearchHit", "Session", "SessionNotFound",
    "SessionRecord", "SessionStore", "SessionSummary", "StoreBusy", "StoreDamaged", "StoreError",
    "default_path",
]
