"""Older answers are rendered ahead, in a thread, before PageUp reaches them: bringing a chunk of
older blocks back then only mounts them (rendering their Markdown on the UI thread held a
PageUp for 90-190 ms)."""

from __future__ import annotations

import uuid

from qwen_tui.conversation import Message
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.messages import AssistantMessage, markdown_sources

CODE = "```python\ndef f(x):\n    return x * {i}\n```\n\n- first\n- second with *emphasis*\n"


def history(n: int, tag: str) -> list[Message]:
    # distinct texts (and a fresh tag per test): nothing may come from another block's rendering
    return [Message("user", f"question {i}") if i % 2 == 0
            else Message("assistant", f"answer {i} {tag}\n\n" + CODE.format(i=i)) for i in range(n)]


async def page_to_top(pilot, app) -> int:
    """PageUp until the first message shows, letting background work finish after each press
    (as a reader does); returns how many distinct older assistant answers were brought back (a
    block let go again at the far edge and brought back later is counted once: its lines are
    cached, so it renders once)."""
    transcript = app.transcript
    brought: set[str] = set()
    width = markdown_stream.last_width
    # Answers already drawn before paging (mounted once near the newest, then let go) are cached:
    # bringing them back renders nothing, so only the others count.
    fresh = {s for make in transcript.older for s in markdown_sources(make)
             if width is None or not markdown_stream.is_rendered(s, width)}
    for _ in range(400):
        if not transcript.older and transcript.scroll_y == 0:
            return len(brought)
        before = len(transcript.older)
        await pilot.press("pageup")
        await app.workers.wait_for_complete()
        for _ in range(50):
            await pilot.pause(0.01)
            if not transcript._busy:
                break
        await app.workers.wait_for_complete()
        if len(transcript.older) < before:
            brought.update(w.text for w in list(transcript.children)[: before - len(transcript.older)]
                           if isinstance(w, AssistantMessage) and w.text in fresh)
    raise AssertionError("never reached the first message")


async def test_older_answers_are_rendered_before_pageup_reaches_them():
    engine = FakeEngine(["ok"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(100, 30)) as pilot:
        while app.engine is None:
            await pilot.pause(0.01)
        await app.show_history(history(240, uuid.uuid4().hex))
        await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        assert app.transcript.older  # most of it is not mounted yet
        renders_before = markdown_stream.ui_thread_renders
        brought = await page_to_top(pilot, app)
        assert brought >= 50  # answers really came back while paging up
        # every one of them was rendered in the background, none on the UI thread
        assert markdown_stream.ui_thread_renders == renders_before
        first = app.transcript.children[0]
        assert first.text == "question 0"


async def test_without_prefetch_the_ui_thread_renders_them(monkeypatch):
    # The control for the test above: it would notice if rendering ahead stopped working.
    from qwen_tui.ui.widgets.transcript import Transcript

    monkeypatch.setattr(Transcript, "_prefetch_older", lambda self: None)
    engine = FakeEngine(["ok"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(100, 30)) as pilot:
        while app.engine is None:
            await pilot.pause(0.01)
        await app.show_history(history(120, uuid.uuid4().hex))
        await pilot.pause(0.2)
        renders_before = markdown_stream.ui_thread_renders
        brought = await page_to_top(pilot, app)
        assert markdown_stream.ui_thread_renders - renders_before >= brought > 0
