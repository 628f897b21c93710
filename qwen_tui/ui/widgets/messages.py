"""Transcript blocks: the user's prompts, the model's reasoning and answers, notices.

Rendering cost decides the design. While an answer streams, its end lives in one Textual
Markdown widget fed through `MarkdownStream` (appends, not re-renders) and its finished blocks
in static pieces (markdown_stream.py). Finished answers are Statics drawing Rich Markdown: a
finished Markdown widget is a tree of block widgets (33 per message on average), and 50 of them
made streaming 3x slower (measured); one Static per message keeps a long transcript as cheap as
an empty one.
Reasoning is plain text: it streams fast and is rarely read in full.
"""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from qwen_tui.ui.widgets.markdown_stream import (  # noqa: F401 - re-exported for callers and tests
    LIVE_CHARS,
    PIECE_CHARS,
    LiveMarkdown,
    LiveStream,
    MarkdownVisual,
    SettledPiece,
    block_starts,
    frozen_markdown,
    settled_prefix_end,
    split_blocks,
)


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
        """A live (streaming) answer, or with finished=True an earlier one shown as is (history)."""
        super().__init__(classes="message assistant")
        self.border_title = "assistant"
        self.text = text
        self.reasoning: ReasoningBlock | None = None
        self._live: LiveMarkdown | None = None
        self._stream = None
        self.finished = finished
        self._history_reasoning = reasoning
        self.note = note  # how it ended, when not normally
        self._live_text = ""  # the part of the answer in the live Markdown widget (its unsettled end)
        self._pieces: list[SettledPiece] = []  # the settled part of the answer, in bounded pieces

    def rebuild(self):
        if not self.finished:
            return None  # still streaming: it stays on screen
        reasoning = self.reasoning.text if self.reasoning is not None else self._history_reasoning
        return partial(AssistantMessage, self.text, reasoning, finished=True, note=self.note)

    def compose(self) -> ComposeResult:
        if not self.finished:
            return
        if self._history_reasoning:
            self.reasoning = ReasoningBlock()
            self.reasoning.text = self._history_reasoning
            self.reasoning.finish()
            yield self.reasoning
        if self.text:
            yield frozen_markdown(self.text)
        if self.note:
            yield Static(Text(f"[{self.note}]", style="italic"), classes="finish-note")

    def append_reasoning(self, text: str) -> None:
        if self.reasoning is None:
            self.reasoning = ReasoningBlock()
            self.mount(self.reasoning, before=0 if self.children else None)
        self.reasoning.append(text)

    async def append_answer(self, text: str) -> None:
        """Add streamed answer text. The live Markdown widget holds only the answer's end (about
        LIVE_CHARS): past that, its finished blocks (a blank line and the start of the next block
        follow them) leave it for static pieces, and a large incoming chunk's finished blocks go
        straight into pieces without ever entering the live widget (mounting a tree of block
        widgets only to take it out again cost 800 ms for 2,800 characters, profiled)."""
        if not text:
            return
        if self._live is None:
            if self.reasoning is not None and not self.reasoning.finished:
                self.reasoning.finish()
            self._live = LiveMarkdown(classes="answer")
            await self.mount(self._live)
            self._stream = LiveStream(self._live)
        self.text += text
        combined = self._live_text + text
        cut = settled_prefix_end(combined) if len(combined) > LIVE_CHARS else 0
        if cut <= 0:  # small still, or one long unfinished block (a long code block): stays live
            self._live_text = combined
            await self._stream.write(text)
            return
        await self._settle(combined[:cut])
        self._live_text = combined[cut:]
        await self._stream.restart(self._live_text)

    async def _settle(self, settled: str) -> None:
        """Finished blocks become new static pieces of at most about PIECE_CHARS each. A piece is
        rendered once and never changes, so its height and lines stay cached through later
        repaints (re-rendering a growing piece cost ~35 ms per hand-over, profiled)."""
        pieces: list[str] = []
        for block in split_blocks(settled):
            if pieces and len(pieces[-1]) + len(block) <= PIECE_CHARS:
                pieces[-1] += block
            else:
                pieces.append(block)
        widgets = [SettledPiece(piece) for piece in pieces]
        self._pieces += widgets
        await self.mount_all(widgets, before=self._live)

    async def finish(self, reason: str, error: str | None = None) -> None:
        """Freeze the answer: what is still live becomes static too; note how it ended if not normally.

        An answer that streamed past LIVE_CHARS stays in the pieces it was frozen into (the same
        text, rendered once each): rendering a long answer again as a whole would hold the UI up
        for as long as the answer is long. Rebuilt from history it is one block."""
        self.finished = True
        if self.reasoning is not None and not self.reasoning.finished:
            self.reasoning.finish()
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if self._live is not None:
            await self._live.remove()
            self._live = None
        if self._live_text.strip():
            await self.mount(frozen_markdown(self._live_text))
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
