"""Attaching images to a prompt: `/image PATH`, or an image path pasted into the prompt.

The attached images go with the next message (`Message.images`; the engine sends them through
llama.cpp's mtmd when the model has a vision projector). The transcript shows a chip per image
(name, size, pixels) and, where the terminal shows graphics (Kitty or Sixel, via textual-image),
a small inline preview; elsewhere the chip is the text fallback.
"""

from __future__ import annotations

from functools import partial

import sys
from pathlib import Path

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

from qwen_tui.engine.images import IMAGE_SUFFIXES, image_paths_in

_GRAPHICS: type | None = None  # textual-image's widget class, when the terminal does Kitty or Sixel graphics


def prepare_graphics() -> None:
    """Call before the app starts: textual-image asks the terminal what it supports, which it
    cannot do once Textual owns the terminal. No graphics (or no terminal): text chips only."""
    global _GRAPHICS
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        return
    try:
        from textual_image.renderable import Image as Renderable
        from textual_image.renderable.sixel import Image as SixelRenderable
        from textual_image.renderable.tgp import Image as TGPRenderable
        from textual_image.widget import Image as ImageWidget
    except Exception:  # an odd terminal must never stop the app
        return
    if Renderable in (SixelRenderable, TGPRenderable):
        _GRAPHICS = ImageWidget


def describe_image(path: str) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        return f"{p.name} (missing)"
    pixels = ""
    try:
        from PIL import Image

        with Image.open(p) as image:
            pixels = f" · {image.width}×{image.height}"
    except Exception:
        pixels = " · not an image?"
    kb = f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"
    return f"{p.name}{pixels} · {kb}"


class ImageChips(Vertical):
    """One chip line per attached image, plus a preview where the terminal shows graphics."""

    DEFAULT_CSS = """
    ImageChips { height: auto; margin: 0 0 0 2; }
    ImageChips .image-chip { color: $accent; height: auto; }
    ImageChips .image-preview { height: 8; width: 24; }
    """

    def __init__(self, paths: list[str]) -> None:
        super().__init__(classes="image-chips")
        self.paths = list(paths)

    def rebuild(self):  # the transcript may let it go off screen and build it again (widgets/transcript.py)
        return partial(ImageChips, self.paths)

    def compose(self):
        for path in self.paths:
            yield Static(Text(f"[image] {describe_image(path)}"), classes="image-chip")
            if _GRAPHICS is not None:
                try:
                    yield _GRAPHICS(path, classes="image-preview")
                except Exception:
                    pass


class ImageInputMixin:
    """QwenApp's side: pending attachments, `/image`, pasted paths, chips in the transcript."""

    def _pending(self) -> list[str]:
        if not hasattr(self, "_pending_images"):
            self._pending_images: list[str] = []
        return self._pending_images

    def attach_image(self, arg: str) -> None:
        """`/image PATH` (several paths, or quoted ones with spaces, work too); `/image` lists, `/image clear` drops."""
        pending = self._pending()
        if not arg:
            self.notify("Attached: " + ", ".join(Path(p).name for p in pending) if pending
                        else "No image attached. /image PATH attaches one to the next message.")
            return
        if arg == "clear":
            pending.clear()
            self.notify("Attachments dropped")
            return
        _, found = image_paths_in(arg)
        if not found:
            candidate = Path(arg.strip("'\"")).expanduser()
            why = ("not found" if not candidate.exists() else
                   f"not an image ({', '.join(IMAGE_SUFFIXES)})")
            self.notify(f"/image: {candidate}: {why}", severity="warning")
            return
        pending.extend(p for p in found if p not in pending)
        self.notify(f"Attached {', '.join(Path(p).name for p in found)}: sent with your next message"
                    + self._vision_note())

    def collect_images(self, text: str) -> str:
        """Image paths pasted into the prompt become attachments; returns the text without them."""
        rest, found = image_paths_in(text)
        if found:
            pending = self._pending()
            pending.extend(p for p in found if p not in pending)
            return rest
        return text

    def _vision_note(self) -> str:
        engine = getattr(self, "engine", None)
        info = getattr(engine, "info", None)
        vision = (info.extra or {}).get("vision") if info is not None else None
        if info is not None and not (vision and vision.get("enabled")):
            return " (this model has no vision projector: add an mmproj, e.g. `qwen-tui models pull qwen3.5:4b`)"
        return ""

    def take_pending_images(self) -> list[str]:
        images = list(self._pending())
        self._pending().clear()
        return images

    def mount_user_message(self, text: str) -> None:
        from qwen_tui.ui.widgets.messages import UserMessage

        self.transcript.mount(UserMessage(text))
        if self._pending():
            self.transcript.mount(ImageChips(self._pending()))
