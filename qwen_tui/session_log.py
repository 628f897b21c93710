"""Record a conversation into the session store as it happens (for the app and headless mode).

Store trouble never interrupts a conversation: errors are kept in `problem` for the caller to
show, and the text stays buffered in the store for its next successful write.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from pathlib import Path

from qwen_tui.conversation import Message
from qwen_tui.store import SessionStore, StoreError


class SessionLog:
    def __init__(self, store: SessionStore | None, *, workspace: str | Path, model: str, settings: dict | None = None,
                 kind: str = "chat", session_id: str | None = None) -> None:
        self.store = store
        self.workspace = str(workspace)
        self.model = model
        self.settings = settings or {}
        self.kind = kind
        self.session_id = session_id
        self.problem: str | None = store.problem if store is not None else None
        self._answer_id: int | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def start_autoflush(self, interval: float = 0.5) -> None:
        """Flush buffered text on a timer too, so a model that stalls mid-answer still has
        everything up to the last second on disk (the store's own rule flushes only on writes)."""
        if self.store is None or self._flusher is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval):
                self.flush()

        self._flusher = threading.Thread(target=run, name="qwen-tui-session-flush", daemon=True)
        self._flusher.start()

    @classmethod
    def open(cls, *, save: bool, model: str, settings: dict | None = None, kind: str = "chat",
             resume: str | None = None, workspace: str | Path | None = None) -> tuple[SessionLog, list[Message]]:
        """Open the store (unless save is False); resume `resume` ("last", an id or a prefix)."""
        workspace = str(workspace or os.getcwd())
        if not save:
            return cls(None, workspace=workspace, model=model, settings=settings, kind=kind), []
        store = SessionStore()
        log = cls(store, workspace=workspace, model=model, settings=settings, kind=kind)
        history: list[Message] = []
        if resume:
            log.session_id = store.resolve(resume, workspace)  # StoreError: the caller reports it
            from qwen_tui.context.persist import messages_from_record  # summaries keep what they replaced

            history = messages_from_record(store.load(log.session_id))
        return log, history

    def _guard(self, action, *args, **kwargs):
        if self.store is None:
            return None
        try:
            return action(*args, **kwargs)
        except StoreError as exc:
            self.problem = f"session not saved: {exc}"
            return None

    def _ensure_session(self) -> str | None:
        if self.session_id is None and self.store is not None:
            self.session_id = self._guard(self.store.create_session, self.workspace, self.model, self.settings,
                                          kind=self.kind)
        return self.session_id

    def user(self, text: str, images: list[str] | None = None) -> None:
        if self._ensure_session():
            self._guard(self.store.add_message, self.session_id, "user", text, images=images or None)

    def start_answer(self) -> None:
        self._answer_id = self._guard(self.store.add_message, self.session_id, "assistant") if self._ensure_session() else None

    def answer_delta(self, content: str = "", reasoning: str = "") -> None:
        if self._answer_id is not None:
            self._guard(self.store.append, self._answer_id, content=content, reasoning=reasoning)

    def tool_result(self, tool_name: str, content: str) -> None:
        if self._ensure_session():
            self._guard(self.store.add_message, self.session_id, "tool", content, tool_name=tool_name)

    def flush(self) -> None:
        self._guard(self.store.flush) if self.store is not None else None

    def finish_answer(self, reason: str, usage=None, timings=None, tool_calls: list | None = None) -> None:
        if self._answer_id is not None:
            self._guard(self.store.finish_message, self._answer_id, reason,
                        asdict(usage) if usage is not None else None, asdict(timings) if timings is not None else None,
                        tool_calls)
        self._answer_id = None

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=2)
        if self.store is not None:
            self.flush()
            self._guard(self.store.close)
