"""Ask the user before a tool runs: allow once, for this session, always in this project, or deny
(optionally with a reason that goes back to the model). For a simple shell command the dialog also
offers "always allow commands starting with <rule> here" (key a), when given a `command_rule`."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ApprovalDialog(ModalScreen[tuple[str, str]]):
    """Dismisses with (choice, reason): choice is "once", "session", "project", "command" (only when
    a `command_rule` was given: allow this call and store the rule) or "deny"."""

    AUTO_FOCUS = None  # the keys answer; the reason field only takes focus after "deny"

    BINDINGS = [
        Binding("y,enter", "choose('once')", "Allow once", id="approval.once"),
        Binding("s", "choose('session')", "Allow for this session", id="approval.session"),
        Binding("p", "choose('project')", "Always in this project", id="approval.project"),
        Binding("a", "choose('command')", "Always allow commands starting with this here", id="approval.command"),
        Binding("n,escape", "deny", "Deny", id="approval.deny"),
    ]

    def __init__(self, tool_name: str, arguments: dict, why: str = "", command_rule: str | None = None) -> None:
        super().__init__()
        self.tool_name = tool_name
        self.arguments = arguments
        self.why = why
        self.command_rule = command_rule  # e.g. "git status": offered as "always allow ... here"
        self._asking_reason = False

    def compose(self) -> ComposeResult:
        args = json.dumps(self.arguments, indent=2, ensure_ascii=False)
        if len(args) > 2000:
            args = args[:2000] + "\n…"
        with Vertical(id="approval"):
            yield Static(Text(f"Run tool {self.tool_name}?", style="bold"))
            if self.why:
                yield Static(Text(self.why, style="italic"))
            yield Static(Text(args), id="approval-args")
            keys = "y/Enter once · s this session · p always in this project · n/Esc deny"
            if self.command_rule:
                yield Static(Text.assemble("a always allow commands starting with ", (f"`{self.command_rule}`", "bold"),
                                           " here (this folder)"), id="approval-rule")
            yield Static(Text(keys), id="approval-keys")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "choose" and parameters == ("command",) and not self.command_rule:
            return False  # no rule to offer: the key does nothing and is not shown
        return True

    def action_choose(self, choice: str) -> None:
        if choice == "command" and not self.command_rule:
            return
        if not self._asking_reason:
            self.dismiss((choice, ""))

    def action_deny(self) -> None:
        if self._asking_reason:
            self.dismiss(("deny", ""))
            return
        self._asking_reason = True
        # Mounted only now: an input present from the start would take the focus, and the y/s/p keys.
        field = Input(placeholder="reason for denying (sent to the model), then Enter; Esc denies without one",
                      id="approval-reason")
        self.query_one("#approval").mount(field)
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(("deny", event.value.strip()))
