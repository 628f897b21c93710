"""Schema 2 (context compaction): elision rows, pins, and deleting the last exchange."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from qwen_tui.store import SessionStore, StoreError

FIXTURES = Path(__file__).parent / "fixtures"


def test_version_2_fixture_reads_back_pins_and_elisions(tmp_path):
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript((FIXTURES / "schema_v2.sql").read_text(encoding="utf-8"))
    with SessionStore(path) as store:
        record = store.load("01m8a0000000")
        by_id = {m.id: m for m in record.messages}
        assert by_id[4].summary_kind == "summary" and by_id[9].summary_kind == "elision"
        assert by_id[5].compacted_by == 9  # the elided tool output is kept
        assert [m.id for m in record.active_messages] == [4, 3, 9, 6]
        assert store.load("01m8a0000100").messages[0].pinned == 1


def test_delete_from_removes_the_last_exchange_and_what_stood_for_it(tmp_path):
    with SessionStore(tmp_path / "s.sqlite3") as store:
        sid = store.create_session(tmp_path, "m")
        first = store.add_message(sid, "user", "first")
        store.add_message(sid, "assistant", "one")
        last = store.add_message(sid, "user", "x" * 1000)
        store.add_message(sid, "assistant", "two")
        cut = store.record_compaction(sid, "x [cut]", [last], kind="elision")
        assert store.delete_from(sid, cut) == 4 - 1  # the elision row, the original it stood for, the answer
        assert [m.content for m in store.load(sid).messages] == ["first", "one"]
        assert store.search("two") == []
        store.set_pinned(first)
        assert store.load(sid).messages[0].pinned == 1
        with pytest.raises(StoreError):
            store.delete_from(sid, 12345)
        with pytest.raises(StoreError):
            store.record_compaction(sid, "s", [first], kind="bogus")
