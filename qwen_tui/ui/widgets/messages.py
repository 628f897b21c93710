"""Transcript blocks: the user's prompts, the model's reasoning and answers, notices.

Rendering cost decides the design. While an answer streams it lives in one Textual Markdown
widget fed through `MarkdownStream` (appends, not re-renders). When it finishes it is frozen
into a single Static holding a Rich Markdown renderable: a finished Markdown widget is a tree
of block widgets (33 per message on average), and 50 of them made streaming 3x slower
(measured); one Static per message keeps a long transcript as cheap as an empty one.
Reasoning is plain text: it streams fast and is rarely read in full.
"""

from __future__ import annotations

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static


class UserMessage(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="message user")
        self.text = text
        self.border_title = "you"


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
            self.update(Text(self.text.strip(), style="italic"))

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


class AssistantMessage(Vertical):
    def __init__(self, text: str = "", reasoning: str = "", *, finished: bool = False) -> None:
        """A live (streaming) answer, or with finished=True an earlier one shown as is (history)."""
        super().__init__(classes="message assistant")
        self.border_title = "assistant"
        self.text = text
        self.reasoning: ReasoningBlock | None = None
        self._live: Markdown | None = None
        self._stream = None
        self.finished = finished
        self._history_reasoning = reasoning

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
            self._live = Markdown(classes="answer")
            await self.mount(self._live)
            self._stream = Markdown.get_stream(self._live)
        self.text += text
        await self._stream.write(text)

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
        if self.text:
            await self.mount(Static(RichMarkdown(self.text, code_theme="monokai"), classes="answer"))
        note = {"cancelled": "stopped", "length": "cut at the token limit", "error": f"error: {error}"}.get(reason)
        if note:
            await self.mount(Static(Text(f"[{note}]", style="italic"), classes="finish-note"))


class NoticeMessage(Static):
    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(Text(text), classes="notice error" if error else "notice")


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
