"""The app keeps every conversation in the session store, resumes it, and exports it."""

from __future__ import annotations

import asyncio
import json

from qwen_tui.session_log import SessionLog
from qwen_tui.store import SessionStore
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.widgets.messages import AssistantMessage, UserMessage
from qwen_tui.ui.widgets.prompt import PromptInput


async def until(pilot, condition, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await pilot.pause(0.05)


async def chat(app, pilot, text):
    before = len(app.conversation.messages)
    prompt = app.query_one(PromptInput)
    prompt.load_text(text)
    prompt.action_submit()
    await until(pilot, lambda: len(app.conversation.messages) == before + 2
                and app.conversation.messages[-1].finish_reason and not app.generating)


async def test_turns_are_saved_resumed_and_exported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log, history = SessionLog.open(save=True, model="fake.gguf", workspace=tmp_path)
    assert history == []
    engine = FakeEngine(["First answer.", "Second answer."], reasoning="thinking it over")
    app = QwenApp(lambda: engine, session_log=log)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine is not None)
        await chat(app, pilot, "first question")
        await chat(app, pilot, "second question")
        session_id = log.session_id
        app.run_slash_command("/export md")
        app.run_slash_command(f"/export json {tmp_path / 'out.json'}")
    assert (tmp_path / f"qwen-tui-{session_id}.md").read_text().count("## Assistant") == 2
    exported = json.loads((tmp_path / "out.json").read_text())
    assert exported["messages"][1]["content"] == "First answer."

    store = SessionStore()
    record = store.load(store.resolve("last", tmp_path))
    store.close()
    assert [(m.role, m.content) for m in record.messages] == [
        ("user", "first question"), ("assistant", "First answer."),
        ("user", "second question"), ("assistant", "Second answer."),
    ]
    assert record.messages[1].reasoning == "thinking it over" and record.messages[1].finish_reason == "stop"

    # qwen-tui -c: the transcript comes back, and the next turn carries the history to the model
    log, history = SessionLog.open(save=True, model="fake.gguf", resume="last", workspace=tmp_path)
    engine = FakeEngine(["Third answer."])
    app = QwenApp(lambda: engine, session_log=log, history=history)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine is not None and len(app.query(UserMessage)) == 2)
        assert len(app.query(AssistantMessage)) == 2
        await chat(app, pilot, "third question")
    sent = [m["content"] for m in engine.requests[0]["messages"]]
    assert sent == ["first question", "First answer.", "second question", "Second answer.", "third question"]
    store = SessionStore()
    assert len(store.load(session_id).messages) == 6
    store.close()


async def test_no_save_keeps_nothing(tmp_path):
    log, _ = SessionLog.open(save=False, model="fake.gguf", workspace=tmp_path)
    app = QwenApp(lambda: FakeEngine(["x"]), session_log=log)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine is not None)
        await chat(app, pilot, "secret")
    store = SessionStore()
    assert all(s.workspace != str(tmp_path) for s in store.list_sessions())
    store.close()


async def test_sessions_screen_search_open_rename_delete(tmp_path):
    from qwen_tui.ui.screens.sessions import SessionsScreen

    store = SessionStore()
    ids = []
    for topic in ("volcanoes erupting", "baking sourdough bread", "tides and the moon"):
        sid = store.create_session(tmp_path, "fake.gguf")
        store.add_message(sid, "user", f"tell me about {topic}")
        store.add_message(sid, "assistant", f"All about {topic}.")
        ids.append(sid)
    store.close()
    log, _ = SessionLog.open(save=True, model="fake.gguf", workspace=tmp_path)
    app = QwenApp(lambda: FakeEngine(["x"]), session_log=log)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.engine is not None)
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        screen = app.screen
        for ch in "sourdough":
            await pilot.press(ch)
        await pilot.pause(0.2)
        from textual.widgets import OptionList

        options = screen.query_one(OptionList)
        assert options.option_count == 1 and options.get_option_at_index(0).id == ids[1]
        options.focus()
        await pilot.press("f2")
        for ch in "Bread":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert SessionStore().load(ids[1]).session.title == "Bread"
        await pilot.press("delete")
        await pilot.press("delete")  # asks once, deletes on the second press
        await pilot.pause(0.1)
        remaining = {s.id for s in SessionStore().list_sessions(limit=1000)}
        assert ids[1] not in remaining and ids[0] in remaining
        options.highlighted = [options.get_option_at_index(i).id for i in range(options.option_count)].index(ids[2])
        await pilot.press("enter")
        await until(pilot, lambda: len(app.query(UserMessage)) == 1)
        assert app.conversation.messages[0].content == "tell me about tides and the moon"
        assert app.session_log.session_id == ids[2]


async def test_tool_calls_are_stored_and_resumed(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_app import CALL, toolset_with_adder

    from qwen_tui.ui.screens.approval import ApprovalDialog

    log, _ = SessionLog.open(save=True, model="fake.gguf", workspace=tmp_path)
    engine = FakeEngine([CALL, "The sum is 5."])
    app = QwenApp(lambda: engine, session_log=log, toolset=toolset_with_adder(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        prompt.load_text("add 2 and 3")
        prompt.action_submit()
        await until(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        await pilot.press("y")
        await until(pilot, lambda: not app.generating and app.conversation.messages[-1].content == "The sum is 5.")
    store = SessionStore()
    record = store.load(log.session_id)
    store.close()
    assert [m.role for m in record.messages] == ["user", "assistant", "tool", "assistant"]
    assert record.messages[1].tool_calls[0]["function"] == {"name": "add_numbers", "arguments": {"a": 2, "b": 3}}
    assert record.messages[2].content == "5" and record.messages[3].content == "The sum is 5."
    _, history = SessionLog.open(save=True, model="fake.gguf", resume=log.session_id, workspace=tmp_path)
    engine = FakeEngine(["ok"])
    app = QwenApp(lambda: engine, session_log=SessionLog(None, workspace=tmp_path, model="x"), history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.engine is not None and len(app.conversation.messages) == 4)
        prompt = app.query_one(PromptInput)
        prompt.load_text("and now?")
        prompt.action_submit()
        await until(pilot, lambda: len(engine.requests) == 1 and not app.generating)
    sent = engine.requests[0]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "add_numbers" and sent[2] == {"role": "tool", "content": "5"}


async def test_attached_images_are_stored_and_come_back_on_resume(tmp_path, monkeypatch):
    from PIL import Image

    from qwen_tui.ui.image_input import ImageChips

    monkeypatch.chdir(tmp_path)
    picture = tmp_path / "chart.png"
    Image.new("RGB", (40, 30), (10, 200, 10)).save(picture)
    log, _ = SessionLog.open(save=True, model="fake.gguf", workspace=tmp_path)
    engine = FakeEngine(["A green chart."])
    app = QwenApp(lambda: engine, session_log=log)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine is not None)
        app.run_slash_command(f"/image {picture}")
        await chat(app, pilot, "what is this?")
    log, history = SessionLog.open(save=True, model="fake.gguf", resume="last", workspace=tmp_path)
    assert history[0].images == [str(picture)]
    engine = FakeEngine(["Still green."])
    app = QwenApp(lambda: engine, session_log=log, history=history)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine is not None and app.query(ImageChips))
        assert app.query_one(ImageChips).paths == [str(picture)]
        await chat(app, pilot, "and now?")
    assert engine.requests[0]["messages"][0]["images"] == [str(picture)]  # the model sees it again
