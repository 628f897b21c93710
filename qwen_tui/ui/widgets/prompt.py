"""The prompt editor: Enter sends, Ctrl+J (or Alt+Enter) inserts a newline, Up/Down recall.

Ctrl+J rather than Shift+Enter: most terminals (and tmux) send Shift+Enter as a plain Enter.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class PromptInput(TextArea):
    BINDINGS = [
        Binding("enter", "submit", "Send", id="prompt.submit"),
        Binding("ctrl+j,alt+enter", "newline", "Newline", id="prompt.newline", show=False),
        Binding("up", "history_previous", "Previous prompt", id="prompt.history_previous", show=False),
        Binding("down", "history_next", "Next prompt", id="prompt.history_next", show=False),
        # The transcript scrolls while you type: the prompt keeps focus (Tab focuses the transcript
        # itself, where arrows, Home and End work too).
        Binding("pageup", "app.transcript_page('up')", "Scroll up", id="prompt.transcript_page_up", show=False),
        Binding("pagedown", "app.transcript_page('down')", "Scroll down", id="prompt.transcript_page_down",
                show=False),
    ]

    @dataclass
    class Submitted(Message):
        text: str

    def __init__(self, **kwargs) -> None:
        # No cursor blink: over SSH every blink is a repaint sent down the wire, twice a second.
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)
        self.cursor_blink = False
        self.prompt_history: list[str] = []
        self._history_pos: int | None = None  # index into history while browsing
        self._draft = ""  # what was typed before browsing started

    async def _on_key(self, event) -> None:
        # Keys bound to our actions (Enter, by default) must reach the bindings instead of being
        # typed. Priority bindings would be simpler but run ahead of the keys queued before them:
        # a fast typist's (or a paste's) last characters would land after the submit.
        # (Textual calls every class's _on_key in the MRO: prevent_default keeps TextArea's out.)
        for binding in self._bindings.key_to_bindings.get(event.key, []):
            if binding.id and binding.id.startswith("prompt."):
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return
        await super()._on_key(event)

    def action_submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        if not self.prompt_history or self.prompt_history[-1] != text:
            self.prompt_history.append(text)
        self._history_pos = None
        self.clear()
        self.post_message(self.Submitted(text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_history_previous(self) -> None:
        if self.cursor_location[0] > 0 or not self.prompt_history:
            self.action_cursor_up()
            return
        if self._history_pos is None:
            self._draft = self.text
            self._history_pos = len(self.prompt_history)
        if self._history_pos > 0:
            self._history_pos -= 1
            self._show(self.prompt_history[self._history_pos])

    def action_history_next(self) -> None:
        if self.cursor_location[0] < self.document.line_count - 1 or self._history_pos is None:
            self.action_cursor_down()
            return
        self._history_pos += 1
        if self._history_pos >= len(self.prompt_history):
            self._history_pos = None
            self._show(self._draft)
        else:
            self._show(self.prompt_history[self._history_pos])

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)
