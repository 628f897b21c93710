"""Helpers shared by the transcript window tests: a numbered history, what is mounted, waiting
for the window to settle."""

from __future__ import annotations

from qwen_tui.conversation import Message
from qwen_tui.ui.widgets.messages import AssistantMessage, UserMessage


def history(n: int, answer_lines: int = 3) -> list[Message]:
    answer = "\n\n" + "\n".join(f"- point {k}" for k in range(answer_lines - 1)) if answer_lines > 1 else ""
    return [Message("user", f"question {i}") if i % 2 == 0 else Message("assistant", f"answer {i}{answer}")
            for i in range(n)]


def expected(i: int) -> str:
    return f"question {i}" if i % 2 == 0 else f"answer {i}"


def texts(app) -> list[str]:
    return [w.text.split("\n")[0] for w in app.transcript.children
            if isinstance(w, (UserMessage, AssistantMessage))]


def assert_contiguous(app) -> list[int]:
    """The mounted history blocks are consecutive messages, in order; returns their indexes."""
    shown = [t for t in texts(app) if t.split()[0] in ("question", "answer")]
    if not shown:
        return []
    first = int(shown[0].split()[1])
    assert shown == [expected(first + k) for k in range(len(shown))]
    return list(range(first, first + len(shown)))


async def ready(pilot, app) -> None:
    while app.engine is None:
        await pilot.pause(0.01)


async def settle(pilot, app) -> None:
    transcript = app.transcript
    for _ in range(100):
        await pilot.pause(0.02)
        if not transcript._busy and not transcript._rebalance_pending:
            await pilot.pause()  # and the frame after it
            if not transcript._busy and not transcript._rebalance_pending:
                return
