"""First-party plugin: screen capture with mss, written exactly as a user's plugin would be.

`capture_screen` saves a PNG of one monitor, of all monitors, or of a region under the user data
folder (`paths.data_dir()/screenshots`, or `[tools.screen] dir`). A model with vision (an mmproj
configured: `ctx.model_has_vision`) gets the image attached to the result; any other model is
told it cannot see images and gets the path, size and dimensions. Screenshots are private data:
the tool is not read-only, so every capture asks for approval unless a rule allows it.

Without a display (over SSH, $DISPLAY unset, or mss fails) it says so in one line and, when
qwen-tui runs inside tmux ($TMUX), returns the text of the current tmux pane instead
(`[tools.screen] tmux_fallback = false` turns that off).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

from qwen_tui import hookimpl, paths, tool
from qwen_tui.config import load_table
from qwen_tui.tools import ToolContext
from qwen_tui.tools.attachments import ImageAttachment, ToolOutput

NO_VISION = "The current model cannot see images (no vision projector / mmproj is configured), so it cannot look at this screenshot; tell the user where it was saved."


class NoDisplay(RuntimeError):
    """No screen to capture (no display, or mss failed to reach it)."""


def _settings() -> tuple[Path, bool]:
    table, _problems = load_table("tools.screen")  # a broken file means defaults
    folder = table.get("dir")
    folder = Path(folder).expanduser() if isinstance(folder, str) and folder.strip() else paths.data_dir() / "screenshots"
    fallback = table.get("tmux_fallback", True)
    return folder, fallback if isinstance(fallback, bool) else True


def _tmux_pane_text() -> str | None:
    """The visible text of the tmux pane qwen-tui runs in, or None when not inside tmux."""
    socket = os.environ.get("TMUX", "").split(",")[0]
    tmux = shutil.which("tmux")
    if not socket or tmux is None:
        return None
    command = [tmux, "-S", socket, "capture-pane", "-p", "-J"]
    pane = os.environ.get("TMUX_PANE")
    if pane:
        command += ["-t", pane]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.rstrip() + "\n" if done.returncode == 0 else None


def _target(monitors: list[dict], monitor: int, region: list[int] | None) -> tuple[dict, str]:
    """The mss box to grab and a description of it; ValueError with a clear message if bad."""
    desktop = monitors[0]
    if region is not None:
        if len(region) != 4:
            raise ValueError(f"region must be [x, y, width, height], got {len(region)} numbers")
        x, y, width, height = region
        if width <= 0 or height <= 0:
            raise ValueError(f"region width and height must be positive, got {width}x{height}")
        left, top = desktop["left"], desktop["top"]
        right, bottom = left + desktop["width"], top + desktop["height"]
        if x < left or y < top or x + width > right or y + height > bottom:
            raise ValueError(
                f"region {x},{y} {width}x{height} is outside the screen ({desktop['width']}x{desktop['height']} at {left},{top})"
            )
        return {"left": x, "top": y, "width": width, "height": height}, f"region {x},{y} {width}x{height}"
    if not 0 <= monitor < len(monitors):
        raise ValueError(f"there is no monitor {monitor}: use 1..{len(monitors) - 1}, or 0 for all monitors together")
    box = {k: monitors[monitor][k] for k in ("left", "top", "width", "height")}
    return box, "all monitors" if monitor == 0 else f"monitor {monitor} of {len(monitors) - 1}"


def _grab(monitor: int, region: list[int] | None, folder: Path) -> tuple[Path, int, int, str]:
    try:
        import mss
        import mss.tools
    except ImportError as exc:  # pragma: no cover - mss is a dependency
        raise NoDisplay(f"screen capture needs the mss package ({exc})") from None
    try:
        with mss.MSS() as screen:
            monitors = screen.monitors
            if len(monitors) < 2:
                raise NoDisplay("the display reports no monitors")
            box, what = _target(monitors, monitor, region)
            shot = screen.grab(box)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"screen-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
            mss.tools.to_png(shot.rgb, shot.size, output=str(path))
            return path, shot.width, shot.height, what
    except mss.ScreenShotError as exc:
        reason = " ".join(str(exc).split())
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            reason = "no display ($DISPLAY is not set; over SSH, or no graphical session)"
        raise NoDisplay(f"cannot capture the screen: {reason}") from None


@tool(timeout=30)
def capture_screen(monitor: int = 1, region: list[int] | None = None, ctx: ToolContext = None) -> ToolOutput | str:
    """Take a screenshot (PNG) of a monitor, of all monitors, or of a region of the screen.

    Args:
        monitor: 1 for the first monitor, 2 for the second, ...; 0 for all monitors together.
        region: [x, y, width, height] in pixels from the top-left of the whole screen; when given, replaces monitor.
    """
    folder, tmux_fallback = _settings()
    try:
        path, width, height, what = _grab(monitor, region, folder)
    except NoDisplay as exc:
        pane = _tmux_pane_text() if tmux_fallback else None
        if pane is None:
            raise
        return f"{exc}. qwen-tui runs inside tmux, so here is the text of its tmux pane instead:\n{pane}"
    size = path.stat().st_size
    summary = f"Saved a {width}x{height} screenshot of {what} to {path} ({size:,} bytes, PNG)."
    if ctx is not None and ctx.model_has_vision:
        return ToolOutput(f"{summary} The image is attached.", images=[ImageAttachment(path, width, height)])
    return f"{summary} {NO_VISION}"


@hookimpl
def register_tools(register):
    register(capture_screen)
