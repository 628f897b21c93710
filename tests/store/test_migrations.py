"""Every earlier schema opens and upgrades: today version 0 (an empty or missing file) and 1.

Each released schema version N has a frozen fixture, fixtures/schema_vN.sql, written with that
version's code. A new migration must leave every fixture readable, with nothing lost.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from qwen_tui.store import SCHEMA_VERSION, SessionStore
from qwen_tui.store.records import SUMMARY_ROLE

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_FIXTURES = sorted(FIXTURES.glob("schema_v*.sql"))


def _schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND "
            "(name NOT LIKE 'messages_fts_%' OR type = 'trigger') ORDER BY name").fetchall()
    return [(kind, name, re.sub(r"\s+", " ", sql or "")) for kind, name, sql in rows]


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA user_version").fetchone()[0]


def test_the_current_schema_has_a_frozen_fixture():
    assert FIXTURES / f"schema_v{SCHEMA_VERSION}.sql" in SCHEMA_FIXTURES, (
        "add tests/store/fixtures/schema_vN.sql (data written with the new schema) "
        "so that later versions test upgrading from it")


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_version_0_a_missing_or_empty_file_becomes_a_working_store(tmp_path, make):
    path = tmp_path / "sessions.sqlite3"
    if make == "empty":
        path.write_bytes(b"")
    with SessionStore(path) as store:
        assert store.problem is None
        session_id = store.create_session(tmp_path, "m")
        store.add_message(session_id, "user", "first words")
    assert _user_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("fixture", SCHEMA_FIXTURES, ids=lambda p: p.stem)
def test_every_earlier_schema_upgrades_to_the_same_schema_as_a_fresh_store(tmp_path, fixture):
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as connection:
        connection.executescript(fixture.read_text(encoding="utf-8"))
    fresh = tmp_path / "fresh.sqlite3"
    SessionStore(fresh).close()
    with SessionStore(old) as store:
        assert store.problem is None
        sessions = store.list_sessions()
        assert len(sessions) >= 2
        assert all(session.message_count >= 1 for session in sessions)
        # Search still finds the old rows: the full-text index came through intact.
        assert store.search("deltanet")
        store.add_message(sessions[0].id, "user", "written after the upgrade")
        assert store.db.schema_version == SCHEMA_VERSION
    assert _user_version(old) == SCHEMA_VERSION
    assert _schema(old) == _schema(fresh)


def test_version_1_fixture_reads_back_exactly(tmp_path):
    path = tmp_path / "v1.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript((FIXTURES / "schema_v1.sql").read_text(encoding="utf-8"))
    with SessionStore(path) as store:
        record = store.load(store.resolve("01m8a0000000"))
        assert record.session.title == "Gated DeltaNet explained"
        assert record.session.settings == {"temperature": 0.6, "thinking": True}
        assert [m.role for m in record.active_messages] == [
            SUMMARY_ROLE, "assistant", "tool", "assistant"]
        assert [m.id for m in record.messages] == [4, 1, 2, 3, 5, 6]
        assert record.messages[2].usage == {"prompt_tokens": 12, "completion_tokens": 15}
        assert record.messages[3].tool_calls[0]["function"]["name"] == "read_file"
        assert record.messages[-1].finish_reason is None
        assert store.search("模型")[0].message_id == 5
        assert store.search("naive cafe")[0].message_id == 5
        assert store.resolve("last", workspace="/home/user/other") == "01m8a0000100"
        assert store.undo_compaction(4) == [1, 2]


def test_version_3_images_read_back_and_new_ones_are_stored(tmp_path):
    path = tmp_path / "v3.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript((FIXTURES / "schema_v3.sql").read_text(encoding="utf-8"))
    with SessionStore(path) as store:
        record = store.load(store.resolve("01m8a0000100"))
        by_id = {m.id: m for m in record.messages}
        assert by_id[10].images == ["/home/user/other/screen.png", "/home/user/other/photo café.jpg"]
        assert by_id[7].images is None
        new = store.add_message("01m8a0000100", "user", "and this one?", images=["/tmp/x.png"])
        assert {m.id: m for m in store.load("01m8a0000100").messages}[new].images == ["/tmp/x.png"]
