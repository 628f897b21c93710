"""The SQLite file behind stored sessions: opening, migrations, locking and damage recovery.

Durability: the file runs in WAL mode with `synchronous=NORMAL`. With WAL, a commit is in the
log before `COMMIT` returns, so a crash or `kill -9` of qwen-tui loses nothing that was
committed; only an OS crash or power cut can lose the last few commits (the WAL is fsynced at
checkpoints, not at every commit). That trade is what makes a commit per streamed second cheap.

Two qwen-tui instances may share the file. Every write runs in `BEGIN IMMEDIATE` (so a reader
never has to upgrade to a writer, which SQLite would refuse without waiting), SQLite itself waits
up to `busy_timeout`, and `Database.write`/`read` retry "database is locked"/"busy" errors for up
to `retry_for` seconds more, so users never see a lock error from a normal second instance.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from qwen_tui import paths

FILE_NAME = "sessions.sqlite3"
T = TypeVar("T")

# Migration i upgrades schema version i to i + 1. Append only: never edit a released entry
# (tests/store/fixtures/schema_v<N>.sql freezes each released version to upgrade from).
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 0 -> 1: sessions, messages, and full-text search kept in sync by triggers.
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        title TEXT,
        workspace TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL DEFAULT '{}',
        kind TEXT NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat', 'headless')),
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX sessions_by_workspace ON sessions (workspace, updated);
    CREATE INDEX sessions_by_updated ON sessions (updated);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL DEFAULT '',
        reasoning TEXT NOT NULL DEFAULT '',
        tool_calls TEXT,
        tool_call_id TEXT,
        tool_name TEXT,
        finish_reason TEXT,
        usage TEXT,
        timings TEXT,
        compacted_by INTEGER REFERENCES messages (id) ON DELETE SET NULL,
        created REAL NOT NULL
    );
    CREATE INDEX messages_by_session ON messages (session_id, position);
    CREATE INDEX messages_by_compaction ON messages (compacted_by);
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        content, reasoning, content='messages', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content, reasoning)
        VALUES (new.id, new.content, new.reasoning);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content, reasoning)
        VALUES ('delete', old.id, old.content, old.reasoning);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, reasoning ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content, reasoning)
        VALUES ('delete', old.id, old.content, old.reasoning);
        INSERT INTO messages_fts (rowid, content, reasoning)
        VALUES (new.id, new.content, new.reasoning);
    END;
    """,
    # 1 -> 2: context compaction (qwen_tui/context): pinned messages are never compacted; a
    # summary row says what it is ('summary': the model's summary of the rows it replaced,
    # 'elision': the same message with its text elided or cut, shown in that message's role).
    """
    ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN summary_kind TEXT;
    """,
    # 2 -> 3: images attached to a message (a JSON list of absolute file paths), so a resumed
    # session shows them and sends them to the model again.
    """
    ALTER TABLE messages ADD COLUMN images TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """A session-store failure with a message meant for the user."""


class StoreBusy(StoreError):
    """Another process kept the database locked for longer than we were willing to wait."""


class StoreDamaged(StoreError):
    """SQLite reported the file as corrupt while the app was running."""


def default_path() -> Path:
    return paths.data_dir() / FILE_NAME


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _is_damage(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def with_retry(action: Callable[[], T], retry_for: float) -> T:
    """Run `action`, retrying while SQLite says the database is locked or busy."""
    deadline = time.monotonic() + retry_for
    pause = 0.01
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise StoreBusy(
                    f"the session database stayed locked by another program for over "
                    f"{retry_for:g} s ({exc})"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


class Database:
    """One connection to the sessions file (or to memory, when the file cannot be used).

    `problem` is a sentence for the UI when something had to be repaired or given up on.
    """

    def __init__(self, path: Path | str | None = None, *, busy_timeout: float = 5.0,
                 retry_for: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.busy_timeout = busy_timeout
        self.retry_for = retry_for
        self.problem: str | None = None
        self.in_memory = False
        self._lock = threading.RLock()  # one connection shared by the app's threads
        self.connection = self._open_or_recover()

    @property
    def schema_version(self) -> int:
        return self.read("PRAGMA user_version")[0][0]

    # -- opening -----------------------------------------------------------------------------
    def _open_or_recover(self) -> sqlite3.Connection:
        try:
            return self._open(str(self.path))
        except StoreBusy as exc:
            self.problem = f"sessions are not being saved: {exc}"
        except _NewerSchema as exc:
            self.problem = (f"the session database {self.path} was written by a newer qwen-tui "
                            f"(schema {exc.version}, this one knows {SCHEMA_VERSION}); it was left "
                            "untouched and this session is not being saved")
        except _Damaged as exc:
            # Move the files before the connection closes: on close SQLite would delete the
            # -wal file (which may hold the latest commits) as if it were its own leftover.
            kept = self._move_aside()
            exc.connection.close()
            try:
                connection = self._open(str(self.path))
            except (sqlite3.Error, OSError, _Damaged) as again:
                if isinstance(again, _Damaged):
                    again.connection.close()
                self.problem = (f"the session database was damaged; it was kept as {kept}, but "
                                f"a fresh one could not be created ({again}); this session is "
                                "not being saved")
            else:
                self.problem = (f"the session database was damaged; it was kept as {kept} "
                                "and a fresh one started")
                return connection
        except (sqlite3.Error, OSError) as exc:
            self.problem = f"sessions are not being saved: cannot open {self.path} ({exc})"
        self.in_memory = True
        return self._open(":memory:")

    def _open(self, target: str) -> sqlite3.Connection:
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (see the module docstring).
        connection = sqlite3.connect(target, timeout=self.busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # Read first: a newer schema's file must be left exactly as it is.
            version = with_retry(
                lambda: connection.execute("PRAGMA user_version").fetchone()[0], self.retry_for)
            if version > SCHEMA_VERSION:
                raise _NewerSchema(version)
            with_retry(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone(),
                       self.retry_for)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            if version > 0:  # an empty file has nothing to check yet
                verdict = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
                if verdict != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict}")
            if version < SCHEMA_VERSION:
                with_retry(lambda: self._migrate(connection), self.retry_for)
        except sqlite3.DatabaseError as exc:
            if target != ":memory:" and _is_damage(exc):
                raise _Damaged(connection) from exc
            connection.close()
            raise
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the lock: a second instance may have migrated meanwhile.
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                if callable(step):
                    step(connection)
                else:
                    for statement in _split_sql(step):
                        connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _move_aside(self) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        count = 1
        while kept.exists():
            count += 1
            kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{count}")
        # The -wal/-shm files go along, named so that SQLite finds them next to the copy.
        for suffix in ("-wal", "-shm", ""):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{kept}{suffix}")
        return kept

    # -- use ---------------------------------------------------------------------------------
    def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in one IMMEDIATE transaction, retried as a whole while locked."""
        def attempt() -> T:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                result = change(self.connection)
                self.connection.execute("COMMIT")
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise
            return result
        with self._lock:
            return self._guard(lambda: with_retry(attempt, self.retry_for))

    def read(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        def attempt() -> list:
            with closing(self.connection.cursor()) as cursor:
                cursor.row_factory = sqlite3.Row
                return cursor.execute(sql, params).fetchall()
        with self._lock:
            return self._guard(lambda: with_retry(attempt, self.retry_for))

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except StoreError:
            raise
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise StoreDamaged(f"the session database is damaged ({exc}); it will be set "
                                   "aside and a fresh one started when qwen-tui next starts") from exc
            raise StoreError(f"the session database failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            try:
                # Cheap statistics upkeep; never wait for another instance's lock at quit.
                self.connection.execute("PRAGMA busy_timeout = 0")
                self.connection.execute("PRAGMA analysis_limit = 400")
                self.connection.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self.connection.close()


class _Damaged(Exception):
    """The file is not a database or is corrupt; carries the still-open connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        super().__init__("damaged")
        self.connection = connection


class _NewerSchema(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def _split_sql(script: str) -> list[str]:
    """Split a script into statements (executescript would COMMIT our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
