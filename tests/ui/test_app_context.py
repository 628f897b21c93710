"""The context window in the app (Pilot, scripted engine, real SQLite): the meter's exact counts,
automatic and /compact compaction with show and undo, /undo, /edit, /regenerate and /pin."""

from __future__ import annotations

import asyncio

from qwen_tui.context.budget import TokenCounter
from qwen_tui.context.summary import SUMMARY_IN_PLACE, SUMMARY_SYSTEM
from qwen_tui.conversation import SUMMARY_HEADER
from qwen_tui.session_log import SessionLog
from qwen_tui.store import SessionStore
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.widgets.messages import AssistantMessage, NoticeMessage, UserMessage
from qwen_tui.ui.widgets.prompt import PromptInput
from qwen_tui.ui.widgets.status import StatusBar, human_tokens


async def wait_for(pilot, condition, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in time; state: {pilot.app.status.state}")
        await pilot.pause(0.05)


def idle(app):
    return not app.generating and app.engine is not None and app.status.state == "idle"


async def send(pilot, text, *, wait=True):
    """Type `text` (put in the prompt at once; typing it key by key is slow) and press Enter."""
    app = pilot.app
    asked = len(app.engine.requests) if app.engine else 0
    app.query_one(PromptInput).load_text(text)
    await pilot.press("enter")
    if wait and not text.startswith("/"):
        await wait_for(pilot, lambda: len(app.engine.requests) > asked and idle(app))
        await pilot.pause(0.1)


def is_summary_request(request) -> bool:
    messages = request["messages"]
    return messages[0]["content"] == SUMMARY_SYSTEM or messages[-1]["content"].startswith(SUMMARY_IN_PLACE[:40])


def scripted(answer=lambda i: f"Answer number {i}."):
    """Replies: a summary for compaction requests, numbered answers otherwise."""
    state = {"n": 0}

    def reply(request):
        if is_summary_request(request):
            return "SUMMARY: the user asked several numbered questions."
        state["n"] += 1
        return answer(state["n"])

    return reply


def shown(app, kind):
    return [w.text for w in app.transcript.query(kind)]


def make_app(tmp_path, engine, store=None):
    log = SessionLog(store, workspace=tmp_path, model="fake") if store is not None else None
    return QwenApp(lambda: engine, session_log=log)


async def test_the_meter_shows_the_exact_count_and_warns_near_the_threshold(tmp_path):
    engine = FakeEngine([scripted()], n_ctx=2048)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "How tall is Everest?")
        expected = TokenCounter(engine).prompt_tokens(app.conversation.for_template())
        status = app.query_one(StatusBar)
        await wait_for(pilot, lambda: status.context == f"{human_tokens(expected)} / 2K")
        assert status.context_level == "ok"
        # 2048 - 512 reserved for the answer = 1536; compaction at 85% = 1305; "near" from 90% of that
        await send(pilot, "word " * 580)
        expected = TokenCounter(engine).prompt_tokens(app.conversation.for_template())
        assert expected > 0.9 * 1305
        await wait_for(pilot, lambda: status.context == f"{human_tokens(expected)} / 2K")
        assert status.context_level in ("near", "full")


async def test_a_long_chat_compacts_itself_and_never_sends_more_than_fits(tmp_path):
    engine = FakeEngine([scripted(lambda i: f"Answer {i}: " + "blah " * 60)], n_ctx=1024)
    store = SessionStore(tmp_path / "s.sqlite3")
    app = make_app(tmp_path, engine, store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        for i in range(6):
            await send(pilot, f"Question {i}: " + "word " * 100)
        counter = TokenCounter(engine)
        budget = app.compactor.budget(app.max_tokens)
        prompts = [counter.prompt_tokens(r["messages"]) for r in engine.requests]
        assert max(prompts) <= budget.limit
        summaries = [r for r in engine.requests if is_summary_request(r)]
        assert summaries  # the model itself was asked to summarise
        # ... continuing the conversation's own beginning, so a real engine reuses its cache
        first = summaries[0]["messages"]
        assert first[0]["content"].startswith("Question 0") and first[-2]["content"].startswith("Answer")
        assert any(m["content"].startswith(SUMMARY_HEADER) for m in engine.requests[-1]["messages"])
        notices = shown(app, NoticeMessage)
        assert any(n.startswith("Compacted the context:") for n in notices)
        # the screen still shows every question (the user's view is not compacted)
        assert [t.split(":")[0] for t in shown(app, UserMessage)] == [f"Question {i}" for i in range(6)]
    store.close()
    # the store kept the originals under the summary
    with SessionStore(tmp_path / "s.sqlite3") as again:
        record = again.load(again.list_sessions()[0].id)
        assert any(m.role == "summary" and m.summary_kind == "summary" for m in record.active_messages)
        assert [m.content.split(":")[0] for m in record.messages if m.role == "user"] == [f"Question {i}" for i in range(6)]


async def test_compact_show_and_undo(tmp_path):
    engine = FakeEngine([scripted()], n_ctx=8192)
    store = SessionStore(tmp_path / "s.sqlite3")
    app = make_app(tmp_path, engine, store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        for i in range(3):
            await send(pilot, f"Question {i}")
        before = app.conversation.for_template()
        await send(pilot, "/compact")
        await wait_for(pilot, lambda: any(n.startswith("Compacted the context:") for n in shown(app, NoticeMessage)))
        assert app.conversation.messages[0].kind == "summary"
        assert [m.content for m in app.conversation.messages[0].replaced] == ["Question 0", "Answer number 1."]
        assert app.conversation.for_template()[-4:] == before[-4:]  # the last 2 turns stay verbatim
        await send(pilot, "/compact show")
        await wait_for(pilot, lambda: any("SUMMARY: the user asked" in n for n in shown(app, NoticeMessage)))
        assert any("Summary of 2 messages" in n for n in shown(app, NoticeMessage))
        saved = store.load(app.session_log.session_id)
        assert sum(m.role == "summary" for m in saved.active_messages) == 1
        await send(pilot, "/compact undo")
        await pilot.pause(0.2)
        assert app.conversation.for_template() == before
        saved = store.load(app.session_log.session_id)
        assert [m.role for m in saved.active_messages] == ["user", "assistant"] * 3
        # the next turn sends the whole conversation again
        await send(pilot, "And now?")
        assert engine.requests[-1]["messages"][:6] == before
    store.close()


async def test_undo_removes_the_last_exchange_everywhere(tmp_path):
    engine = FakeEngine([scripted()])
    store = SessionStore(tmp_path / "s.sqlite3")
    app = make_app(tmp_path, engine, store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "first")
        await send(pilot, "second")
        await send(pilot, "/undo")
        await wait_for(pilot, lambda: len(app.conversation.messages) == 2)
        await pilot.pause(0.2)
        assert [m.content for m in app.conversation.messages] == ["first", "Answer number 1."]
        assert shown(app, UserMessage) == ["first"]
        assert [t.strip() for t in shown(app, AssistantMessage)] == ["Answer number 1."]
        saved = store.load(app.session_log.session_id)
        assert [m.content for m in saved.messages] == ["first", "Answer number 1."]
        await send(pilot, "third")
        assert engine.requests[-1]["messages"] == [
            {"role": "user", "content": "first"}, {"role": "assistant", "content": "Answer number 1."},
            {"role": "user", "content": "third"}]
    store.close()


async def test_edit_puts_the_message_back_and_sending_replaces_it(tmp_path):
    engine = FakeEngine([scripted()])
    store = SessionStore(tmp_path / "s.sqlite3")
    app = make_app(tmp_path, engine, store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "first")
        await send(pilot, "secnod")
        await send(pilot, "/edit")
        prompt = app.query_one(PromptInput)
        assert prompt.text == "secnod"
        assert len(app.conversation.messages) == 4  # nothing changes until it is sent
        await send(pilot, "second")
        assert [m.content for m in app.conversation.messages] == ["first", "Answer number 1.", "second", "Answer number 3."]
        assert engine.requests[-1]["messages"][-1] == {"role": "user", "content": "second"}
        assert shown(app, UserMessage) == ["first", "second"]
        saved = store.load(app.session_log.session_id)
        assert [m.content for m in saved.messages] == ["first", "Answer number 1.", "second", "Answer number 3."]
        assert not app.editing
    store.close()


async def test_regenerate_drops_the_answer_and_asks_again(tmp_path):
    engine = FakeEngine([scripted()])
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "Tell me a joke")
        await send(pilot, "/regenerate")
        await wait_for(pilot, lambda: len(engine.requests) == 2 and idle(app))
        await pilot.pause(0.2)
        assert engine.requests[1]["messages"] == engine.requests[0]["messages"]
        assert [m.content for m in app.conversation.messages] == ["Tell me a joke", "Answer number 2."]
        assert shown(app, UserMessage) == ["Tell me a joke"]
        assert [t.strip() for t in shown(app, AssistantMessage)] == ["Answer number 2."]
        await send(pilot, "/retry")
        await wait_for(pilot, lambda: len(engine.requests) == 3 and idle(app))
        await pilot.pause(0.2)
        assert [m.content for m in app.conversation.messages] == ["Tell me a joke", "Answer number 3."]


async def test_a_pinned_message_survives_compaction(tmp_path):
    engine = FakeEngine([scripted()], n_ctx=8192)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(pilot, "My name is Ada.")
        await send(pilot, "/pin")
        for i in range(2):
            await send(pilot, f"Question {i}")
        await send(pilot, "/compact")
        await wait_for(pilot, lambda: any(m.kind == "summary" for m in app.conversation.messages))
        sent = app.conversation.for_template()
        assert {"role": "user", "content": "My name is Ada."} in sent
        summary = next(m for m in app.conversation.messages if m.kind == "summary")
        assert "My name is Ada." not in [m.content for m in summary.replaced]


async def test_commands_say_so_when_there_is_nothing_to_do(tmp_path):
    engine = FakeEngine([scripted()])
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        for command in ("/undo", "/edit", "/compact undo", "/compact show", "/compact bogus", "/pin"):
            await send(pilot, command)
            await pilot.pause(0.1)
        texts = [n.message for n in app._notifications]
        assert "There is no message to take back." in texts
        assert "There is no message to edit." in texts
        assert "No compaction to undo." in texts
        assert "No compaction is in effect." in texts
        assert "Usage: /compact, /compact show, /compact undo" in texts
        assert "There is no message to pin." in texts
        assert app.conversation.messages == [] and not engine.requests
