"""Plugins, tools and the approval policy for one run, built the same way for the app and -p."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qwen_tui.plugins import PluginHost
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.tool import ToolContext


@dataclass
class Toolset:
    host: PluginHost | None
    registry: ToolRegistry | None
    policy: ApprovalPolicy
    context: ToolContext
    problems: list[str] = field(default_factory=list)


def build_toolset(*, workspace: Path, model: str, plugin_paths=(), allow=(), yolo: bool = False,
                  interactive: bool, enabled: bool = True) -> Toolset:
    """Load every plugin (faulty ones are reported in `problems`, never fatal)."""
    context = ToolContext(workspace=workspace, model=model)
    if not enabled:
        return Toolset(None, None, ApprovalPolicy(workspace, interactive=interactive), context)
    host = PluginHost(plugin_paths=[Path(p) for p in plugin_paths])
    host.load_all()
    registry = ToolRegistry(host)
    policy = ApprovalPolicy(workspace, yolo=yolo, allow=set(allow), interactive=interactive, host=host)
    return Toolset(host, registry, policy, context, [*host.problems(), *registry.problems])
