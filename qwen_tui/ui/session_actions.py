"""New chat, and opening a stored session from the sessions screen (Ctrl+O / `/sessions`)."""

from __future__ import annotations

from qwen_tui.store import StoreError
from qwen_tui.ui.screens.sessions import SessionChoice, SessionsScreen


class SessionActionsMixin:
    async def action_new_chat(self) -> None:
        if self.generating:
            self.action_cancel()
            return
        self.conversation.clear()
        self.editing = False
        self.session_log.session_id = None  # the next message starts a new stored session
        await self.transcript.remove_children()
        if self.engine is not None:
            self.status.set_context(0, self.engine.info.n_ctx)

    def action_sessions(self) -> None:
        store = self.session_log.store
        if store is None:
            self.notify("Sessions are not being saved in this run (--no-save)", severity="warning")
            return
        self.session_log.flush()
        self.push_screen(SessionsScreen(store, self.session_log.workspace), self._after_sessions)

    async def _after_sessions(self, choice: SessionChoice | None) -> None:
        if choice is None:
            return
        if self.generating:
            self.notify("Stop the current answer first (Esc)", severity="warning")
            return
        await self.action_new_chat()
        if choice.action == "open" and choice.session_id:
            try:
                record = self.session_log.store.load(choice.session_id)
            except StoreError as exc:
                self.notify(f"Could not open the session: {exc}", severity="error")
                return
            self.session_log.session_id = choice.session_id
            from qwen_tui.context.persist import messages_from_record

            await self.show_history(messages_from_record(record, roles=("user", "assistant", "tool", "summary")))
