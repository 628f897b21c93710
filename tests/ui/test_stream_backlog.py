"""A burst of streamed text (a fast model, a server sending big chunks) is put on screen in slices:
keys typed meanwhile are handled between them, nothing is lost or reordered, and Esc still stops it."""

from __future__ import annotations

import asyncio

from textual import events

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui import turn as turn_module
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.turn import TurnView
from qwen_tui.ui.widgets.messages import LIVE_CHARS, AssistantMessage, LiveTail, SettledAnswer
from qwen_tui.ui.widgets.prompt import PromptInput

PARAGRAPH = (
    "Here is **some** markdown with `inline code`, a [link](https://example.com) and a list:\n\n"
    "- first item\n- second item with *emphasis*\n\n```python\ndef f(x):\n    return x * 2\n```\n\n"
)


async def wait_for(pilot, condition, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def answered(app) -> bool:
    messages = app.conversation.messages
    return not app.generating and len(messages) >= 2 and bool(messages[-1].content)


def record_slices(monkeypatch, app, on_slice=None):
    """Observe each slice the app applies: (events handed over, backlog left, prompt text, live chars)."""
    seen = []
    original = TurnView.apply

    async def apply(self, events=()):
        finished = await original(self, events)
        live = self.live._tail if self.live is not None else None
        # a slice may still arrive while the app shuts down at the end of a test: no prompt then
        prompts = app.query(PromptInput)
        seen.append((len(events), len(self.backlog), prompts.first().text if prompts else "",
                     len(live.source) if isinstance(live, LiveTail) else 0))
        if on_slice is not None:
            on_slice(self, len(events))
        return finished

    monkeypatch.setattr(TurnView, "apply", apply)
    return seen


async def test_a_burst_is_shown_in_slices_and_a_key_typed_during_it_is_handled_between_them(monkeypatch):
    reply = (PARAGRAPH * 16).strip()  # ~3,000 characters in 4-character tokens, as fast as possible
    app = QwenApp(lambda: FakeEngine([reply], tokens_per_s=0, chunk=4))
    typed = []

    def type_during_the_burst(turn, handed_over):
        if handed_over > 100 and not typed:  # the big batch just arrived: the user types a key
            typed.append(True)
            app.post_message(events.Key("x", "x"))  # as the terminal driver delivers it

    seen = record_slices(monkeypatch, app, type_during_the_burst)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        prompt.load_text("go")
        prompt.action_submit()
        await wait_for(pilot, lambda: answered(app))
        assert typed, "the generation thread never handed over a big batch"
        big = next(i for i, s in enumerate(seen) if s[0] > 100)
        assert seen[big][1] > 0  # the burst did not go on screen in one go
        drains = [s for s in seen[big + 1:] if s[0] == 0]
        assert len(drains) >= 2  # the app asked itself for the rest, slice by slice
        # The key was handled while part of the burst was still waiting, not after all of it.
        assert any(text.endswith("x") and backlog > 0 for _, backlog, text, _ in seen[big + 1:])
        # The live tail never held more than its bound plus one unfinished block.
        assert max(s[3] for s in seen) < LIVE_CHARS + 200
        # Everything arrived, in order: in the conversation and on screen.
        assert app.conversation.messages[-1].content == reply
        answer = app.query_one(AssistantMessage)
        assert answer.text.strip() == reply
        assert prompt.text == "x"


async def test_finished_blocks_leave_the_live_widget_and_the_answer_reads_the_same(monkeypatch):
    reply = (PARAGRAPH * 8).strip()
    app = QwenApp(lambda: FakeEngine([reply], tokens_per_s=400, chunk=4))
    live_sizes = []

    def watch(turn, handed_over):
        if turn.live is not None and turn.live._tail is not None:
            settled = turn.live.query(SettledAnswer)
            live_sizes.append((len(turn.live._tail.source), len(settled.first().blocks) if settled else 0))

    record_slices(monkeypatch, app, watch)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        prompt.load_text("go")
        prompt.action_submit()
        await wait_for(pilot, lambda: answered(app))
        assert max(size for size, _ in live_sizes) < LIVE_CHARS + 200
        assert live_sizes[-1][1] >= 2  # finished blocks left the live widget as it streamed
        answer = app.query_one(AssistantMessage)
        # Frozen: no live widget left; the settled blocks, the last one included, are the answer.
        assert not answer.query(LiveTail)
        assert answer.query_one(SettledAnswer).source.strip() == reply == app.conversation.messages[-1].content


async def test_escape_during_a_backlog_stops_the_answer_and_keeps_what_was_shown(monkeypatch):
    monkeypatch.setattr(turn_module, "SLICE_CHARS", 200)  # small slices: a backlog forms at once
    reply = PARAGRAPH * 200  # ~40,000 characters: far more than arrives before Esc takes effect
    app = QwenApp(lambda: FakeEngine([reply], tokens_per_s=3000, chunk=4))
    pressed = []

    def press_escape(turn, handed_over):
        if turn.backlog and not pressed:
            pressed.append(True)
            app.post_message(events.Key("escape", None))

    record_slices(monkeypatch, app, press_escape)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        prompt.load_text("go")
        prompt.action_submit()
        await wait_for(pilot, lambda: pressed and answered(app))
        answer = app.conversation.messages[-1]
        state = f"finish {answer.finish_reason!r}, {len(answer.content)} of {len(reply.strip())} chars stored"
        assert answer.finish_reason == "cancelled", state
        assert 0 < len(answer.content) < len(reply.strip()), state
        assert reply.startswith(answer.content)  # in order, nothing lost before the stop
        shown = app.query_one(AssistantMessage)
        assert shown.text.strip() == answer.content, f"{len(shown.text.strip())} chars shown; {state}"
        assert "[stopped]" in str(app.query_one(".finish-note").render())
        # The app takes the next prompt.
        prompt.load_text("again")
        prompt.action_submit()
        await wait_for(pilot, lambda: len(app.conversation.messages) == 4 and not app.generating)
        assert app.conversation.messages[-1].content == reply.strip()


def test_finished_blocks_are_cut_only_between_top_level_blocks():
    from qwen_tui.ui.widgets.messages import settled_prefix_end, split_blocks

    text = ("Intro paragraph.\n\n```python\ndef f():\n\n    return 1\n```\n\n- item\n\n  still the item\n\n"
            "Last one, still streaming")
    blocks = split_blocks(text[:settled_prefix_end(text)])
    assert blocks == ["Intro paragraph.\n\n", "```python\ndef f():\n\n    return 1\n```\n\n",
                      "- item\n\n  still the item\n\n"]
    assert settled_prefix_end("Only one paragraph so far\n\n") == 0  # the live widget is never empty
    assert "".join(split_blocks(PARAGRAPH * 3)) == PARAGRAPH * 3
