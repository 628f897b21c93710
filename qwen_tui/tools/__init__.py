"""Tools the model can call: definition (`tool.py`), registry, runner, approval policy.

Cheap to import (standard library only); the CLI modules live next to it.
"""

from qwen_tui.tools.tool import Tool, ToolContext, ToolDefinitionError, tool

__all__ = ["Tool", "ToolContext", "ToolDefinitionError", "tool"]
