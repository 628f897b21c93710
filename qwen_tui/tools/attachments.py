"""Tool results that carry images (a screenshot for a model that can see).

    from qwen_tui.tools.attachments import ImageAttachment, ToolOutput
    return ToolOutput("Saved a 1920x1080 screenshot to /path.png", images=[ImageAttachment(Path("/path.png"), 1920, 1080)])

- A tool returns ``ToolOutput(content, images=[...])`` instead of a plain value: ``content`` is
  what the model reads (a ``str`` or anything JSON-serialisable, as for any tool), ``images``
  the pictures for it to look at. The runner copies them to ``ToolResult.images``.
- A tool should attach images only when ``ctx.model_has_vision`` (``ToolContext``) is true, and
  otherwise say in ``content`` that the model cannot see images, with the file's path.
- ``tool_message_content(result)`` is the ``content`` of the ``{"role": "tool"}`` message for
  the model: the text alone, or, with images, the content parts that the Qwen 3.5 chat template
  renders as ``<|vision_start|><|image_pad|><|vision_end|>`` (one per image, after the text):
  ``[{"type": "text", "text": ...}, {"type": "image", "image": "/abs/path.png"}]``. The engine
  replaces each image marker with the image's embedding from the mmproj.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ImageAttachment", "ToolOutput", "tool_message_content"]


@dataclass(frozen=True)
class ImageAttachment:
    """An image file for the model to see (absolute path; PNG unless `mime` says otherwise)."""

    path: Path
    width: int = 0
    height: int = 0
    mime: str = "image/png"

    def to_dict(self) -> dict:
        return {"path": str(self.path), "width": self.width, "height": self.height, "mime": self.mime}


@dataclass
class ToolOutput:
    """A tool's return value with attachments: `content` for the model to read, `images` to see."""

    content: Any = ""
    images: list[ImageAttachment] = field(default_factory=list)


def tool_message_content(result: Any) -> str | list[dict]:
    """The `content` of the tool message for `result` (a ToolResult): a str, or content parts."""
    text = result.for_model()
    images = list(getattr(result, "images", None) or [])
    if not images or not getattr(result, "ok", False):
        return text
    parts: list[dict] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image", "image": str(image.path)} for image in images]
    return parts
