"""Compactions, pins and dropped exchanges in the session store, so they survive a resume.

The store keeps every original row: a summary row (`role="summary"`) stands for the rows whose
`compacted_by` points at it; `summary_kind="elision"` marks a summary that is the same message with
its text elided or cut (shown to the model in that message's role). These functions map between
those rows and the conversation's messages (`Message.store_id`); store trouble is returned as a
sentence, never raised.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from qwen_tui.conversation import Conversation, Message
from qwen_tui.store import StoreError
from qwen_tui.store.records import SUMMARY_ROLE

ROLES = ("system", "user", "assistant", "tool", SUMMARY_ROLE)


def messages_from_record(record: Any, roles: tuple[str, ...] = ROLES) -> list[Message]:
    """What the model saw of a stored session, each summary keeping what it replaced and each
    elided message its full text, so every compaction can still be undone after a resume."""
    replaced: dict[int, list] = defaultdict(list)
    for row in record.messages:
        if row.compacted_by is not None:
            replaced[row.compacted_by].append(row)

    def convert(row) -> Message:
        if row.role == SUMMARY_ROLE:
            originals = replaced.get(row.id, [])
            if getattr(row, "summary_kind", None) == "elision" and len(originals) == 1:
                o = convert(originals[0])
                return Message(o.role, row.content, o.reasoning, o.finish_reason, tool_calls=o.tool_calls,
                               pinned=o.pinned, original=o.original or o.content, compaction=row.id, store_id=row.id)
            return Message("user", row.content, finish_reason="stop", kind="summary",
                           replaced=[convert(o) for o in originals], compaction=row.id, store_id=row.id)
        return Message(row.role, row.content, row.reasoning, row.finish_reason, tool_calls=row.tool_calls,
                       pinned=bool(getattr(row, "pinned", 0)), store_id=row.id,
                       images=list(getattr(row, "images", None) or []))

    return [convert(row) for row in record.active_messages if row.role in roles]


def assign_store_ids(store: Any, session_id: str, conversation: Conversation) -> None:
    """Find the stored row of each message that does not know it yet (in order, by text)."""
    if all(m.store_id is not None for m in conversation.messages):
        return
    rows = [r for r in store.load(session_id).active_messages if r.role != "system"]
    j = 0
    for m in conversation.messages:
        if m.store_id is not None:
            for k in range(j, len(rows)):
                if rows[k].id == m.store_id:
                    j = k + 1
                    break
            continue
        for k in range(j, min(len(rows), j + 16)):
            if rows[k].content == m.content and rows[k].role in (m.role, SUMMARY_ROLE):
                m.store_id, j = rows[k].id, k + 1
                break


def save_compaction(log: Any, conversation: Conversation, number: int) -> str | None:
    """Record compaction `number` (already applied to `conversation`) in the store."""
    store, session_id = getattr(log, "store", None), getattr(log, "session_id", None)
    if store is None or session_id is None:
        return None
    missing = 0

    def record(m: Message) -> None:
        nonlocal missing
        if m.kind == "summary":
            for r in m.replaced:  # elided by this same compaction before being summarised
                if r.compaction == number:
                    record(r)
            ids = [r.store_id for r in m.replaced]
            if not ids or None in ids:
                missing += 1
                return
            m.store_id = store.record_compaction(session_id, m.content, ids, kind="summary")
        elif m.store_id is not None:
            m.store_id = store.record_compaction(session_id, m.content, [m.store_id], kind="elision")
        else:
            missing += 1

    try:
        for m in conversation.compacted(number):
            record(m)
    except StoreError as exc:
        return f"the compaction was not saved: {exc}"
    return f"{missing} compacted message(s) could not be matched to the saved session" if missing else None


def undo_saved_compaction(log: Any, changed: list[Message]) -> str | None:
    """Undo in the store what `Conversation.undo_compaction` just undid (`changed`: its return)."""
    store = getattr(log, "store", None)
    if store is None or getattr(log, "session_id", None) is None:
        return None
    try:
        for m in changed:
            if m.store_id is None:
                continue
            restored = store.undo_compaction(m.store_id)
            if m.kind != "summary":
                m.store_id = restored[0] if restored else None
    except StoreError as exc:
        return f"the undo was not saved: {exc}"
    return None


def drop_saved_exchange(log: Any, conversation: Conversation, first: Message) -> str | None:
    """Delete from the store the exchange that starts with `first` (already dropped from the
    conversation, which is searched for the rows before it)."""
    store, session_id = getattr(log, "store", None), getattr(log, "session_id", None)
    if store is None or session_id is None:
        return None
    try:
        log.flush()
        if first.store_id is None:
            probe = Conversation(messages=[*conversation.messages, first])
            assign_store_ids(store, session_id, probe)
        if first.store_id is None:
            return "the saved session could not be matched; it still holds that exchange"
        store.delete_from(session_id, first.store_id)
    except StoreError as exc:
        return f"the saved session was not changed: {exc}"
    return None


def save_pin(log: Any, conversation: Conversation, message: Message) -> str | None:
    store, session_id = getattr(log, "store", None), getattr(log, "session_id", None)
    if store is None or session_id is None:
        return None
    try:
        log.flush()
        assign_store_ids(store, session_id, conversation)
        if message.store_id is None:
            return "the pin is not saved: the message was not found in the saved session"
        store.set_pinned(message.store_id, message.pinned)
    except StoreError as exc:
        return f"the pin was not saved: {exc}"
    return None
