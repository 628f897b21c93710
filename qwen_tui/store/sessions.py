"""SessionStore: chat sessions and their messages, written as they happen.

Streaming: `append()` keeps deltas in memory and writes them (all pending messages, one
transaction) once `flush_interval` (1 s) has passed since the last write; the first delta after a
pause is written at once. `append()` only notices time when it is called, so the caller must
also call `flush()` (or `flush_if_due()`) on a timer, e.g. every second from the UI, or text
that arrived just before a pause in the stream waits in memory. Every other write
(`add_message`, `finish_message`, ...) carries the pending deltas in its own transaction.

Together with db.py's WAL set-up: after a crash or kill -9, a message holds at least all text
that was appended 1 s before the last `append()`/`flush()` call that returned.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from qwen_tui.store.db import Database, StoreError
from qwen_tui.store.records import (
    ID_ALPHABET, KINDS, SUMMARY_ROLE, AmbiguousSession, Message, SearchHit, Session,
    SessionNotFound, SessionRecord, SessionSummary, to_json, from_json, default_title,
    new_session_id, workspace_key,
)

T = TypeVar("T")
_SUMMARY_SQL = """
    SELECT s.id, s.title, s.workspace, s.model, s.kind, s.created, s.updated,
           (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count
    FROM sessions s"""


def _summary(row: sqlite3.Row) -> SessionSummary:
    return SessionSummary(**{key: row[key] for key in row.keys()})


class SessionStore:
    """Sessions in one SQLite file. Safe to share between threads; see the module docstring.

    `problem` is a sentence for the UI when the file had to be replaced or cannot be used.
    """

    def __init__(self, path: Path | str | None = None, *, flush_interval: float = 1.0,
                 busy_timeout: float = 5.0, retry_for: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = Database(path, busy_timeout=busy_timeout, retry_for=retry_for)
        self.flush_interval = flush_interval
        self._clock = clock
        self._pending: dict[int, tuple[list[str], list[str]]] = {}
        self._last_flush = float("-inf")
        self._lock = threading.RLock()

    @property
    def problem(self) -> str | None:
        return self.db.problem

    @property
    def path(self) -> Path:
        return self.db.path

    def close(self) -> None:
        with self._lock:
            try:
                self.flush()
            finally:
                self.db.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------
    def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """One transaction: the pending streamed deltas, then `change`."""
        with self._lock:
            pending = self._pending

            def transaction(connection: sqlite3.Connection) -> T:
                now = time.time()
                for message_id, (content, reasoning) in pending.items():
                    connection.execute(
                        "UPDATE messages SET content = content || ?, reasoning = reasoning || ? "
                        "WHERE id = ?", ("".join(content), "".join(reasoning), message_id))
                if pending:
                    marks = ",".join("?" * len(pending))
                    connection.execute(
                        f"UPDATE sessions SET updated = ? WHERE id IN "
                        f"(SELECT session_id FROM messages WHERE id IN ({marks}))",
                        (now, *pending))
                return change(connection)

            result = self.db.write(transaction)
            if pending:  # kept until the commit succeeded: a failed write loses nothing
                self._pending = {}
                self._last_flush = self._clock()
            return result

    def create_session(self, workspace: str | Path, model: str, settings: dict | None = None,
                       title: str | None = None, kind: str = "chat") -> str:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        values = (workspace_key(workspace), model, to_json(settings or {}), kind, time.time())

        def insert(connection: sqlite3.Connection) -> str:
            for _ in range(8):  # ids collide only when two processes share a millisecond
                session_id = new_session_id()
                try:
                    connection.execute(
                        "INSERT INTO sessions (id, title, workspace, model, settings, kind, "
                        "created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                        (session_id, title, *values))
                except sqlite3.IntegrityError:
                    continue
                return session_id
            raise StoreError("could not choose a unique session id")

        return self._write(insert)

    def add_message(self, session_id: str, role: str, content: str = "", reasoning: str = "",
                    tool_calls: list | None = None, tool_call_id: str | None = None,
                    tool_name: str | None = None, finish_reason: str | None = None,
                    usage: dict | None = None, timings: dict | None = None,
                    images: list | None = None) -> int:
        def insert(connection: sqlite3.Connection) -> int:
            now = time.time()
            self._touch(connection, session_id, now)
            position = connection.execute(
                "SELECT coalesce(max(position), 0) + 1 FROM messages WHERE session_id = ?",
                (session_id,)).fetchone()[0]
            cursor = connection.execute(
                "INSERT INTO messages (session_id, position, role, content, reasoning, "
                "tool_calls, tool_call_id, tool_name, finish_reason, usage, timings, created, images) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, position, role, content, reasoning, to_json(tool_calls),
                 tool_call_id, tool_name, finish_reason, to_json(usage), to_json(timings), now,
                 to_json(images or None)))
            if role == "user" and content.strip():
                self._set_title_if_missing(connection, session_id, content)
            return cursor.lastrowid

        return self._write(insert)

    def append(self, message_id: int, content: str = "", reasoning: str = "") -> bool:
        """Buffer a streamed delta; returns True when this call wrote to disk."""
        with self._lock:
            if content or reasoning:
                parts = self._pending.setdefault(message_id, ([], []))
                parts[0].append(content)
                parts[1].append(reasoning)
            return self.flush_if_due()

    def flush_if_due(self) -> bool:
        with self._lock:
            if self._pending and self._clock() - self._last_flush >= self.flush_interval:
                self.flush()
                return True
            return False

    def flush(self) -> None:
        """Write every buffered delta in one transaction."""
        with self._lock:
            if self._pending:
                self._write(lambda connection: None)

    def finish_message(self, message_id: int, finish_reason: str, usage: dict | None = None,
                       timings: dict | None = None, tool_calls: list | None = None) -> None:
        """Commit a streamed message; `tool_calls` are known only once the reply is complete."""
        def finish(connection: sqlite3.Connection) -> None:
            cursor = connection.execute(
                "UPDATE messages SET finish_reason = ?, usage = coalesce(?, usage), "
                "timings = coalesce(?, timings), tool_calls = coalesce(?, tool_calls) WHERE id = ?",
                (finish_reason, to_json(usage), to_json(timings), to_json(tool_calls), message_id))
            if cursor.rowcount == 0:
                raise StoreError(f"no message with id {message_id}")
        self._write(finish)

    def rename(self, session_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("a title cannot be empty")
        self._write(lambda c: self._update_session(c, session_id, "title = ?", (title,)))

    def set_model(self, session_id: str, model: str, settings: dict | None = None) -> None:
        self._write(lambda c: self._update_session(
            c, session_id, "model = ?, settings = coalesce(?, settings)", (model, to_json(settings))))

    def set_title_if_missing(self, session_id: str, text: str) -> bool:
        return self._write(lambda c: self._set_title_if_missing(c, session_id, text))

    def delete(self, session_id: str) -> None:
        def remove(connection: sqlite3.Connection) -> None:
            if connection.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 0:
                raise SessionNotFound(f"no session with id {session_id}")
        self._write(remove)

    def record_compaction(self, session_id: str, summary_text: str,
                          replaced_message_ids: Iterable[int], kind: str = "summary") -> int:
        """Add a summary that stands in for `replaced_message_ids`; the originals are kept.
        `kind`: "summary" (the model's summary of them) or "elision" (one message, its text
        elided or cut; shown in that message's role)."""
        if kind not in ("summary", "elision"):
            raise StoreError(f"unknown compaction kind {kind!r}")
        replaced = sorted(set(replaced_message_ids))
        if not replaced:
            raise StoreError("a compaction must replace at least one message")

        def compact(connection: sqlite3.Connection) -> int:
            marks = ",".join("?" * len(replaced))
            rows = connection.execute(
                f"SELECT id, position FROM messages WHERE session_id = ? AND id IN ({marks}) "
                "AND compacted_by IS NULL", (session_id, *replaced)).fetchall()
            if len(rows) != len(replaced):
                raise StoreError("some of those messages are not in this session or are "
                                 "already compacted")
            now = time.time()
            self._touch(connection, session_id, now)
            summary_id = connection.execute(
                "INSERT INTO messages (session_id, position, role, content, finish_reason, "
                "created, summary_kind) VALUES (?, ?, ?, ?, 'stop', ?, ?)",
                (session_id, min(r[1] for r in rows), SUMMARY_ROLE, summary_text, now, kind)).lastrowid
            connection.execute(f"UPDATE messages SET compacted_by = ? WHERE id IN ({marks})",
                               (summary_id, *replaced))
            return summary_id

        return self._write(compact)

    def undo_compaction(self, summary_message_id: int) -> list[int]:
        """Remove a summary and bring back the messages it replaced; returns their ids."""
        def undo(connection: sqlite3.Connection) -> list[int]:
            row = connection.execute("SELECT session_id, role FROM messages WHERE id = ?",
                                     (summary_message_id,)).fetchone()
            if row is None or row[1] != SUMMARY_ROLE:
                raise StoreError(f"message {summary_message_id} is not a compaction summary")
            restored = [r[0] for r in connection.execute(
                "SELECT id FROM messages WHERE compacted_by = ? ORDER BY position",
                (summary_message_id,))]
            connection.execute("UPDATE messages SET compacted_by = NULL WHERE compacted_by = ?",
                               (summary_message_id,))
            connection.execute("DELETE FROM messages WHERE id = ?", (summary_message_id,))
            self._touch(connection, row[0], time.time())
            return restored
        return self._write(undo)

    def delete_from(self, session_id: str, message_id: int) -> int:
        """Delete message `message_id` and every later one of the session (undo, edit and
        regenerate of the last exchange); returns how many rows went."""
        def delete(connection: sqlite3.Connection) -> int:
            row = connection.execute("SELECT position FROM messages WHERE id = ? AND session_id = ?",
                                     (message_id, session_id)).fetchone()
            if row is None:
                raise StoreError(f"message {message_id} is not in session {session_id}")
            doomed = [r[0] for r in connection.execute(
                "SELECT id FROM messages WHERE session_id = ? AND position >= ?", (session_id, row[0]))]
            marks = ",".join("?" * len(doomed))
            # the originals of a deleted summary go with it (they were after it too, or it stood for them)
            doomed += [r[0] for r in connection.execute(
                f"SELECT id FROM messages WHERE compacted_by IN ({marks})", doomed)]
            marks = ",".join("?" * len(doomed))
            connection.execute(f"UPDATE messages SET compacted_by = NULL WHERE id IN ({marks})", doomed)
            connection.execute(f"DELETE FROM messages WHERE id IN ({marks})", doomed)
            self._touch(connection, session_id, time.time())
            return len(set(doomed))
        return self._write(delete)

    def set_pinned(self, message_id: int, pinned: bool = True) -> None:
        """Pinned messages are never compacted."""
        def pin(connection: sqlite3.Connection) -> None:
            if connection.execute("UPDATE messages SET pinned = ? WHERE id = ?",
                                  (1 if pinned else 0, message_id)).rowcount == 0:
                raise StoreError(f"no message {message_id}")
        self._write(pin)

    @staticmethod
    def _touch(connection: sqlite3.Connection, session_id: str, now: float) -> None:
        if connection.execute("UPDATE sessions SET updated = ? WHERE id = ?",
                              (now, session_id)).rowcount == 0:
            raise SessionNotFound(f"no session with id {session_id}")

    @staticmethod
    def _update_session(connection: sqlite3.Connection, session_id: str, assignments: str,
                        values: tuple) -> None:
        if connection.execute(f"UPDATE sessions SET {assignments}, updated = ? WHERE id = ?",
                              (*values, time.time(), session_id)).rowcount == 0:
            raise SessionNotFound(f"no session with id {session_id}")

    @staticmethod
    def _set_title_if_missing(connection: sqlite3.Connection, session_id: str, text: str) -> bool:
        title = default_title(text)
        return bool(title) and connection.execute(
            "UPDATE sessions SET title = ? WHERE id = ? AND (title IS NULL OR title = '')",
            (title, session_id)).rowcount == 1

    # -- reading -----------------------------------------------------------------------------
    def list_sessions(self, workspace: str | Path | None = None,
                      limit: int = 100) -> list[SessionSummary]:
        """Most recently updated first; all workspaces when `workspace` is None."""
        where, params = ("", ()) if workspace is None else (
            " WHERE s.workspace = ?", (workspace_key(workspace),))
        rows = self.db.read(f"{_SUMMARY_SQL}{where} ORDER BY s.updated DESC, s.id DESC LIMIT ?",
                            (*params, limit))
        return [_summary(row) for row in rows]

    def last_session(self, workspace: str | Path | None = None) -> SessionSummary | None:
        sessions = self.list_sessions(workspace, limit=1)
        return sessions[0] if sessions else None

    def resolve(self, reference: str, workspace: str | Path | None = None) -> str:
        """A full id, a unique id prefix, or `last` (in `workspace`, or anywhere) -> the id."""
        wanted = reference.strip().lower()
        if wanted == "last":
            last = self.last_session(workspace)
            if last is None:
                where = f" for {workspace_key(workspace)}" if workspace is not None else ""
                raise SessionNotFound(f"there are no sessions{where} yet")
            return last.id
        if not wanted or any(ch not in ID_ALPHABET for ch in wanted):
            raise SessionNotFound(f"no session with id {reference!r}")
        rows = self.db.read("SELECT id, title FROM sessions WHERE id >= ? AND id < ? "
                            "ORDER BY id LIMIT 6", (wanted, wanted + "~"))
        if any(row["id"] == wanted for row in rows):
            return wanted
        if len(rows) == 1:
            return rows[0]["id"]
        if not rows:
            raise SessionNotFound(f"no session with id {reference!r}")
        shown = ", ".join(row["id"] for row in rows[:5])
        raise AmbiguousSession(f"{reference!r} matches several sessions ({shown}"
                               f"{', ...' if len(rows) > 5 else ''}); give more of the id")

    def load(self, session_id: str) -> SessionRecord:
        self.flush()  # so that our own streamed text is included
        rows = self.db.read(f"{_SUMMARY_SQL} WHERE s.id = ?", (session_id,))
        if not rows:
            raise SessionNotFound(f"no session with id {session_id}")
        settings = self.db.read("SELECT settings FROM sessions WHERE id = ?", (session_id,))
        session = Session(**vars(_summary(rows[0])), settings=from_json(settings[0][0]) or {})
        # Ties in position are a summary placed where its first original was: newest first.
        message_rows = self.db.read(
            "SELECT * FROM messages WHERE session_id = ? ORDER BY position, id DESC",
            (session_id,))
        messages = [Message(**{**dict(row), **{key: from_json(row[key]) for key in
                                                ("tool_calls", "usage", "timings", "images")}})
                    for row in message_rows]
        return SessionRecord(session, messages)

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        """Full-text search over message text and reasoning, best matches first.

        Words match whole words (the last one also as a prefix), ignoring case and accents.
        When that finds nothing (e.g. Chinese or Japanese, written without spaces), the text
        is looked for as a plain substring instead.
        """
        self.flush()
        words = re.findall(r"\w+", text)
        hits: list[sqlite3.Row] = []
        if words:
            query = " ".join(f'"{word}"' for word in words) + "*"
            hits = self.db.read(
                "SELECT m.session_id, s.title AS session_title, m.id AS message_id, m.role, "
                "snippet(messages_fts, -1, '**', '**', '…', 12) AS snippet "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN sessions s ON s.id = m.session_id "
                "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?", (query, limit))
        if hits:
            return [SearchHit(**dict(row)) for row in hits]
        return self._search_substring(text.strip(), limit)

    def _search_substring(self, needle: str, limit: int) -> list[SearchHit]:
        if not needle:
            return []
        rows = self.db.read(
            "SELECT m.session_id, s.title, m.id, m.role, m.content, m.reasoning FROM messages m "
            "JOIN sessions s ON s.id = m.session_id WHERE instr(lower(m.content), lower(?1)) "
            "OR instr(lower(m.reasoning), lower(?1)) ORDER BY m.id DESC LIMIT ?2",
            (needle, limit))
        hits = []
        for row in rows:
            source = row["content"] if needle.lower() in row["content"].lower() else row["reasoning"]
            start = max(source.lower().find(needle.lower()), 0)
            end = start + len(needle)
            before = source[max(0, start - 40):start]
            after = source[end:end + 40]
            snippet = (("…" if start > 40 else "") + before + "**" + source[start:end] + "**"
                       + after + ("…" if end + 40 < len(source) else ""))
            hits.append(SearchHit(row["session_id"], row["title"], row["id"], row["role"],
                                  " ".join(snippet.split())))
        return hits
