"""SessionStore on real SQLite files: what the app and the user see after each call."""

from __future__ import annotations

import threading
import time

import pytest

from qwen_tui.store import AmbiguousSession, SessionNotFound, SessionStore, StoreError
from qwen_tui.store.records import SUMMARY_ROLE, new_session_id


@pytest.fixture
def store(tmp_path):
    with SessionStore(tmp_path / "sessions.sqlite3") as opened:
        yield opened


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_conversation_survives_closing_and_reopening(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    with SessionStore(path) as store:
        session_id = store.create_session(tmp_path, "Qwen3.5-4B", {"temperature": 0.6})
        store.add_message(session_id, "system", "be brief")
        store.add_message(session_id, "user", "  Explain   Gated DeltaNet\nplease ")
        answer = store.add_message(session_id, "assistant", "It is", reasoning="think",
                                   finish_reason="stop", usage={"completion_tokens": 2},
                                   timings={"tokens_per_second": 40.0})
        calls = [{"id": "c1", "function": {"name": "read_file", "arguments": "{}"}}]
        store.add_message(session_id, "assistant", tool_calls=calls, finish_reason="tool_calls")
        store.add_message(session_id, "tool", "file text", tool_call_id="c1", tool_name="read_file")
    with SessionStore(path) as store:
        assert store.problem is None
        record = store.load(session_id)
    assert [m.role for m in record.messages] == ["system", "user", "assistant", "assistant", "tool"]
    assert [m.position for m in record.messages] == [1, 2, 3, 4, 5]
    assert record.session.title == "Explain Gated DeltaNet please"  # first user message
    assert record.session.model == "Qwen3.5-4B"
    assert record.session.settings == {"temperature": 0.6}
    assert record.session.workspace == str(tmp_path.resolve())
    assert record.session.message_count == 5
    by_id = {m.id: m for m in record.messages}
    assert by_id[answer].reasoning == "think"
    assert by_id[answer].usage == {"completion_tokens": 2}
    assert by_id[answer].timings == {"tokens_per_second": 40.0}
    assert record.messages[3].tool_calls == calls
    assert record.messages[4].tool_call_id == "c1" and record.messages[4].tool_name == "read_file"


def test_ids_are_short_sortable_and_unique():
    ids = [new_session_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 12 and i.isalnum() and i == i.lower() for i in ids)


def test_sessions_list_latest_first_per_workspace(store, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    first = store.create_session(here, "m")
    other = store.create_session(there, "m")
    second = store.create_session(here, "m", title="named")
    store.add_message(first, "user", "later activity moves a session to the top")
    assert [s.id for s in store.list_sessions(here)] == [first, second]
    assert [s.id for s in store.list_sessions()][:3] == [first, second, other]
    assert store.last_session(there).id == other
    summary = store.list_sessions(here)[0]
    assert summary.message_count == 1 and summary.updated >= summary.created


def test_long_first_message_makes_a_trimmed_title_and_explicit_titles_win(store, tmp_path):
    untitled = store.create_session(tmp_path, "m")
    store.add_message(untitled, "user", "word " * 40)
    title = store.load(untitled).session.title
    assert len(title) <= 61 and title.endswith("…") and title.startswith("word word")
    named = store.create_session(tmp_path, "m", title="Mine")
    store.add_message(named, "user", "something else")
    assert store.load(named).session.title == "Mine"
    assert store.set_title_if_missing(named, "other") is False
    store.rename(named, "  Renamed  title ")
    assert store.load(named).session.title == "Renamed title"
    with pytest.raises(StoreError, match="empty"):
        store.rename(named, "   ")


def test_resolve_accepts_last_prefixes_and_explains_failures(store, tmp_path):
    older = store.create_session(tmp_path, "m")
    time.sleep(0.002)
    newer = store.create_session(tmp_path, "m")
    assert store.resolve("last", workspace=tmp_path) == newer
    assert store.resolve("LAST") == newer
    assert store.resolve(older) == older
    assert store.resolve(newer.upper()) == newer
    differ = next(i for i, (a, b) in enumerate(zip(older, newer)) if a != b)
    assert store.resolve(older[:differ + 1]) == older  # the shortest unique prefix
    with pytest.raises(AmbiguousSession, match="several sessions"):
        store.resolve(older[:3])
    with pytest.raises(SessionNotFound, match="no session with id 'nope!'"):
        store.resolve("nope!")
    with pytest.raises(SessionNotFound, match="no sessions for"):
        store.resolve("last", workspace=tmp_path / "empty")
    with pytest.raises(SessionNotFound):
        store.load("000000000000")


def test_delete_removes_the_session_its_messages_and_their_search_entries(store, tmp_path):
    kept = store.create_session(tmp_path, "m")
    store.add_message(kept, "user", "zebra crossing")
    gone = store.create_session(tmp_path, "m")
    store.add_message(gone, "user", "zebra stripes")
    store.delete(gone)
    assert [hit.session_id for hit in store.search("zebra")] == [kept]
    assert gone not in [s.id for s in store.list_sessions()]
    with pytest.raises(SessionNotFound):
        store.delete(gone)
    with pytest.raises(SessionNotFound):
        store.add_message(gone, "user", "hello")


def test_streamed_deltas_are_written_once_a_second_and_on_finish(tmp_path):
    clock = FakeClock()
    path = tmp_path / "sessions.sqlite3"
    store = SessionStore(path, clock=clock)
    reader = SessionStore(path)  # a second connection sees only what was committed
    session_id = store.create_session(tmp_path, "m")
    message = store.add_message(session_id, "assistant")

    def on_disk() -> tuple[str, str]:
        found = next(m for m in reader.load(session_id).messages if m.id == message)
        return found.content, found.reasoning

    assert store.append(message, reasoning="Let me ") is True  # first delta: written at once
    assert on_disk() == ("", "Let me ")
    clock.now += 0.5
    assert store.append(message, reasoning="think.") is False
    assert store.append(message, content="Hel") is False
    assert on_disk() == ("", "Let me ")
    clock.now += 0.5  # 1 s since the last write
    assert store.append(message, content="lo") is True
    assert on_disk() == ("Hello", "Let me think.")
    store.append(message, content=" world")
    assert store.flush_if_due() is False
    clock.now += 1.0
    assert store.flush_if_due() is True  # the caller's timer catches a pause in the stream
    assert on_disk() == ("Hello world", "Let me think.")
    store.append(message, content="!")
    store.finish_message(message, "stop", usage={"completion_tokens": 4})
    record = reader.load(session_id)
    assert record.messages[0].content == "Hello world!"
    assert record.messages[0].finish_reason == "stop"
    assert record.messages[0].usage == {"completion_tokens": 4}
    store.close()
    reader.close()


def test_flush_writes_every_pending_message_in_one_go(store, tmp_path):
    session_id = store.create_session(tmp_path, "m")
    first = store.add_message(session_id, "assistant")
    second = store.add_message(session_id, "assistant")
    store.flush_interval = 3600
    store.append(first, "a")  # written at once (first delta)
    store.append(first, "b")
    store.append(second, "c")
    store.flush()
    assert [m.content for m in store.load(session_id).messages] == ["ab", "c"]


def test_search_finds_streamed_text_unicode_and_reasoning(store, tmp_path):
    session_id = store.create_session(tmp_path, "m", title="Research")
    store.add_message(session_id, "user", "Tell me about the café in Zürich")
    message = store.add_message(session_id, "assistant")
    for piece in ["The hybrid ", "archi", "tecture uses ", "Gated Delta", "Net layers. ", "这个模型很好"]:
        store.append(message, content=piece, reasoning="pondering ")
    store.finish_message(message, "stop")
    hit = store.search("architecture")[0]
    assert (hit.session_id, hit.session_title, hit.message_id, hit.role) == (
        session_id, "Research", message, "assistant")
    assert "**architecture**" in hit.snippet
    assert store.search("gated deltanet")[0].message_id == message
    assert store.search("cafe zurich")[0].role == "user"  # accents and case ignored
    assert store.search("CAFÉ")[0].role == "user"
    assert "**模型**" in store.search("模型")[0].snippet  # CJK without spaces: substring
    assert store.search("pondering")[0].message_id == message
    assert store.search("archi")[0].message_id == message  # the last word also as a prefix
    assert store.search("\"unbalanced AND (") == []  # never an FTS syntax error
    assert store.search("   ") == []


def test_search_sees_deltas_appended_after_an_earlier_flush(tmp_path):
    clock = FakeClock()
    store = SessionStore(tmp_path / "s.sqlite3", clock=clock)
    session_id = store.create_session(tmp_path, "m")
    message = store.add_message(session_id, "assistant", "alpha")
    store.append(message, " beta")
    clock.now += 0.1
    store.append(message, " gamma")  # buffered, not yet written
    assert store.search("gamma")[0].message_id == message
    assert store.search("alpha")[0].message_id == message
    store.close()


def test_compaction_keeps_the_originals_and_can_be_undone(store, tmp_path):
    session_id = store.create_session(tmp_path, "m")
    ids = [store.add_message(session_id, role, text) for role, text in
           [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]]
    summary = store.record_compaction(session_id, "we discussed q1", ids[:2])
    record = store.load(session_id)
    assert [(m.role, m.content) for m in record.active_messages] == [
        (SUMMARY_ROLE, "we discussed q1"), ("user", "q2"), ("assistant", "a2")]
    assert [m.compacted_by for m in record.messages if m.id in ids[:2]] == [summary, summary]
    assert len(record.messages) == 5
    # Compacting again, summary included, stacks; undo peels one level off.
    second = store.record_compaction(session_id, "we discussed q1 and q2", [summary, ids[2]])
    assert [m.content for m in store.load(session_id).active_messages] == [
        "we discussed q1 and q2", "a2"]
    assert store.undo_compaction(second) == [summary, ids[2]]
    assert store.undo_compaction(summary) == ids[:2]
    assert [m.content for m in store.load(session_id).active_messages] == ["q1", "a1", "q2", "a2"]
    with pytest.raises(StoreError, match="not a compaction summary"):
        store.undo_compaction(ids[0])
    with pytest.raises(StoreError, match="not in this session"):
        store.record_compaction(session_id, "x", [999])


def test_model_and_settings_change_per_session(store, tmp_path):
    session_id = store.create_session(tmp_path, "small", {"ctx": 4096}, kind="headless")
    store.set_model(session_id, "large", {"ctx": 32768, "path": tmp_path})
    session = store.load(session_id).session
    assert (session.model, session.kind) == ("large", "headless")
    assert session.settings == {"ctx": 32768, "path": str(tmp_path)}  # odd values kept as text
    with pytest.raises(ValueError):
        store.create_session(tmp_path, "m", kind="other")


def test_default_location_follows_qwen_tui_home(isolated_home):
    with SessionStore() as store:
        assert store.path == isolated_home / "data" / "sessions.sqlite3"
    assert store.path.exists()


def test_threads_can_share_one_store(store, tmp_path):
    session_id = store.create_session(tmp_path, "m")
    message = store.add_message(session_id, "assistant")
    store.flush_interval = 0.001
    failures: list[BaseException] = []

    def stream() -> None:
        try:
            for number in range(300):
                store.append(message, content=f"<{number}>")
        except BaseException as exc:  # reported below: a thread's error would vanish
            failures.append(exc)

    writer = threading.Thread(target=stream)
    writer.start()
    while writer.is_alive():
        store.list_sessions()
        store.search("anything")
    writer.join()
    store.flush()
    assert failures == []
    assert store.load(session_id).messages[0].content == "".join(f"<{n}>" for n in range(300))
