"""Themes as files: shipped themes, user themes, the palette, hot reload and broken files."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.color import Color

from qwen_tui.settings import load_settings
from qwen_tui.settings.loader import tomllib
from qwen_tui.settings.locations import shipped_themes_dir
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.ui.app import QwenApp
from qwen_tui.ui.themes import load_theme_files, parse_theme_file
from qwen_tui.ui.widgets.prompt import PromptInput

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["qwen", "midnight", "paper", "high-contrast"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A config dir of this test's own (the user themes folder is `<home>/config/themes`)."""
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    (tmp_path / "config" / "themes").mkdir(parents=True)
    return tmp_path


def settings_with(theme: str, watch: bool = False):
    settings = load_settings()
    settings.set("ui", "theme", theme, "test")
    settings.set("ui", "watch_themes", watch, "test")
    return settings


def close(color: Color, value: str) -> bool:
    """Equal give or take Textual's HSL rounding (one step per channel)."""
    return max(abs(a - b) for a, b in zip(color.rgb, Color.parse(value).rgb)) <= 2


async def wait_for(pilot, condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def test_shipped_themes_are_found_and_valid():
    folder = shipped_themes_dir()
    assert folder == ROOT / "themes"  # a source checkout (and pip install -e) finds the top-level folder
    themes, _, problems = load_theme_files([folder])
    assert problems == [] and set(SHIPPED) <= set(themes)
    assert [themes[n].dark for n in SHIPPED] == [True, True, False, True]


XTERM_LEVELS = (0, 0x5F, 0x87, 0xAF, 0xD7, 0xFF)
XTERM_256 = {(r, g, b) for r in XTERM_LEVELS for g in XTERM_LEVELS for b in XTERM_LEVELS} | {
    (v, v, v) for v in range(8, 239, 10)}


def _contrast(a: Color, b: Color) -> float:
    def lum(c: Color) -> float:
        def ch(v: int) -> float:
            v /= 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b)
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_high_contrast_uses_exact_256_colour_entries_and_7_to_1_contrast():
    data = tomllib.loads((ROOT / "themes" / "high-contrast.toml").read_text())
    colours = {k: v for k, v in data.items() if isinstance(v, str) and v.startswith("#")}
    colours.update({k: v.split()[0] for k, v in data["variables"].items()})
    assert len(colours) >= 15
    for name, value in colours.items():
        assert Color.parse(value).rgb in XTERM_256, f"{name} = {value} is not an xterm-256 colour"
    background = Color.parse(data["background"])
    for name in ("foreground", "primary", "secondary", "success", "warning", "error"):
        assert _contrast(Color.parse(data[name]), background) >= 7, name
    assert _contrast(Color.parse(data["variables"]["text-muted"]), background) >= 7
    # with no luminosity spread, the shades the app draws are the palette colours themselves
    # (give or take Textual's HSL rounding, which a 256-colour terminal maps back to the same entry)
    theme, _ = parse_theme_file(ROOT / "themes" / "high-contrast.toml")
    generated = theme.to_color_system().generate()
    for var in ("primary", "primary-lighten-1", "primary-darken-2", "background", "panel", "error-darken-1"):
        rgb = Color.parse(generated[var]).rgb
        assert min(max(abs(a - b) for a, b in zip(rgb, entry)) for entry in XTERM_256) <= 2, (var, rgb)


@pytest.mark.parametrize("text, expected", [
    ('primary = "#123456"\nsecondry = "#000000"\n', ":2: unknown key 'secondry'"),
    ('primary = "#123456"\n\n\nerror = "not-a-colour"\n', ":4: error = 'not-a-colour' is not a colour"),
    ('background = "#000000"\n', ":1: a theme needs at least `primary"),
    ('primary = "#123456"\ndark = "yes"\n', ":2: dark must be true or false"),
    ('primary = "#123456"\n[variables]\nx = 3\n', ":2: [variables] must be a table"),
    ('primary = \n', "not valid TOML"),
])
def test_broken_theme_files_say_what_and_where(tmp_path, text, expected):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    theme, problem = parse_theme_file(path)
    assert theme is None and problem.startswith(str(path)) and expected in problem


async def test_config_theme_is_applied_and_user_themes_are_registered(home):
    (home / "config" / "themes" / "mine.toml").write_text('primary = "#ff0000"\naccent = "#00ff00"\n')
    (home / "config" / "themes" / "bad.toml").write_text('primary = "#ff0000"\nnope = 1\n')
    (home / "config" / "config.toml").write_text('[ui]\ntheme = "mine"\n')
    app = QwenApp(lambda: FakeEngine())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        assert app.theme == "mine" and set(SHIPPED) <= set(app.available_themes)
        prompt = app.query_one(PromptInput)
        assert close(prompt.styles.border_top[1], "#00ff00")  # $accent, from the file
        assert any("bad.toml:2: unknown key 'nope'" in p for p in app.config_problems)


async def test_unknown_theme_name_falls_back_with_a_message(home):
    app = QwenApp(lambda: FakeEngine(), settings=settings_with("no-such-theme"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        assert app.theme == "textual-dark"
        assert any("theme 'no-such-theme' is not a known theme" in p for p in app.config_problems)


async def test_palette_switches_theme_live(home):
    app = QwenApp(lambda: FakeEngine(), settings=settings_with("qwen"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        before = app.query_one(PromptInput).styles.border_top[1]
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        await pilot.press(*"paper")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "paper")
        await pilot.pause(0.1)
        after = app.query_one(PromptInput).styles.border_top[1]
        assert close(after, "#9A6700") and not close(before, "#9A6700")  # paper's accent, on screen


async def test_editing_a_theme_file_reapplies_it_and_a_broken_edit_keeps_it(home):
    path = home / "config" / "themes" / "live.toml"
    path.write_text('primary = "#336699"\naccent = "#112233"\n')
    app = QwenApp(lambda: FakeEngine(), settings=settings_with("live", watch=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        prompt = app.query_one(PromptInput)
        assert close(prompt.styles.border_top[1], "#112233")
        await asyncio.sleep(0.3)  # the watcher thread is up
        started = time.monotonic()
        path.write_text('primary = "#336699"\naccent = "#ddeeff"\n')
        await wait_for(pilot, lambda: close(prompt.styles.border_top[1], "#ddeeff"), timeout=3)
        print(f"theme re-applied {time.monotonic() - started:.2f} s after the write")
        assert app.theme == "live"

        path.write_text('primary = "#336699"\naccent = "no colour"\n')
        await wait_for(pilot, lambda: app.theme_problems, timeout=3)
        assert "live.toml:2: accent = 'no colour' is not a colour" in app.theme_problems[-1]
        assert app.theme == "live" and close(prompt.styles.border_top[1], "#ddeeff")
        # what the user sees (posted from the watcher thread: it may land a moment later)
        await wait_for(pilot, lambda: any("live.toml:2" in n.message for n in app._notifications),  # noqa: SLF001
                       timeout=3)

        path.write_text('primary = "#336699"\naccent = "#aa0000"\n')  # fixed again: applied again
        await wait_for(pilot, lambda: close(prompt.styles.border_top[1], "#aa0000"), timeout=3)

        (path.parent / "dropped.toml").write_text('primary = "#010203"\n')  # a new file: offered at once
        await wait_for(pilot, lambda: "dropped" in app.available_themes, timeout=3)
        assert app.theme == "live"


@pytest.mark.parametrize("theme", SHIPPED)
def test_theme_snapshot(snap_compare, theme, home):
    """Each shipped theme on a fixed screen: a resumed conversation (markdown, code, reasoning), a
    typed prompt, the status line and the footer (nothing that depends on token counts)."""
    from qwen_tui.conversation import Message

    history = [Message("user", "capital of France?"),
               Message("assistant", "Paris is the capital of **France**.\n\n- one\n- two\n\n```python\nprint('hi')\n```",
                       reasoning="The user asks about France.", finish_reason="stop")]
    app = QwenApp(lambda: FakeEngine(), settings=settings_with(theme), history=history)

    async def run_before(pilot):
        while app.engine is None or app.status.state != "idle" or not app.transcript.children:
            await pilot.pause(0.05)
        await pilot.press(*"and Italy?")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
