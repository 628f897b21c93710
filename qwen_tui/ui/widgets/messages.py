"""Transcript blocks: the user's prompts, the model's reasoning and answers, notices.

Rendering cost decides the design. While an answer streams, its unfinished end is a short
live tail redrawn by Rich (LiveTail) and its finished blocks live in one SettledAnswer drawn from
cached per-block renders (settled_answer.py, markdown_stream.py). Finished answers are Statics
drawing Rich Markdown: a finished Textual Markdown widget is a tree of block widgets (33 per
message on average), and 50 of them made streaming 3x slower (measured); one Static per message
keeps a long transcript as cheap as an empty one.
Reasoning is plain text: it streams fast and is rarely read in full.
"""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from qwen_tui.ui.widgets.markdown_stream import (  # noqa: F401 - re-exported for callers and tests
    LIVE_CHARS,
    LiveTail,
    MarkdownVisual,
    block_starts,
    frozen_markdown,
    settled_prefix_end,
    split_blocks,
)
from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.settled_answer import SettledAnswer


class UserMessage(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="message user")
        self.text = text
        self.border_title = "you"

    def rebuild(self):
        return partial(UserMessage, self.text)


class ReasoningBlock(Static, can_focus=True):
    """Visible while it streams; then one line that expands on demand (Enter or click)."""

    BINDINGS = [("enter", "toggle", "Expand/collapse")]

    def __init__(self) -> None:
        super().__init__("", classes="reasoning")
        self.text = ""
        self.expanded = True
        self.finished = False

    def append(self, text: str) -> None:
        self.text += text
        if self.expanded:
            # Only the newest lines while it streams: they are the ones worth seeing, and
            # re-wrapping all of a few-thousand-token reasoning on every repaint would cost more
            # with each token. The whole text is there once it is expanded after the answer.
            self.update(Text(streaming_tail(self.text, max(20, self.size.width or 80)), style="italic"))

    def finish(self) -> None:
        self.finished = True
        self.expanded = False
        self._render_state()

    def action_toggle(self) -> None:
        self.expanded = not self.expanded
        self._render_state()

    def on_click(self) -> None:
        self.action_toggle()

    def _render_state(self) -> None:
        if self.expanded:
            self.update(Text("▾ reasoning\n", style="bold") + Text(self.text.strip(), style="italic"))
        else:
            words = len(self.text.split())
            self.update(Text(f"▸ reasoning ({words} words) — Enter to expand", style="italic"))
        self.set_class(not self.expanded, "collapsed")


def streaming_tail(text: str, width: int, lines: int = 10) -> str:
    """The end of `text` that fits in about `lines` rows of `width` columns ("…" when cut).

    Only the last (width + 1) * (lines + 1) characters are looked at: no more fit in those
    rows, and the cost per repaint stays the same however long the text grows."""
    budget = (width + 1) * (lines + 1)
    window = text[-budget:].strip()
    rows = 0
    kept: list[str] = []
    for line in reversed(window.splitlines()):
        rows += max(1, -(-len(line) // width))
        if rows > lines:
            room = max(0, len(line) - (rows - lines) * width)
            if room:
                kept.append(line[len(line) - room:])
            if not kept:
                return "…" + window[-width * lines:]
            kept[-1] = "…" + kept[-1]
            return "\n".join(reversed(kept))
        kept.append(line)
    return "…" + window if len(text) > budget else window


class AssistantMessage(Vertical):
    def __init__(self, text: str = "", reasoning: str = "", *, finished: bool = False, note: str = "") -> None:
        """A live (streaming) answer, or with finished=True an earlier one shown as is (history).

        An earlier answer's parts are made here, not in compose(): they are then mounted with it,
        in one pass, rather than after it, which laid the transcript out twice more for every
        chunk of older messages PageUp brought back (measured)."""
        self.reasoning: ReasoningBlock | None = None
        parts: list[Widget] = []
        if finished:
            if reasoning:
                self.reasoning = ReasoningBlock()
                self.reasoning.text = reasoning
                self.reasoning.finish()
                parts.append(self.reasoning)
            if text:
                parts.append(frozen_markdown(text))
            if note:
                parts.append(Static(Text(f"[{note}]", style="italic"), classes="finish-note"))
        super().__init__(*parts, classes="message assistant")
        self.border_title = "assistant"
        self.text = text
        self._tail: LiveTail | None = None  # the answer's unfinished end, while it streams
        self.finished = finished
        self._history_reasoning = reasoning
        self.note = note  # how it ended, when not normally
        self._live_text = ""  # the part of the answer in the live tail (its unsettled end)
        self._settled: SettledAnswer | None = None  # the answer's finished blocks, once there are any

    def rebuild(self):
        if not self.finished:
            return None  # still streaming: it stays on screen
        reasoning = self.reasoning.text if self.reasoning is not None else self._history_reasoning
        return partial(AssistantMessage, self.text, reasoning, finished=True, note=self.note)

    def on_resize(self) -> None:
        # The width answers are drawn at: the generation thread renders finished blocks ahead at it.
        markdown_stream.last_width = self.content_size.width

    def append_reasoning(self, text: str) -> None:
        if self.reasoning is None:
            self.reasoning = ReasoningBlock()
            self.mount(self.reasoning, before=0 if self.children else None)
        self.reasoning.append(text)

    async def append_answer(self, text: str) -> None:
        """Add streamed answer text. The live tail holds only the answer's end (about
        LIVE_CHARS): past that, its finished blocks (a blank line and the start of the next block
        follow them) leave it for the SettledAnswer, whose blocks are most often rendered already
        (AnswerPrerender), so a large incoming chunk costs no more than a small one."""
        if not text:
            return
        if self.reasoning is not None and not self.reasoning.finished:
            self.reasoning.finish()
        self.text += text
        live = self._live_text + text
        cut = settled_prefix_end(live) if len(live) > LIVE_CHARS else 0
        with self.app.batch_update():  # the blocks that settle and the shorter tail: one frame
            if cut:
                self._settle(split_blocks(live[:cut]), before=self._tail)
                live = live[cut:]
            if self._tail is None:
                self._tail = LiveTail()
                self.mount(self._tail)
            self._tail.show(live)
        self._live_text = live

    def _settle(self, blocks: list[str], before) -> None:
        """Finished blocks go to the answer's one SettledAnswer widget, each rendered once (most
        often ahead of time, by the thread that receives the text: AnswerPrerender)."""
        if not blocks:
            return
        if self._settled is None:
            self._settled = SettledAnswer()
            self._settled.add_blocks(blocks)
            self.mount(self._settled, before=before)
        else:
            self._settled.add_blocks(blocks)

    async def finish(self, reason: str, error: str | None = None) -> None:
        """Freeze the answer: what is still live becomes static too; note how it ended if not normally.

        A streamed answer stays in its SettledAnswer (the same text, each block rendered once):
        rendering a long answer again as a whole would hold the UI up for as long as the answer
        is long. Rebuilt from history it is one block."""
        self.finished = True
        if self.reasoning is not None and not self.reasoning.finished:
            self.reasoning.finish()
        tail, self._tail = self._tail, None
        # What was live joins the settled blocks (rendered ahead too: AnswerPrerender renders the
        # last block when the step ends), in the same frame as the tail leaves.
        with self.app.batch_update():
            if self._live_text.strip():
                self._settle(split_blocks(self._live_text), before=tail)
            if self._settled is not None:
                self._settled.add_class("finished")
            if tail is not None:
                await tail.remove()
        note = {"cancelled": "stopped", "length": "cut at the token limit", "error": f"error: {error}"}.get(reason)
        if note:
            self.note = note
            await self.mount(Static(Text(f"[{note}]", style="italic"), classes="finish-note"))

def markdown_sources(make) -> list[str]:
    """The Markdown a block factory will render (a finished answer's text), to render it ahead."""
    if isinstance(make, partial) and make.func is AssistantMessage and make.args and make.args[0]:
        return [make.args[0]]
    return []


class NoticeMessage(Static):
    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(Text(text), classes="notice error" if error else "notice")
        self.text, self.error = text, error

    def rebuild(self):
        return partial(NoticeMessage, self.text, error=self.error)


class ToolCallBlock(Static, can_focus=True):
    """A tool call as it forms, its approval, and its result (collapsed when long; Enter expands)."""

    BINDINGS = [("enter", "toggle", "Expand/collapse")]
    PREVIEW_LINES = 6

    def __init__(self, name: str = "…") -> None:
        super().__init__("", classes="tool-call")
        self.name_ = name
        self.arguments: dict | str = ""
        self.status = "forming"
        self.result = ""
        self.expanded = False
        self.border_title = f"tool {name}"
        self._redraw()

    def rebuild(self):
        if self.status not in ("done", "failed", "unknown tool") and not self.status.startswith("denied"):
            return None  # still forming, waiting for approval or running
        return partial(_rebuilt_tool_call, self.name_, self.arguments, self.status, self.result)

    def forming(self, name: str, arguments) -> None:
        self.name_ = name or self.name_
        self.border_title = f"tool {self.name_}"
        self.arguments = arguments
        self._redraw()

    def decided(self, status: str) -> None:
        self.status = status
        self._redraw()

    def finished(self, ok: bool, result: str) -> None:
        self.status = "done" if ok else "failed"
        self.result = result
        self.set_class(not ok, "failed")
        self._redraw()

    def action_toggle(self) -> None:
        self.expanded = not self.expanded
        self._redraw()

    def on_click(self) -> None:
        self.action_toggle()

    def _redraw(self) -> None:
        import json

        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments, ensure_ascii=False)
        text = Text(f"{args}\n", style="bold") + Text(f"[{self.status}]")
        if self.result:
            lines = self.result.splitlines()
            shown = lines if self.expanded else lines[: self.PREVIEW_LINES]
            text += Text("\n" + "\n".join(shown))
            if len(shown) < len(lines):
                text += Text(f"\n… {len(lines) - len(shown)} more lines (Enter to expand)", style="italic")
        self.update(text)


def _rebuilt_tool_call(name: str, arguments, status: str, result: str) -> ToolCallBlock:
    block = ToolCallBlock(name)
    block.arguments = arguments
    if status in ("done", "failed"):
        block.finished(status == "done", result)
    else:
        block.decided(status)
    return block
