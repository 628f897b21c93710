"""Transcript blocks: the user's prompts, the model's reasoning and answers, notices.

Rendering cost decides the design. While an answer streams it lives in one Textual Markdown
widget fed through `MarkdownStream` (appends, not re-renders). When it finishes it is frozen
into a single Static holding a Rich Markdown renderable: a finished Markdown widget is a tree
of block widgets (33 per message on average), and 50 of them made streaming 3x slower
(measured); one Static per message keeps a long transcript as cheap as an empty one.
Reasoning is plain text: it streams fast and is rarely read in full.
"""

from __future__ import annotations

from functools import partial

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence


class _LiveFence(MarkdownFence):
    """A code block in the live answer. A fence without a language (as it is while "```" has
    arrived but its info string hasn't, or when the model gives none) is shown as plain text:
    Textual would otherwise guess the language with Pygments, ~100 ms per repaint (profiled)."""

    @classmethod
    def highlight(cls, code: str, language: str, ansi: bool = False, dark: bool = False):
        return super().highlight(code, language or "text", ansi=ansi, dark=dark)


class LiveMarkdown(Markdown):
    BLOCKS = {**Markdown.BLOCKS, "fence": _LiveFence, "code_block": _LiveFence}


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
        self._live: Markdown | None = None
        self._stream = None
        self.finished = finished
        self._history_reasoning = reasoning
        self.note = note  # how it ended, when not normally
        self._live_text = ""  # the part of the answer still in the live Markdown widget

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
            yield Static(RichMarkdown(self.text, code_theme="monokai"), classes="answer")
        if self.note:
            yield Static(Text(f"[{self.note}]", style="italic"), classes="finish-note")

    def append_reasoning(self, text: str) -> None:
        if self.reasoning is None:
            self.reasoning = ReasoningBlock()
            self.mount(self.reasoning, before=0 if self.children else None)
        self.reasoning.append(text)

    async def append_answer(self, text: str) -> None:
        if not text:
            return
        if self._live is None:
            if self.reasoning is not None and not self.reasoning.finished:
                self.reasoning.finish()
            self._live = LiveMarkdown(classes="answer")
            await self.mount(self._live)
            self._stream = Markdown.get_stream(self._live)
        self.text += text
        self._live_text += text
        await self._stream.write(text)
        if len(self._live_text) > LIVE_CHARS:
            await self._freeze_settled_blocks()

    async def _freeze_settled_blocks(self) -> None:
        """Move the answer's finished blocks out of the live Markdown into one static block.

        The live widget is a tree of block widgets that is laid out again on every flush, so a
        long answer got slower to stream as it grew (profiled: ~150 ms per repaint after 1,000
        tokens). Keeping it to the last few blocks keeps each repaint about the same cost.
        """
        cut = settled_prefix_end(self._live_text)
        if cut <= 0:
            return
        settled, tail = self._live_text[:cut], self._live_text[cut:]
        await self._stream.stop()
        await self.mount(Static(RichMarkdown(settled, code_theme="monokai"), classes="answer settled"),
                         before=self._live)
        self._live_text = tail
        await self._live.update(tail)
        self._stream = Markdown.get_stream(self._live)

    async def finish(self, reason: str, error: str | None = None) -> None:
        """Freeze the answer into one widget; note how it ended if not normally."""
        self.finished = True
        if self.reasoning is not None and not self.reasoning.finished:
            self.reasoning.finish()
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if self._live is not None:
            await self._live.remove()
            self._live = None
        settled = list(self.query(".settled"))
        if settled:
            await self.remove_children(settled)
        if self.text:
            await self.mount(Static(RichMarkdown(self.text, code_theme="monokai"), classes="answer"))
        note = {"cancelled": "stopped", "length": "cut at the token limit", "error": f"error: {error}"}.get(reason)
        if note:
            self.note = note
            await self.mount(Static(Text(f"[{note}]", style="italic"), classes="finish-note"))


# Live Markdown text kept before settled blocks are frozen out of it (about 10-20 blocks).
LIVE_CHARS = 1200
_FENCES = ("```", "~~~")


def settled_prefix_end(text: str) -> int:
    """Where the finished top-level blocks of streamed Markdown end (0: none yet).

    A block is finished when a blank line follows it, outside a code fence, and what comes after
    is not indented (an indented line continues a list item or is code). The last paragraph is
    kept live even if it ends in a blank line, so the live widget is never empty.
    """
    in_fence = False
    best = 0
    offset = 0
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        offset += len(line) + 1
        stripped = line.lstrip()
        if stripped.startswith(_FENCES):
            in_fence = not in_fence
            continue
        if in_fence or line.strip():
            continue
        following = lines[i + 1]
        if following and not following[0].isspace() and following.strip():
            best = offset  # start of the next block
    return best if best < len(text) - 1 else 0


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
