"""The context meter with a server: "~" in front of the count when the server cannot tokenize
(counts are estimated at ~4 characters a token), a plain count when it can. Real app, real HTTP
(the scripted OpenAIStub on 127.0.0.1)."""

from __future__ import annotations

import asyncio

import pytest

from qwen_tui.engine.remote import RemoteEngine
from qwen_tui.testing.openai_stub import OpenAIStub, chunk
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.widgets.prompt import PromptInput

ANSWER = [chunk("A short answer."), chunk(finish="stop"), "[DONE]"]


def one_token_a_word(h, body):
    h.json(200, {"tokens": list(range(len(body["content"].split())))})


async def until(pilot, condition, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await pilot.pause(0.05)


@pytest.mark.parametrize("routes, marked", [({}, True), ({"/tokenize": one_token_a_word}, False)])
async def test_the_meter_marks_estimated_counts(routes, marked):
    with OpenAIStub(chat=lambda h, body: h.sse(ANSWER), routes=routes) as stub:
        app = QwenApp(lambda: RemoteEngine(stub.url), thinking=False)
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: app.engine is not None)
            assert app.engine.token_counts == ("estimated" if marked else "server")
            prompt = app.query_one(PromptInput)
            prompt.load_text("Tell me something short about the sea, please.")
            prompt.action_submit()
            await until(pilot, lambda: not app.generating and app.status.context not in ("", "0 / 32.8K"))
            meter = app.status.context
            assert meter.endswith(" / 32.8K") and meter.startswith("~") == marked, meter
            assert int(meter.lstrip("~").split(" /")[0]) > 10  # the conversation was counted
            assert f"ctx {meter}" in str(app.status.render())
