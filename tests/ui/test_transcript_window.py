"""A long transcript keeps only a window of blocks mounted, and scrolling brings the rest back in order."""

from __future__ import annotations

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.widgets.prompt import PromptInput
from transcript_helpers import assert_contiguous, history, ready, settle, texts


async def test_a_thousand_messages_mount_only_a_window_and_the_newest_show(tmp_path):
    app = QwenApp(lambda: FakeEngine(["ok"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(1000))
        await settle(pilot, app)
        transcript = app.transcript
        assert transcript.total_blocks == 1000
        assert len(transcript.children) <= transcript.WINDOW
        assert texts(app)[-1] == "answer 999"
        assert transcript.scroll_y == transcript.max_scroll_y  # at the newest message
        assert len(app.conversation.messages) == 1000  # all of it is in the conversation


async def test_paging_up_to_the_first_message_and_back_keeps_order_view_and_a_bounded_window(tmp_path):
    app = QwenApp(lambda: FakeEngine(["ok"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(300))
        await settle(pilot, app)
        transcript = app.transcript
        limit = transcript.WINDOW + transcript.CHUNK
        first_seen = assert_contiguous(app)[0]
        for _ in range(400):  # PageUp from the prompt scrolls the transcript
            await pilot.press("pageup")
            await settle(pilot, app)
            assert len(transcript.children) <= limit
            first_seen = min(first_seen, assert_contiguous(app)[0])
            if first_seen == 0 and transcript.scroll_y == 0:
                break
        assert first_seen == 0 and texts(app)[0] == "question 0"
        assert transcript.newer  # the newest blocks were let go on the way up
        for _ in range(400):
            await pilot.press("pagedown")
            await settle(pilot, app)
            assert len(transcript.children) <= limit
            assert_contiguous(app)
            if not transcript.newer and transcript.scroll_y == transcript.max_scroll_y:
                break
        assert texts(app)[-1] == "answer 299"
        assert app.query_one(PromptInput).has_focus  # typing never stopped being possible


async def test_loading_older_blocks_keeps_the_same_lines_in_view(tmp_path):
    app = QwenApp(lambda: FakeEngine(["ok"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(200))
        await settle(pilot, app)
        transcript = app.transcript
        top = transcript.children[0]
        transcript.scroll_to(y=0, animate=False)
        await settle(pilot, app)
        assert transcript.children[0] is not top  # older blocks were added above
        assert top.region.y - transcript.region.y == 0  # the block that was at the top still is


async def test_a_new_message_while_scrolled_back_goes_after_the_newest_one(tmp_path):
    app = QwenApp(lambda: FakeEngine(["the reply"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(300))
        await settle(pilot, app)
        transcript = app.transcript
        while transcript.older:
            transcript.scroll_to(y=0, animate=False)
            await settle(pilot, app)
        assert transcript.newer
        await pilot.press(*"hello", "enter")
        while app.generating or not texts(app) or texts(app)[-1] != "the reply":
            await pilot.pause(0.05)
        shown = texts(app)
        assert shown[-3:] == ["answer 299", "hello", "the reply"]
        assert len(transcript.children) <= transcript.WINDOW + transcript.CHUNK
        assert not transcript.newer
        assert transcript.scroll_y == transcript.max_scroll_y
