"""The app with RemoteEngine over real HTTP (a scripted OpenAI-compatible server on 127.0.0.1):
the same screen streams the server's answer, Esc closes the stream, and a server that cannot be
reached is a one-line error dialog."""

from __future__ import annotations

import asyncio
import time

from qwen_tui.engine.remote import RemoteEngine
from qwen_tui.testing.openai_stub import OpenAIStub, chunk
from qwen_tui.testing.llama_server import free_port
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.screens.dialogs import ErrorDialog
from qwen_tui.ui.widgets.messages import AssistantMessage
from qwen_tui.ui.widgets.prompt import PromptInput


async def until(pilot, condition, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await pilot.pause(0.05)


def idle(app):
    return not app.generating and app.engine is not None


async def send(pilot, text):
    prompt = pilot.app.query_one(PromptInput)
    prompt.load_text(text)
    prompt.action_submit()


async def test_the_app_streams_from_a_server():
    answer = [chunk("The capital "), chunk("of France is **Paris**."), chunk(finish="stop"),
              chunk(usage={"prompt_tokens": 21, "completion_tokens": 8, "total_tokens": 29}), "[DONE]"]
    with OpenAIStub(chat=lambda h, body: h.sse(answer, gap=0.05)) as stub:
        app = QwenApp(lambda: RemoteEngine(stub.url), thinking=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.engine is not None)
            await send(pilot, "capital of France?")
            await until(pilot, lambda: idle(app) and app.conversation.messages and app.conversation.messages[-1].role == "assistant")
            assert app.conversation.messages[-1].content == "The capital of France is **Paris**."
            assert app.query_one(AssistantMessage).text.startswith("The capital of France")
            assert stub.chat_bodies()[0]["messages"][-1] == {"role": "user", "content": "capital of France?"}
            assert app.status.model == "stub-model" and app.status.settings == f"server {stub.url}"


async def test_escape_closes_the_stream():
    def slow(h, body):
        h.sse([chunk("word ")] * 400, gap=0.05)

    with OpenAIStub(chat=slow) as stub:
        app = QwenApp(lambda: RemoteEngine(stub.url), thinking=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.engine is not None)
            await send(pilot, "long")
            await until(pilot, lambda: app.query(AssistantMessage) and app.query_one(AssistantMessage).text)
            start = time.monotonic()
            await pilot.press("escape")
            await until(pilot, lambda: idle(app))
            elapsed = time.monotonic() - start
            answer = app.conversation.messages[-1]
            assert answer.finish_reason == "cancelled" and 0 < len(answer.content) < len("word " * 400)
            assert elapsed < 2, f"{elapsed:.2f} s"  # not the 20 s the whole answer takes


async def test_unreachable_server_is_an_error_dialog():
    url = f"http://127.0.0.1:{free_port()}/v1"
    app = QwenApp(lambda: RemoteEngine(url))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.message.startswith(f"cannot reach the server at {url}")
