"""Keymap: remap by binding id, and the conflicts a remap creates are reported at startup."""

from __future__ import annotations

import time

from qwen_tui.settings import load_settings
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.keymap import keymap_problems
from qwen_tui.ui.widgets.prompt import PromptInput


def test_default_keys_have_no_conflicts():
    assert keymap_problems({}) == []


async def test_a_remap_onto_another_bindings_key_is_a_conflict():
    problems = keymap_problems({"chat.toggle_thinking": "ctrl+n"})
    assert problems == ["[keymap] ctrl+n is used by both chat.new and chat.toggle_thinking in the app: "
                        "only chat.toggle_thinking will get it"]
    settings = load_settings()
    settings.keymap = {"chat.toggle_thinking": "ctrl+n"}
    app = QwenApp(lambda: FakeEngine(), settings=settings)
    async with app.run_test(size=(80, 24)) as pilot:  # and that is what Textual does
        await _wait(pilot, lambda: app.engine is not None and app.status.state == "idle")
        await pilot.press(*"hi")
        await pilot.press("ctrl+n")
        assert app.thinking is False and app.query_one(PromptInput).text == "hi"  # no new chat either


def test_two_ids_remapped_to_one_key_and_unknown_ids():
    problems = keymap_problems({"chat.copy_last": "f9", "chat.new": "f9", "chat.nonsense": "f7"})
    assert problems == ["[keymap] chat.nonsense: no binding has this id; ignored (F1 lists the ids)",
                        "[keymap] f9 is used by both chat.copy_last and chat.new in the app: only one of them will get it"]


def test_keys_of_textuals_own_widget_bindings_count_too():
    problems = keymap_problems({"chat.new": "f6"})  # the text area selects the line with F6
    assert problems == ["[keymap] f6 is used by both chat.new and select_line (built in) in the prompt: "
                        "only select_line (built in) will get it"]


def test_swapping_two_keys_is_not_a_conflict():
    assert keymap_problems({"chat.new": "ctrl+t", "chat.toggle_thinking": "ctrl+n"}) == []


def test_a_key_the_prompt_uses_is_reported_for_the_prompt():
    problems = keymap_problems({"chat.toggle_thinking": "up"})
    assert problems == ["[keymap] up is used by both chat.toggle_thinking and prompt.history_previous in the "
                        "prompt: only prompt.history_previous will get it"]
    # priority bindings (quit) win even inside dialogs
    problems = keymap_problems({"app.quit": "y"})
    assert any("y is used by both app.quit and approval.once in the approval dialog: only app.quit" in p
               for p in problems)


async def _wait(pilot, condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.05)


async def test_conflicts_are_shown_at_startup_and_are_true(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[keymap]\n"chat.toggle_thinking" = "up"\n"chat.new" = "f5"\n')
    app = QwenApp(lambda: FakeEngine(), settings=load_settings())
    async with app.run_test(size=(100, 30)) as pilot:
        await _wait(pilot, lambda: app.engine is not None and app.status.state == "idle")
        shown = [n.message for n in app._notifications]  # noqa: SLF001 - the toasts on screen
        assert any("up is used by both chat.toggle_thinking and prompt.history_previous" in m for m in shown)
        # and it is what happens: in the prompt, up recalls history instead of toggling thinking
        assert app.focused is app.query_one(PromptInput)
        await pilot.press("up")
        assert app.thinking is True
        await pilot.press(*"hi")
        await pilot.press("f5")  # the remap without a conflict works
        await _wait(pilot, lambda: app.query_one(PromptInput).text == "hi")
        assert not app.conversation.messages
