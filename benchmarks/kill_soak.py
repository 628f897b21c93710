"""Soak: SIGKILL a real `qwen-tui -p` at random moments while it streams, many times, and report
how much streamed text each kill lost (the promise: at most the last second).

    python benchmarks/kill_soak.py [--kills 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from qwen_tui.store import SessionStore
from qwen_tui.testing import fixtures
from qwen_tui.testing.crash import stream_and_kill, worker_gone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random()
    home = Path(tempfile.mkdtemp(prefix="qwen-tui-soak-"))
    lost_s, blank, broken, orphans = [], 0, 0, 0
    for n in range(args.kills):
        received, killed_at, pid = stream_and_kill(fixtures.demo_model(), home, rng)
        orphans += not worker_gone(pid)
        store = SessionStore(home / "data" / "sessions.sqlite3")
        try:
            broken += store.problem is not None
            record = store.load(store.list_sessions(limit=1)[0].id)
        finally:
            store.close()
        stored = [m for m in record.messages if m.role == "assistant"][-1].content
        blank += not stored.strip()
        # When was the last streamed piece that made it to disk? Lost time = kill - that moment.
        acc, last_saved = "", None
        for at, text in received:
            acc += text
            if len(acc) <= len(stored):
                last_saved = at
        lost_s.append(killed_at - last_saved if last_saved else float("inf"))
    print(f"{args.kills} kills: store damaged {broken}, blank answers {blank}, orphan workers {orphans}")
    print(f"text lost (seconds of streaming before the kill): median {statistics.median(lost_s):.2f} s, "
          f"max {max(lost_s):.2f} s (promise: <= 1 s plus one token)")


if __name__ == "__main__":
    main()
