"""Sessions that are never lost: kill -9 mid-stream, two writers, a locked file, a broken file."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qwen_tui.store import SessionStore, StoreBusy

REPO = Path(__file__).resolve().parents[2]

STREAMING_CHILD = textwrap.dedent("""
    import sys, time
    from qwen_tui.store import SessionStore
    store = SessionStore(sys.argv[1])
    session_id = store.create_session(sys.argv[2], "m")
    message_id = store.add_message(session_id, "assistant")
    print("M", message_id, flush=True)
    delta = 0
    while True:
        started = time.monotonic()  # the same clock the store's 1 s rule uses
        wrote = store.append(message_id, content=f"<{delta}>")
        print("A", delta, started, int(wrote), flush=True)
        delta += 1
        time.sleep(0.05)
""")

WRITER_CHILD = textwrap.dedent("""
    import sys
    from qwen_tui.store import SessionStore
    store = SessionStore(sys.argv[1], flush_interval=0)
    session_id = store.create_session(sys.argv[2], "m", title=sys.argv[3])
    sys.stdin.readline()  # start together, so that the writes really interleave
    for number in range(300):
        message_id = store.add_message(session_id, "user", f"{sys.argv[3]} {number}")
        store.append(message_id, content=" streamed")
    store.close()
    print(session_id)
""")

LOCKING_CHILD = textwrap.dedent("""
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    connection.execute("UPDATE sessions SET title = 'held' WHERE id = ?", (sys.argv[2],))
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
    connection.execute("COMMIT")
""")


def _python(code: str, *args: object, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_streamed_text_survives_kill_9_at_random_moments(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    for run in range(10):
        child = _python(STREAMING_CHILD, path, tmp_path)
        message_id = int(child.stdout.readline().split()[1])
        first = child.stdout.readline()
        assert first.startswith("A 0"), child.stderr.read()
        time.sleep(rng.uniform(0.0, 1.8))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        reports = [line.split() for line in child.stdout.read().splitlines() + [first]]
        appended = {int(r[1]): float(r[2]) for r in reports if r[0] == "A"}
        flushed = [int(r[1]) for r in reports if r[0] == "A" and r[3] == "1"]
        child.stdout.close(), child.stderr.close()

        with SessionStore(path) as store:
            assert store.problem is None
            message = next(m for m in store.load(store.resolve("last")).messages
                           if m.id == message_id)
        count = message.content.count("<")
        context = f"run {run}, seed {seed}: {count} of {len(appended)} deltas on disk"
        assert message.content == "".join(f"<{i}>" for i in range(count)), context  # no gaps
        assert count >= 1, context  # never blank: the first delta is written at once
        assert count > max(flushed), context  # every reported commit survived
        last_report = max(appended.values())
        due = [i for i, started in appended.items() if last_report - started >= 1.0]
        assert count > max(due, default=-1), context  # the 1 s rule held up to the kill
        assert message.finish_reason is None  # interrupted, and it shows


def test_two_processes_write_at_once_without_lock_errors(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    SessionStore(path).close()  # both children find the schema in place
    children = [_python(WRITER_CHILD, path, tmp_path, name, stdin=subprocess.PIPE)
                for name in ("left", "right")]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0 and err == "", err
    with SessionStore(path) as store:
        for name, (out, _) in zip(("left", "right"), outputs):
            messages = store.load(out.strip()).messages
            assert [m.content for m in messages] == [f"{name} {n} streamed" for n in range(300)]


def test_a_write_waits_for_another_process_holding_the_lock(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    # busy_timeout below the hold time: the retry wrapper, not SQLite alone, has to wait.
    store = SessionStore(path, busy_timeout=0.3)
    session_id = store.create_session(tmp_path, "m")
    holder = _python(LOCKING_CHILD, path, session_id, 2.0)
    assert holder.stdout.readline() == "locked\n", holder.stderr.read()
    started = time.monotonic()
    message_id = store.add_message(session_id, "user", "written after the wait")
    waited = time.monotonic() - started
    holder.communicate(timeout=30)
    assert holder.returncode == 0
    assert waited > 1.0
    record = store.load(session_id)
    assert record.session.title == "held"
    assert [m.id for m in record.messages] == [message_id]
    store.close()


def test_a_lock_held_too_long_is_a_clear_error_and_loses_nothing(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    store = SessionStore(path, busy_timeout=0.1, retry_for=0.4)
    session_id = store.create_session(tmp_path, "m")
    message_id = store.add_message(session_id, "assistant", "kept: ")
    holder = _python(LOCKING_CHILD, path, session_id, 1.5)
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(StoreBusy, match="locked by another program for over 0.4 s"):
        store.append(message_id, content="streamed while locked")  # first delta: a write
    with pytest.raises(StoreBusy):
        store.flush()
    holder.communicate(timeout=30)
    store.flush()  # the delta was still pending
    assert store.load(session_id).messages[0].content == "kept: streamed while locked"
    store.close()


def _damaged_copies(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".damaged-" in p.name)


def test_a_file_of_random_bytes_is_kept_aside_and_a_fresh_store_starts(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    garbage = random.Random(1).randbytes(8192)
    path.write_bytes(garbage)
    Path(f"{path}-wal").write_bytes(b"stale log")
    with SessionStore(path) as store:
        kept = _damaged_copies(tmp_path)
        assert kept[0].name.startswith("sessions.sqlite3.damaged-20")
        # The log went along, named so that SQLite would read it with the copy.
        assert Path(f"{kept[0]}-wal").read_bytes() == b"stale log"
        assert store.problem == (f"the session database was damaged; it was kept as {kept[0]} "
                                 "and a fresh one started")
        assert kept[0].read_bytes() == garbage
        session_id = store.create_session(tmp_path, "m")
        store.add_message(session_id, "user", "works again")
    with SessionStore(path) as store:
        assert store.problem is None
        assert store.last_session().title == "works again"


def test_a_truncated_database_is_kept_aside_and_a_fresh_store_starts(tmp_path):
    path = tmp_path / "sessions.sqlite3"
    with SessionStore(path) as store:
        session_id = store.create_session(tmp_path, "m")
        for number in range(200):
            store.add_message(session_id, "user", f"message {number} " + "x" * 2000)
    size = path.stat().st_size
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with open(path, "r+b") as file:
        file.truncate(size // 2)
    with SessionStore(path) as store:
        assert store.problem and "was damaged" in store.problem
        assert store.list_sessions() == []
    kept = [p for p in _damaged_copies(tmp_path) if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].stat().st_size == size // 2


def test_an_unusable_path_or_newer_schema_keeps_the_app_running_in_memory(tmp_path):
    folder_in_the_way = tmp_path / "sessions.sqlite3"
    folder_in_the_way.mkdir()
    with SessionStore(folder_in_the_way) as store:
        assert store.problem.startswith("sessions are not being saved: cannot open")
        session_id = store.create_session(tmp_path, "m")
        store.add_message(session_id, "user", "still usable")
        assert store.load(session_id).session.title == "still usable"
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as connection:
        connection.execute("CREATE TABLE future (x)")
        connection.execute("PRAGMA user_version = 99")
    before = newer.read_bytes()
    with SessionStore(newer) as store:
        assert "written by a newer qwen-tui (schema 99" in store.problem
        assert store.list_sessions() == []
    assert newer.read_bytes() == before
