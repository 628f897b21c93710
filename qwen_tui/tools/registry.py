"""The tools the model may call: every active plugin's tools, name clashes refused.

    registry = ToolRegistry(host)          # host: a loaded qwen_tui.plugins.PluginHost
    registry.get("current_time") -> Tool | None;  registry.openai_schemas() -> [...]
    registry.problems -> ["tool 'x' of plugin B clashes with ...; B's is disabled", ...]

Plugins are taken in load order; the first tool with a name wins and a later one with the same
name is disabled with a problem (never silently overwritten). The registry follows the host:
after a hot reload (the host's `generation` moves) the next lookup rebuilds it.
"""

from __future__ import annotations

import threading
from typing import Iterator

from qwen_tui.tools.tool import Tool

__all__ = ["ToolRegistry"]


class ToolRegistry:
    def __init__(self, host=None, tools: list[Tool] | None = None) -> None:
        """From a PluginHost (live), or from a fixed list of tools (tests, embedding)."""
        self.host = host
        self._fixed = list(tools or [])
        self._tools: dict[str, Tool] = {}
        self._problems: list[str] = []
        self._disabled: dict[tuple[str | None, str], str] = {}
        self._generation: int | None = None
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        with self._lock:
            generation = getattr(self.host, "generation", None)
            candidates = (self.host.tools() if self.host is not None else []) + self._fixed
            tools: dict[str, Tool] = {}
            problems: list[str] = []
            disabled: dict[tuple[str | None, str], str] = {}
            for tool in candidates:
                first = tools.get(tool.name)
                if first is None:
                    tools[tool.name] = tool
                    continue
                reason = (
                    f"tool {tool.name!r} of plugin {tool.plugin or '?'} clashes with the one of plugin "
                    f"{first.plugin or '?'} (loaded first); {tool.plugin or '?'}'s is disabled: rename it"
                )
                problems.append(reason)
                disabled[(tool.plugin, tool.name)] = reason
            self._tools, self._problems, self._disabled = tools, problems, disabled
            self._generation = generation

    def _current(self) -> dict[str, Tool]:
        if self.host is not None and getattr(self.host, "generation", None) != self._generation:
            self.refresh()
        return self._tools

    def add(self, tool: Tool) -> None:
        """Add a tool that comes from no plugin (same clash rule)."""
        self._fixed.append(tool)
        self.refresh()

    def get(self, name: str) -> Tool | None:
        return self._current().get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._current()

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._current().values()))

    def __len__(self) -> int:
        return len(self._current())

    def names(self) -> list[str]:
        return list(self._current())

    def openai_schemas(self) -> list[dict]:
        """What to give the chat template / parser as `tools`."""
        return [t.openai_schema() for t in self._current().values()]

    @property
    def problems(self) -> list[str]:
        self._current()
        return list(self._problems)

    def disabled_reason(self, plugin: str | None, name: str) -> str | None:
        """Why this plugin's tool `name` is not offered (a clash), or None."""
        self._current()
        return self._disabled.get((plugin, name))
