"""A tool's image (a screenshot) reaches a model that can see, and only such a model."""

from __future__ import annotations

from pathlib import Path

from qwen_tui.agent.events import AgentFinished
from qwen_tui.agent.loop import Agent
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.attachments import ImageAttachment, ToolOutput
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.tool import Tool, ToolContext, tool

CALL = "<tool_call>\n<function=look>\n</function>\n</tool_call>"


def make_registry(picture: Path) -> ToolRegistry:
    @tool(read_only=True)
    def look(ctx: ToolContext) -> object:
        """Take a picture."""
        if not ctx.model_has_vision:
            return f"The current model cannot see images; the picture is at {picture}"
        return ToolOutput(f"Here is the picture ({picture.name}).", images=[ImageAttachment(picture, 4, 3)])

    return ToolRegistry(tools=[Tool.from_function(look)])


def run(engine: FakeEngine, tmp_path: Path) -> list[dict]:
    picture = tmp_path / "shot.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    policy = ApprovalPolicy(tmp_path, store_path=tmp_path / "approvals.json")
    events = list(Agent(engine, make_registry(picture), policy).run(
        [{"role": "user", "content": "What is on my screen?"}], thinking=False, max_tokens=50))
    assert isinstance(events[-1], AgentFinished) and events[-1].reason == "answered"
    return [m for m in engine.requests[1]["messages"] if m["role"] == "tool"]


def test_the_image_goes_with_the_tool_result_to_a_model_that_can_see(tmp_path):
    engine = FakeEngine([CALL, "A terminal."])
    engine.load()
    engine.info.extra["vision"] = {"mmproj": "mmproj.gguf"}
    [message] = run(engine, tmp_path)
    assert message["images"] == [str(tmp_path / "shot.png")]
    assert "Here is the picture" in message["content"]


def test_a_model_without_vision_gets_the_path_and_no_image(tmp_path):
    engine = FakeEngine([CALL, "I can't see it."])
    engine.load()
    [message] = run(engine, tmp_path)
    assert "images" not in message
    assert "cannot see images" in message["content"] and "shot.png" in message["content"]
