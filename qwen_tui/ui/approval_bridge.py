"""The agent asks for approval from its generation thread; the dialog lives on the UI thread.

The generation thread blocks until the user answers (or the turn is cancelled, or the app
closes: both answer "deny" through `_pending_ask`, so the thread never waits forever).
"""

from __future__ import annotations

import threading

from qwen_tui.tools.command_rules import suggested_rule
from qwen_tui.ui.screens.approval import ApprovalDialog


class ApprovalMixin:
    _pending_ask = None  # the dialog's callback while the generation thread waits on it

    def _ask_from_thread(self, call, tool, decision):
        """Called by the agent in the generation thread: show the approval dialog, wait for it."""
        answered = threading.Event()
        answer: list = []

        def done(result) -> None:
            answer.append(result or ("deny", ""))
            answered.set()

        rule = suggested_rule(call.arguments.get("command")) if call.name == "run_command" else None  # never for chained commands
        self._pending_ask = done
        self.call_from_thread(self.push_screen, ApprovalDialog(call.name, call.arguments, decision.reason, rule), done)
        answered.wait()
        self._pending_ask = None
        choice, reason = answer[0]
        if choice == "command" and rule:  # "always allow commands starting with <rule> here": stored, then run this once
            try:
                stored = self.agent.policy.allow_command(rule)
                self.call_from_thread(self.notify, f"run_command may now run commands starting with `{stored}` here without asking")
            except (ValueError, OSError) as exc:
                self.call_from_thread(self.notify, f"the command rule was not saved: {exc}", severity="warning")
            return "once"
        return (choice, reason) if choice == "deny" and reason else choice
