"""The app with a config file a user got wrong: it starts, uses defaults, and says what and where."""

from __future__ import annotations

import time

from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp


async def test_bad_config_values_are_shown_with_file_and_line_and_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    monkeypatch.setenv("QWEN_TUI_UI_THEME", "paper")  # the environment beats the file
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "config.toml"
    path.write_text('[ui]\ntheme = "midnight"\nwatch_themes = "sometimes"\n\n[keymap]\n"chat.new" = 3\n'
                    '"chat.toggle_thinking" = "ctrl+g"\n\n[teh_tools]\nx = 1\n')
    app = QwenApp(lambda: FakeEngine())
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 5
        while app.engine is None or app.status.state != "idle":
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        shown = "\n".join(n.message for n in app._notifications)  # noqa: SLF001 - the toasts on screen
        assert f"{path}:3: [ui] watch_themes must be true or false" in shown
        assert f"{path}:6: [keymap] chat.new must be keys" in shown
        assert f"{path}:9: unknown section 'teh_tools'" in shown
        assert app.theme == "paper"
        await pilot.press("ctrl+g")  # the good part of the keymap still applies
        assert app.thinking is False
