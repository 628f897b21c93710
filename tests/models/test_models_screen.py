"""The models screen in the app: list and facts, recommendation, pull with progress, load, remove."""

from __future__ import annotations

import asyncio
import shutil

from hub_helpers import MODEL_FILE, REPO, make_hub, sha256
from textual.widgets import Input, OptionList, ProgressBar, Static

from qwen_tui.models.store import ModelStore
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.screens.models import ModelsScreen


async def wait_for(pilot, condition, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out; screens: {pilot.app.screen_stack}"
        await pilot.pause(0.05)


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def names(screen) -> list[str]:
    options = screen.query_one(OptionList)
    return [options.get_option_at_index(i).id for i in range(options.option_count)]


async def test_models_screen_lists_pulls_with_progress_and_loads(tiny_qwen35_path, tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    mine = tmp_path / "mine.gguf"
    shutil.copy(tiny_qwen35_path, mine)
    ModelStore().add_path(mine, "mine")
    loaded: list[str] = []

    def model_factory(path):
        loaded.append(path)
        return FakeEngine(["ok"])

    app = QwenApp(lambda: FakeEngine(["ok"]), model_factory=model_factory)
    with make_hub(tiny_qwen35_path) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: app.engine is not None)
            await pilot.press("f3")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen))
            screen = app.screen
            assert names(screen) == ["mine"]
            assert "architecture   qwen35" in text_of(screen, "#models-info")
            await wait_for(pilot, lambda: text_of(screen, "#models-recommend").startswith(("Recommended here", "nothing")))
            field = screen.query_one("#models-pull", Input)
            if text_of(screen, "#models-recommend").startswith("Recommended here"):
                assert field.value.startswith("qwen3.5:")

            # a pull that fails says why, in one line, and the screen stays usable
            field.value = "unsloth/nope-GGUF"
            field.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: text_of(screen, "#models-hint").startswith("Pull failed"))
            assert "no repository unsloth/nope-GGUF" in text_of(screen, "#models-hint")

            field.value = "qwen3.5:0.8b"
            field.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: text_of(screen, "#models-hint").startswith("Pulled qwen3.5:0.8b"))
            size = len(hub.repos[REPO][MODEL_FILE].data)
            shown = [(done, total) for name, done, total in screen.progress_seen if name == MODEL_FILE]
            assert shown[0] == (0, size) and shown[-1] == (size, size)
            assert any(0 < done < size for done, _ in shown)  # it moved in between
            bar = screen.query_one(ProgressBar)
            assert bar.progress == bar.total  # the last file (the projector) is complete
            assert names(screen) == ["mine", "qwen3.5:0.8b"]
            pulled = tmp_path / "data" / "models" / REPO / MODEL_FILE
            assert sha256(pulled) == sha256(tiny_qwen35_path)
            assert "vision         yes" in text_of(screen, "#models-info")  # the new model is highlighted

            await pilot.press("enter")  # load it
            await wait_for(pilot, lambda: not isinstance(app.screen, ModelsScreen) and loaded)
            assert loaded == [str(pulled)]

            # remove asks for a second Del
            await pilot.press("f3")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen))
            screen = app.screen
            screen.query_one(OptionList).focus()
            await pilot.press("delete")
            assert "Press Del again" in text_of(screen, "#models-hint")
            assert names(screen) == ["mine", "qwen3.5:0.8b"]
            await pilot.press("delete")
            await wait_for(pilot, lambda: names(screen) == ["qwen3.5:0.8b"])
            assert mine.exists()  # added by path: its file stays
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ModelsScreen))


async def test_slash_model_takes_a_local_name(tiny_qwen35_path, tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    ModelStore().add_path(tiny_qwen35_path, "tiny")
    loaded: list[str] = []

    def model_factory(path):
        loaded.append(path)
        return FakeEngine(["ok"])

    app = QwenApp(lambda: FakeEngine(["ok"]), model_factory=model_factory)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        app.run_slash_command("/model tiny")
        await wait_for(pilot, lambda: loaded)
        assert loaded == [str(tiny_qwen35_path)]
        app.run_slash_command("/model qwen3.5:9b")
        await pilot.pause(0.1)
        assert loaded == [str(tiny_qwen35_path)]  # not pulled: a notice, no load
