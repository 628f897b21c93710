"""What stays mounted in the transcript is measured in screens around the view, not in blocks:
a stream after many earlier messages, paging through a long session and opening one each lay
out only the few screens near what is shown, and every message stays reachable, in order."""

from __future__ import annotations

import asyncio

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.widgets.messages import AssistantMessage
from qwen_tui.ui.widgets.prompt import PromptInput
from qwen_tui.ui.widgets.transcript import Transcript, factory_for
from transcript_helpers import assert_contiguous, history, ready, settle, texts


def screen(transcript: Transcript) -> int:
    return transcript.scrollable_content_region.height


def finished_lines(transcript: Transcript) -> tuple[int, int]:
    """Lines of finished (rebuildable) blocks mounted, and the tallest of them."""
    heights = [w.virtual_region_with_margin.height for w in transcript.children if factory_for(w) is not None]
    return sum(heights), max(heights, default=0)


def assert_screens_bounded(transcript: Transcript) -> None:
    """At most the view plus the kept (and slack) screens on each side, give or take the blocks
    that straddle those limits and the chunk brought back last."""
    lines, tallest = finished_lines(transcript)
    kept = transcript.KEEP_SCREENS + transcript.SLACK_SCREENS
    bound = (1 + 2 * kept) * screen(transcript) + (transcript.CHUNK + 2) * tallest
    assert lines <= bound, (lines, bound, len(transcript.children))


async def test_a_stream_after_fifty_messages_lays_out_only_the_screens_near_the_view():
    reply = "\n\n".join(f"Paragraph {k} of the reply, a line of streamed text." for k in range(40))
    app = QwenApp(lambda: FakeEngine([reply], tokens_per_s=600, chunk=4))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(50))
        await settle(pilot, app)
        transcript = app.transcript
        assert len(transcript.children) < 30  # not all 50: they would fill many screens
        assert_screens_bounded(transcript)
        prompt = app.query_one(PromptInput)
        prompt.load_text("go")
        prompt.action_submit()  # not pilot.press: it waits for the app to go idle (the whole stream)
        counts = []
        for _ in range(5000):  # the stream starts within a few seconds (it lasts about one)
            if app.generating:
                break
            await asyncio.sleep(0.001)
        while app.generating:
            await asyncio.sleep(0.1)
            counts.append(len(transcript.children))
            assert isinstance(transcript.children[-1], AssistantMessage)  # the live answer stays
        await settle(pilot, app)
        assert app.conversation.messages[-1].content == reply
        assert_screens_bounded(transcript)
        # The answer, 40 paragraphs long, pushed the earlier messages away: they left as it grew.
        assert counts[-1] < counts[0] and len(transcript.children) <= 8
        assert transcript.scroll_y == transcript.max_scroll_y
        # Everything is still there, in order, for PageUp.
        seen = set(assert_contiguous(app))
        for _ in range(200):
            await pilot.press("pageup")
            await settle(pilot, app)
            seen |= set(assert_contiguous(app))
            assert_screens_bounded(transcript)
            if not transcript.older and transcript.scroll_y == 0:
                break
        assert seen == set(range(50)) and texts(app)[0] == "question 0"


async def test_paging_through_a_long_session_keeps_only_nearby_screens_mounted():
    app = QwenApp(lambda: FakeEngine(["ok"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(300))
        await settle(pilot, app)
        transcript = app.transcript
        most = len(transcript.children)
        seen = set(assert_contiguous(app))
        for _ in range(400):
            await pilot.press("pageup")
            await settle(pilot, app)
            seen |= set(assert_contiguous(app))
            assert_screens_bounded(transcript)
            most = max(most, len(transcript.children))
            if not transcript.older and transcript.scroll_y == 0:
                break
        assert seen == set(range(300)) and texts(app)[0] == "question 0"
        assert most < 40  # a count window (WINDOW = 60) kept 60 of these small blocks
        for _ in range(400):
            await pilot.press("pagedown")
            await settle(pilot, app)
            assert_contiguous(app)
            assert_screens_bounded(transcript)
            if not transcript.newer and transcript.scroll_y == transcript.max_scroll_y:
                break
        assert texts(app)[-1] == "answer 299"


async def test_opening_a_huge_session_mounts_one_chunk_then_fills_the_kept_screens():
    app = QwenApp(lambda: FakeEngine(["ok"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(1000))
        transcript = app.transcript
        assert len(transcript.children) <= transcript.CHUNK  # the first screen is one chunk's work
        await settle(pilot, app)
        assert texts(app)[-1] == "answer 999"
        assert transcript.scroll_y == transcript.max_scroll_y
        # More came back above, as much as the kept screens hold, and not the 60 a count allows.
        assert transcript.scroll_y >= transcript.KEEP_SCREENS * screen(transcript)
        assert_screens_bounded(transcript)
        assert len(transcript.children) < 40
        assert transcript.total_blocks == 1000


async def test_the_window_is_screens_not_a_block_count():
    # Tall answers: a few fill the kept screens. One-line messages: many more are needed.
    tall = QwenApp(lambda: FakeEngine(["ok"]))
    async with tall.run_test(size=(80, 24)) as pilot:
        await ready(pilot, tall)
        await tall.show_history(history(100, answer_lines=40))
        await settle(pilot, tall)
        transcript = tall.transcript
        kept = transcript.KEEP_SCREENS + transcript.SLACK_SCREENS
        assert_screens_bounded(transcript)
        assert len(transcript.children) <= 2 * (kept + 2)
    short = QwenApp(lambda: FakeEngine(["ok"]))
    async with short.run_test(size=(80, 24)) as pilot:
        await ready(pilot, short)
        await short.show_history(history(300, answer_lines=1))
        await settle(pilot, short)
        transcript = short.transcript
        assert transcript.scroll_y >= transcript.KEEP_SCREENS * screen(transcript)  # filled above
        assert_screens_bounded(transcript)
        assert len(transcript.children) > 12


async def test_older_blocks_coming_in_never_show_a_frame_with_the_lines_jumped():
    # Every frame drawn while PageUp brings older blocks in shows the same lines as the frame the
    # press ends on: the view is kept in place in the layout pass that places them, not a frame later.
    app = QwenApp(lambda: FakeEngine(["ok"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await app.show_history(history(200))
        await settle(pilot, app)
        transcript = app.transcript
        frames: list[tuple[str, int]] = []
        display = app._display

        def top_line(screen, renderable):
            view_top = transcript.region.y
            for block in transcript.children:
                if block.region and block.region.bottom > view_top:
                    frames.append((block.text.split("\n")[0], view_top - block.region.y))
                    break
            return display(screen, renderable)

        app._display = top_line
        loads = 0
        for _ in range(60):
            before, frames[:] = len(transcript.older), []
            await pilot.press("pageup")
            await settle(pilot, app)
            await pilot.pause(0.1)
            if len(transcript.older) < before:
                loads += 1
                assert frames and all(frame == frames[-1] for frame in frames), frames
            if loads >= 3:
                break
        assert loads >= 3
