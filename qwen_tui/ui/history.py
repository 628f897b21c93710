"""Earlier messages (a resumed session) on screen without freezing the app.

The newest messages are mounted first, so the screen is usable at once; older ones are added
above them in small chunks, yielding to input in between (a 1,000-message session would
otherwise block every key while each message is laid out).
"""

from __future__ import annotations

import asyncio

from qwen_tui.ui.widgets.messages import AssistantMessage, ToolCallBlock, UserMessage


async def mount_history(transcript, messages: list, *, first_chunk: int = 40, chunk: int = 10) -> None:
    def widget(message):
        if message.role == "user":
            return UserMessage(message.content)
        if message.role == "tool":
            block = ToolCallBlock("result")
            block.finished(True, message.content)
            return block
        return AssistantMessage(message.content, message.reasoning, finished=True)

    shown = [m for m in messages if m.role in ("user", "assistant", "tool")
             and (m.content or m.reasoning or m.role != "assistant")]
    newest, older = shown[-first_chunk:], shown[:-first_chunk]
    await transcript.mount_all([widget(m) for m in newest], before=0 if transcript.children else None)
    transcript.scroll_end(animate=False)
    while older:
        older, part = older[:-chunk], older[-chunk:]
        await asyncio.sleep(0)  # let keys through
        await transcript.mount_all([widget(m) for m in part], before=0)

