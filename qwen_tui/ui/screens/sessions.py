"""The sessions screen: list, search, open, rename, delete (with confirmation), new.

Everything works from the keyboard; the app opens it with a key and from the palette.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from qwen_tui.store import SessionStore, StoreError


@dataclass
class SessionChoice:
    action: str  # "open" | "new"
    session_id: str | None = None


class SessionsScreen(ModalScreen[SessionChoice | None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="sessions.close"),
        Binding("ctrl+n", "new", "New", id="sessions.new"),
        Binding("f2", "rename", "Rename", id="sessions.rename"),
        Binding("delete,ctrl+d", "delete", "Delete", id="sessions.delete"),
    ]

    def __init__(self, store: SessionStore, workspace: str) -> None:
        super().__init__()
        self.store = store
        self.workspace = workspace
        self._confirm_delete: str | None = None
        self._renaming: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="sessions"):
            yield Static(Text("Sessions — type to search, Down/Enter to the list, Enter opens, F2 renames, "
                              "Del deletes, Ctrl+N new, Esc closes", style="bold"))
            yield Input(placeholder="search all sessions (full text)", id="sessions-search")
            yield OptionList(id="sessions-list")
            yield Static("", id="sessions-hint")

    def on_mount(self) -> None:
        self.refresh_list()
        self.query_one(Input).focus()  # type to search; Enter or Down moves to the list

    def on_key(self, event) -> None:
        if event.key == "down" and self.focused is self.query_one(Input):
            self.query_one(OptionList).focus()
            event.stop()

    def refresh_list(self, query: str = "") -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        try:
            if query.strip():
                hits = self.store.search(query, limit=50)
                seen: set[str] = set()
                for hit in hits:
                    if hit.session_id in seen:
                        continue
                    seen.add(hit.session_id)
                    label = Text(f"{hit.session_title or '(untitled)'}  ", style="bold") + Text(hit.snippet, style="italic")
                    options.add_option(Option(label, id=hit.session_id))
            else:
                for s in self.store.list_sessions(limit=200):
                    here = "" if s.workspace == self.workspace else f"  {s.workspace}"
                    label = Text(f"{s.title or '(untitled)'}", style="bold") + Text(
                        f"  {s.message_count} msgs · {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.updated))}{here}", style="dim")
                    options.add_option(Option(label, id=s.id))
        except StoreError as exc:
            self.hint(f"Sessions unavailable: {exc}")
        if options.option_count:
            options.highlighted = 0

    def hint(self, text: str) -> None:
        self.query_one("#sessions-hint", Static).update(Text(text))

    def _selected(self) -> str | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._renaming is None:
            self.refresh_list(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self._renaming is not None:
            title = event.value.strip()
            if title:
                self.store.rename(self._renaming, title)
            self._renaming = None
            event.input.value = ""
            event.input.placeholder = "search all sessions (full text)"
            self.refresh_list()
            self.query_one(OptionList).focus()
        else:
            self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(SessionChoice("open", event.option.id))

    def action_close(self) -> None:
        if self._renaming is not None:
            self._renaming = None
            self.refresh_list()
            return
        self.dismiss(None)

    def action_new(self) -> None:
        self.dismiss(SessionChoice("new"))

    def action_rename(self) -> None:
        session_id = self._selected()
        if session_id is None:
            return
        self._renaming = session_id
        field = self.query_one(Input)
        field.value = ""
        field.placeholder = "new title, then Enter (Esc cancels)"
        field.focus()

    def action_delete(self) -> None:
        session_id = self._selected()
        if session_id is None:
            return
        if self._confirm_delete != session_id:
            self._confirm_delete = session_id
            self.hint("Press Del again to delete this session for good.")
            return
        self._confirm_delete = None
        self.store.delete(session_id)
        self.hint("Deleted.")
        self.refresh_list(self.query_one(Input).value)
