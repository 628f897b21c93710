"""Modal dialogs: an error with a way to retry, and the help screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorDialog(ModalScreen[str]):
    """Shows what went wrong; dismisses with "retry" or "close"."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="dialog.close"),
        Binding("r", "retry", "Retry", id="dialog.retry"),
    ]

    def __init__(self, title: str, message: str, *, can_retry: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.can_retry = can_retry

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self.title_text, style="bold"), id="dialog-title")
            yield Static(Text(self.message), id="dialog-message")
            with Horizontal(id="dialog-buttons"):
                if self.can_retry:
                    yield Button("Retry (r)", id="retry", variant="primary")
                yield Button("Close (Esc)", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "close")

    def action_close(self) -> None:
        self.dismiss("close")

    def action_retry(self) -> None:
        if self.can_retry:
            self.dismiss("retry")


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close", id="help.close")]

    def __init__(self, keys: list[tuple[str, str, str]], commands: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys
        self.commands = commands

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("Keys\n", style="bold")
        for key, description, binding_id in self.keys:
            text.append(f"  {key:<14}", style="bold")
            text.append(f"{description}")
            text.append(f"   [{binding_id}]\n", style="dim")
        text.append("\nSlash commands\n", style="bold")
        for name, description in self.commands:
            text.append(f"  {name:<14}", style="bold")
            text.append(f"{description}\n")
        text.append("\nRemap any key by its id in the config file's [keymap] table, e.g. ", style="dim")
        text.append('"chat.cancel" = "ctrl+c"', style="dim bold")
        with VerticalScroll(id="help"):
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)
