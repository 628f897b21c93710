"""Attaching images in the app: /image, pasted paths, chips in the transcript, sent with the message."""

from __future__ import annotations

import asyncio

from PIL import Image

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.image_input import ImageChips
from qwen_tui.ui.widgets.prompt import PromptInput


async def wait_for(pilot, condition, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await pilot.pause(0.05)


async def send(app, pilot, text):
    prompt = app.query_one(PromptInput)
    prompt.load_text(text)
    prompt.action_submit()
    await pilot.pause(0.05)


async def test_image_command_and_pasted_paths_go_with_the_next_message(tmp_path):
    red = tmp_path / "red.png"
    Image.new("RGB", (200, 120), (200, 30, 30)).save(red)
    shot = tmp_path / "my screen.png"
    Image.new("RGB", (64, 48), (0, 0, 200)).save(shot)
    engine = FakeEngine(["A red picture.", "Two pictures."])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await send(app, pilot, f"/image {red}")
        await send(app, pilot, "What is this?")
        await wait_for(pilot, lambda: len(engine.requests) == 1 and not app.generating)
        assert engine.requests[0]["messages"][-1] == {"role": "user", "content": "What is this?", "images": [str(red)]}
        chips = app.query(ImageChips)
        assert len(chips) == 1 and chips.first().paths == [str(red)]
        chip_text = str(chips.first().query(".image-chip").first().render())
        assert chip_text.startswith("[image] red.png · 200×120 · ")

        # a pasted path (quoted, with a space) is an attachment too, and leaves the text
        await send(app, pilot, f"and '{shot}' compared to it?")
        await wait_for(pilot, lambda: len(engine.requests) == 2 and not app.generating)
        last = engine.requests[1]["messages"][-1]
        assert last == {"role": "user", "content": "and compared to it?", "images": [str(shot)]}
        assert engine.requests[1]["messages"][0]["images"] == [str(red)]  # history keeps its image
        assert app.conversation.messages[0].images == [str(red)]

        # bad input: a one-line notice, nothing attached
        await send(app, pilot, f"/image {tmp_path / 'nope.png'}")
        await send(app, pilot, "/image")
        assert app.take_pending_images() == []
