"""A streamed answer's finished blocks: drawn as Rich draws the whole answer, rendered ahead by the
generation thread (not in a frame), and kept out of the collector's way while the answer streams."""

from __future__ import annotations

import asyncio
import gc
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui import turn as turn_module
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.turn import TurnView
from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.messages import AssistantMessage, LiveTail, SettledAnswer, block_starts
from qwen_tui.ui.widgets.prompt import PromptInput


def answer_text(tag: str, paragraphs: int = 12) -> str:
    # distinct per test run (tag): nothing may come from an earlier test's renders
    parts = [f"# Notes {tag}\n\nIntro {tag} with **bold** and `code`.\n\n"]
    for i in range(paragraphs):
        parts.append(f"Step {i} of {tag}:\n\n- first {i}\n- second {i}\n\n1. one\n\n2. two, loose\n\n"
                     f"```python\ndef f{i}(x):\n    return x * {i}\n```\n\n> quoted {i}\n\n")
    parts.append("The end.")
    return "".join(parts)


async def send(app, pilot) -> None:
    """Send a prompt once the model is loaded; returns when the answer has started."""
    while app.engine is None:
        await pilot.pause(0.01)
    sent = len(app.conversation.messages)
    prompt = app.query_one(PromptInput)
    prompt.load_text("go")
    prompt.action_submit()
    while len(app.conversation.messages) == sent:  # the turn starts: prompt and answer are added
        await pilot.pause(0.01)


async def stream(app, pilot, text: str) -> None:
    await send(app, pilot)
    deadline = asyncio.get_running_loop().time() + 30
    while app.generating or not app.conversation.messages or app.conversation.messages[-1].content != text:
        assert asyncio.get_running_loop().time() < deadline, "the answer never finished"
        await pilot.pause(0.02)


def text_lines(lines: list[list[Segment]]) -> list[str]:
    return ["".join(seg.text for seg in line).rstrip() for line in lines]


async def test_a_streamed_answer_reads_as_rich_renders_the_whole_document():
    text = answer_text(uuid.uuid4().hex[:8])
    app = QwenApp(lambda: FakeEngine([text], tokens_per_s=2000, chunk=4))
    async with app.run_test(size=(100, 30)) as pilot:
        await stream(app, pilot, text)
        answer = app.query(AssistantMessage).last()
        assert not answer.query(LiveTail)
        settled = answer.query_one(SettledAnswer)
        assert settled.source == text
        width = settled.content_size.width
        shown = text_lines(settled._lines_at(width))
        options = app.console_options.update(highlight=False).update_width(width)
        whole = list(Segment.split_and_crop_lines(app.console.render(RichMarkdown(text, code_theme="monokai"), options),
                                                  width, include_new_lines=False, pad=False))
        assert shown == text_lines(whole)
        assert len(settled.blocks) > 20  # drawn block by block, not as one document


def test_our_markdown_renderable_is_richs():
    text = answer_text("same")
    from rich.console import Console

    console = Console(width=70, color_system="truecolor", force_terminal=True)
    with console.capture() as ours:
        console.print(markdown_stream.rich_markdown(text))
    with console.capture() as theirs:
        console.print(RichMarkdown(text, code_theme="monokai"))
    assert ours.get() == theirs.get()


async def run_counting_ui_renders(monkeypatch, prerender: bool) -> int:
    if not prerender:
        monkeypatch.setattr(markdown_stream.AnswerPrerender, "answer", lambda self, text: None)
        monkeypatch.setattr(markdown_stream.AnswerPrerender, "step_finished", lambda self: None)
    text = answer_text(uuid.uuid4().hex[:8], paragraphs=20)
    app = QwenApp(lambda: FakeEngine(["warm-up answer", text], tokens_per_s=4000, chunk=4))
    async with app.run_test(size=(100, 30)) as pilot:
        await stream(app, pilot, "warm-up answer")  # the answer width is known from here on
        await pilot.pause(0.2)  # and the warm-up answer is drawn
        before = markdown_stream.ui_thread_renders
        await stream(app, pilot, text)
        return markdown_stream.ui_thread_renders - before


async def test_finished_blocks_are_rendered_by_the_generation_thread_not_in_a_frame(monkeypatch):
    assert await run_counting_ui_renders(monkeypatch, prerender=True) == 0


async def test_without_rendering_ahead_the_ui_thread_renders_them(monkeypatch):
    # the control for the test above: it can fail
    assert await run_counting_ui_renders(monkeypatch, prerender=False) > 20


async def test_a_big_burst_is_on_screen_within_a_bounded_number_of_slices(monkeypatch):
    text = answer_text(uuid.uuid4().hex[:8], paragraphs=40)  # ~6,000 characters
    app = QwenApp(lambda: FakeEngine([text], tokens_per_s=0, chunk=len(text)))  # all of it in one piece
    slices = []
    original = TurnView.apply

    async def apply(self, events=()):
        slices.append(len(self.backlog) + len(events))
        return await original(self, events)

    monkeypatch.setattr(TurnView, "apply", apply)
    async with app.run_test(size=(100, 30)) as pilot:
        await stream(app, pilot, text)
    # far more than SLICE_CHARS, yet shown in about DRAIN_SLICES slices (plus the step's events)
    assert len(text) > 10 * turn_module.SLICE_CHARS
    assert len(slices) <= turn_module.DRAIN_SLICES + 4, slices


def test_the_quiet_collector_freezes_while_in_use_and_collects_once_per_pause():
    from qwen_tui.ui.gc_pause import QuietCollector

    now = [100.0]
    streaming = [False]
    collector = QuietCollector(busy=lambda: streaming[0], clock=lambda: now[0], idle_collect_s=5.0)
    try:
        collector.activity()
        collector.tick()
        assert gc.get_freeze_count() > 0 and collector.collections == 0  # just used: frozen
        now[0] += 10
        streaming[0] = True
        collector.tick()
        assert collector.collections == 0  # an answer streaming counts as use
        streaming[0] = False
        collector.tick()
        assert gc.get_freeze_count() == 0 and collector.collections == 1  # left alone: collected
        now[0] += 10
        collector.tick()
        assert collector.collections == 1  # nothing new since: no second collection
        collector.activity()
        collector.tick()
        assert gc.get_freeze_count() > 0
    finally:
        collector.release()
    assert gc.get_freeze_count() == 0


async def test_the_collector_stays_off_old_objects_while_the_app_is_used_and_collects_when_left_alone():
    text = answer_text(uuid.uuid4().hex[:8], paragraphs=30)
    app = QwenApp(lambda: FakeEngine([text], tokens_per_s=1500, chunk=4))
    app.collector.idle_collect_s = 1.0
    frozen_while_streaming = []
    async with app.run_test(size=(100, 30)) as pilot:
        await send(app, pilot)
        while app.generating:
            frozen_while_streaming.append(gc.get_freeze_count())
            await pilot.pause(0.05)
        await pilot.press("x")  # typing right after: still in use, still frozen
        assert gc.get_freeze_count() > 0 and app.collector.collections == 0
        deadline = asyncio.get_running_loop().time() + 5
        while app.collector.collections == 0:  # left alone: handed back and collected once
            assert asyncio.get_running_loop().time() < deadline, "no collection after the app was left alone"
            await pilot.pause(0.1)
        assert gc.get_freeze_count() == 0
        await pilot.pause(0.6)
        assert app.collector.collections == 1  # once per pause, not every tick
    assert frozen_while_streaming and min(frozen_while_streaming) > 0


async def test_quitting_hands_everything_back_to_the_collector():
    app = QwenApp(lambda: FakeEngine([answer_text("quit", paragraphs=200)], tokens_per_s=300, chunk=4))
    async with app.run_test(size=(100, 30)) as pilot:
        await send(app, pilot)
        await pilot.pause(0.3)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


LINES = ["Some text", "more text", "", "", "- item", "* item", "1. one", "12) twelve", "1", "  indented", "    code",
         "```python", "```", "~~~", "> quote", "# Heading", "| a | b |", "-", "x"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LINES), max_size=14), st.integers(min_value=0, max_value=3))
def test_block_starts_never_move_as_more_text_arrives(lines, tail):
    """What the UI and the generation thread cut must agree although they see different
    prefixes: a start found in a prefix is a start of every longer text, and cutting at a start
    and scanning the rest finds the same later starts."""
    text = "\n".join(lines) + "\n" * tail
    full = block_starts(text)
    for end in range(len(text) + 1):
        assert set(block_starts(text[:end])) <= set(full), (text[:end], text)
    for start in full:
        assert [start + s for s in block_starts(text[start:])] == [s for s in full if s > start]


def test_a_long_unfinished_code_block_shows_only_its_end_while_it_streams():
    code = "".join(f"x{i} = {i}\n" for i in range(300))
    streaming = f"Here it is:\n\n```python\n{code}"
    drawn = markdown_stream.drawn_tail(streaming)
    # the last 40 lines (the last one still empty): x261 to x299
    assert "261 more lines of this code block above" in drawn
    assert "x260 = 260" not in drawn and "x261 = 261" in drawn and "x299 = 299" in drawn
    assert drawn.startswith("Here it is:") and "```python" in drawn
    finished = streaming + "```\n"
    assert markdown_stream.drawn_tail(finished) == finished  # complete: all of it
    short = "```python\nx = 1\n"
    assert markdown_stream.drawn_tail(short) == short


async def test_a_streamed_long_code_block_is_whole_once_complete():
    code = "".join(f"value_{i} = {i} * 2\n" for i in range(300))
    text = f"Here it is:\n\n```python\n{code}```\n\nDone {uuid.uuid4().hex[:6]}."
    app = QwenApp(lambda: FakeEngine([text], tokens_per_s=3000, chunk=16))
    tail_heights = []
    async with app.run_test(size=(100, 30)) as pilot:
        await send(app, pilot)
        while app.generating:
            tails = app.query(LiveTail)
            if tails:
                tail_heights.append(tails.last().size.height)
            await pilot.pause(0.02)
        settled = app.query(AssistantMessage).last().query_one(SettledAnswer)
        shown = "\n".join(text_lines(settled._lines_at(settled.content_size.width)))
        assert all(f"value_{i} = {i} * 2" in shown for i in range(300))
    assert tail_heights and max(tail_heights) <= markdown_stream.TAIL_CODE_LINES + 10
