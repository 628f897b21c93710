"""The built-in `capture_screen` tool (plugins/screen.py), loaded as any plugin is, against a real
X server (Xvfb started here), without a display, and inside a real tmux server."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image

from qwen_tui.agent.parser import ToolCall
from qwen_tui.plugins import PluginHost, builtin_plugins_dir
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.attachments import tool_message_content
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import execute_call, run_tool
from qwen_tui.tools.tool import ToolContext

PLUGIN = builtin_plugins_dir() / "screen.py"
WIDTH, HEIGHT = 320, 240


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private QWEN_TUI_HOME: screenshots and config of this test only."""
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def capture(tmp_path, home):
    host = PluginHost(plugin_paths=[PLUGIN], builtin_dir=tmp_path / "none", user_dir=tmp_path / "none",
                      entry_points=False, disabled=())
    host.load_all()
    assert host.problems() == []
    registry = ToolRegistry(host)
    tool = registry.get("capture_screen")
    assert tool is not None and not tool.read_only
    return tool


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb(monkeypatch):
    """A real X server, WIDTHxHEIGHT, white root window (-wr): $DISPLAY points at it."""
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed (apt-get install xvfb)", pytrace=False)
    for _attempt in range(5):
        number = _free_display()
        proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-wr", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None and not Path(f"/tmp/.X11-unix/X{number}").exists():
            time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        pytest.fail("Xvfb would not start", pytrace=False)
    time.sleep(0.2)
    monkeypatch.setenv("DISPLAY", f":{number}")
    monkeypatch.delenv("TMUX", raising=False)
    yield number
    proc.terminate()
    proc.wait(timeout=10)


def _saved_png(result) -> Path:
    assert result.ok, result.error
    path = Path(result.content.split(" to ", 1)[1].split(" (", 1)[0])
    assert path.is_file()
    assert f"({path.stat().st_size:,} bytes, PNG)" in result.content
    return path


def test_a_monitor_is_saved_as_a_real_png_of_the_screen_size(capture, xvfb, home):
    result = run_tool(capture, {}, context=ToolContext())
    path = _saved_png(result)
    assert path.parent == home / "data" / "screenshots"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
        assert image.convert("RGB").getextrema() == ((255, 255), (255, 255), (255, 255))  # Xvfb -wr: all white
    assert f"{WIDTH}x{HEIGHT} screenshot of monitor 1 of 1" in result.content
    assert "cannot see images" in result.content and result.images == []

    everything = _saved_png(run_tool(capture, {"monitor": 0}, context=ToolContext()))
    with Image.open(everything) as image:
        assert image.size == (WIDTH, HEIGHT)
    assert everything != path


def test_a_region_has_the_region_size(capture, xvfb):
    path = _saved_png(run_tool(capture, {"region": [10, 20, 123, 45]}, context=ToolContext()))
    with Image.open(path) as image:
        assert image.size == (123, 45)


@pytest.mark.parametrize("arguments, message", [
    ({"region": [300, 0, 100, 10]}, "outside the screen (320x240"),
    ({"region": [0, 0, 0, 10]}, "must be positive"),
    ({"region": [1, 2, 3]}, "region must be [x, y, width, height]"),
    ({"monitor": 2}, "there is no monitor 2: use 1..1, or 0 for all monitors"),
    ({"monitor": "left"}, "argument 'monitor' must be integer"),
])
def test_bad_targets_get_a_clear_message(capture, xvfb, home, arguments, message):
    result = run_tool(capture, arguments, context=ToolContext())
    assert not result.ok and message in result.error
    assert not (home / "data" / "screenshots").exists() or not any((home / "data" / "screenshots").iterdir())


def test_a_model_with_vision_gets_the_image_attached(capture, xvfb):
    result = run_tool(capture, {"region": [0, 0, 64, 32]}, context=ToolContext(model_has_vision=True))
    path = _saved_png(result)
    assert "cannot see" not in result.content and "The image is attached" in result.content
    assert [(i.path, i.width, i.height, i.mime) for i in result.images] == [(path, 64, 32, "image/png")]
    parts = tool_message_content(result)
    assert parts == [{"type": "text", "text": result.content}, {"type": "image", "image": str(path)}]
    assert result.to_dict()["images"][0]["path"] == str(path)


def test_capturing_always_asks_unless_a_rule_allows_it(capture, xvfb, tmp_path):
    store = tmp_path / "approvals.json"
    call = ToolCall(name="capture_screen", arguments={}, raw="")
    interactive = ApprovalPolicy(tmp_path, interactive=True, store_path=store)
    assert interactive.decide(call, capture).verdict == "ask"
    headless = ApprovalPolicy(tmp_path, interactive=False, store_path=store)
    registry = ToolRegistry(tools=[capture])
    refused = execute_call(call, registry=registry, policy=headless, context=ToolContext())
    assert refused.denied and "--allow capture_screen" in refused.error
    asked = []
    allowed = execute_call(call, registry=registry, policy=interactive, context=ToolContext(),
                           ask=lambda *a: asked.append(a) or "session")
    assert allowed.ok and len(asked) == 1
    again = execute_call(call, registry=registry, policy=interactive, context=ToolContext(), ask=lambda *a: asked.append(a) or "deny")
    assert again.ok and len(asked) == 1  # the session rule allowed it without asking


def test_no_display_is_one_clear_message(capture, home, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("TMUX", raising=False)
    result = run_tool(capture, {}, context=ToolContext())
    assert not result.ok
    assert result.error == "NoDisplay: cannot capture the screen: no display ($DISPLAY is not set; over SSH, or no graphical session)"

    monkeypatch.setenv("DISPLAY", f":{_free_display()}")  # set, but no X server there
    stale = run_tool(capture, {}, context=ToolContext())
    assert not stale.ok and stale.error.startswith("NoDisplay: cannot capture the screen: ") and "\n" not in stale.error
    assert "display" in stale.error.lower()


@pytest.fixture
def tmux_pane(monkeypatch):
    """A real tmux server on a private socket whose pane shows a marker; $TMUX/$TMUX_PANE point at it
    as they would for a program running inside that pane."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed", pytrace=False)
    name = f"qwen-screen-{uuid.uuid4().hex[:8]}"
    marker = f"pane-marker-{uuid.uuid4().hex[:6]}"
    tmux = ["tmux", "-L", name, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "80", "-y", "20", "sh", "-c", f"echo {marker}; sleep 60"],
                   check=True, timeout=10)
    try:
        info = subprocess.run([*tmux, "display-message", "-p", "#{socket_path},#{pid},#{session_id}\t#{pane_id}"],
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        tmux_env, pane = info.split("\t")
        deadline = time.monotonic() + 10
        while marker not in subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True, timeout=10).stdout:
            assert time.monotonic() < deadline, "the tmux pane never showed the marker"
            time.sleep(0.05)
        monkeypatch.setenv("TMUX", tmux_env)
        monkeypatch.setenv("TMUX_PANE", pane)
        yield marker
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)


def test_inside_tmux_without_a_display_the_pane_text_is_offered(capture, tmux_pane, home, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run_tool(capture, {}, context=ToolContext())
    assert result.ok, result.error
    assert result.content.startswith("cannot capture the screen: no display")
    assert "text of its tmux pane instead" in result.content and tmux_pane in result.content
    assert result.images == []

    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text("[tools.screen]\ntmux_fallback = false\n")
    refused = run_tool(capture, {}, context=ToolContext())
    assert not refused.ok and "no display" in refused.error and tmux_pane not in refused.error


def test_the_folder_comes_from_config(capture, xvfb, home, tmp_path):
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(f'[tools.screen]\ndir = "{tmp_path / "shots"}"\n')
    path = _saved_png(run_tool(capture, {"region": [0, 0, 8, 8]}, context=ToolContext()))
    assert path.parent == tmp_path / "shots"
