"""Earlier messages (a resumed session) on screen without freezing the app.

Each message becomes a factory (a callable that builds its block); the transcript mounts only the
newest of them and builds older ones when scrolling reaches them (see widgets/transcript.py).
"""

from __future__ import annotations

from functools import partial

from qwen_tui.ui.image_input import ImageChips
from qwen_tui.ui.widgets.messages import AssistantMessage, ToolCallBlock, UserMessage


def _tool_result_block(content: str) -> ToolCallBlock:
    block = ToolCallBlock("result")
    block.finished(True, content)
    return block


def block_factories(message) -> list:
    if message.role == "user":
        images = list(getattr(message, "images", None) or [])
        return [partial(UserMessage, message.content)] + ([partial(ImageChips, images)] if images else [])
    if message.role == "tool":
        return [partial(_tool_result_block, message.content)]
    return [partial(AssistantMessage, message.content, message.reasoning, finished=True)]


async def mount_history(transcript, messages: list) -> None:
    shown = [m for m in messages if m.role in ("user", "assistant", "tool")
             and (m.content or m.reasoning or m.role != "assistant")]
    await transcript.show_history([make for m in shown for make in block_factories(m)])
