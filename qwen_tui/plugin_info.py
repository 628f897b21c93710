"""What the plugin host knows about each plugin, and the `register` callables through which a
plugin's `register_tools` / `register_commands` hooks add to it (for `PluginHost`, plugins.py).

A tool or command a plugin gets wrong is a one-line problem on its `PluginInfo` (the plugin
stays active); only a failing import or hook disables the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from qwen_tui.tools.tool import Tool, ToolDefinitionError


class PluginHookError(Exception):
    """A plugin's hook raised (the message names the hook and the error)."""


@dataclass(frozen=True)
class SessionInfo:
    """What `extra_system_prompt` sees of the session (read-only)."""

    workspace: Path
    model: str | None = None


@dataclass
class Command:
    name: str
    fn: Callable[..., Any]
    description: str
    plugin: str


@dataclass
class PluginInfo:
    """One plugin. `active`: its hooks and tools are in use. `error` with `active` True means a
    reload failed and the previous version is still in use."""

    name: str
    source: str  # "builtin" | "entry point" | "user" | "path"
    module: Any = None
    error: str | None = None
    tools: list[Tool] = field(default_factory=list)
    path: Path | None = None
    origin: str = ""  # the file, or "dist-name version" for an entry point
    active: bool = False
    disabled: bool = False
    removed: bool = False
    problems: list[str] = field(default_factory=list)  # per-tool/command problems (plugin still active)
    commands: list[Command] = field(default_factory=list)


def tool_registrar(info: PluginInfo) -> Callable[..., None]:
    """The `register` passed to a plugin's `register_tools`: functions, objects or built Tools."""

    def register(fn_or_obj: Any, name: str | None = None) -> None:
        try:
            if isinstance(fn_or_obj, type):
                raise ToolDefinitionError(f"register() got the class {fn_or_obj.__name__}; pass an instance")
            if isinstance(fn_or_obj, Tool):  # built by Tool.from_schema (MCP, OpenAPI, ...)
                tools = [fn_or_obj]
            elif callable(fn_or_obj) and (hasattr(fn_or_obj, "__code__") or hasattr(fn_or_obj, "__func__") or hasattr(fn_or_obj, "func")):
                tools = [Tool.from_function(fn_or_obj, name=name)]
            else:
                tools = Tool.from_object(fn_or_obj, prefix=name)
        except ToolDefinitionError as exc:
            info.problems.append(str(exc))
            return
        for t in tools:
            t.plugin = info.name
        info.tools.extend(tools)

    def problem(message: str) -> None:
        """Report a problem (one line) without disabling the plugin, e.g. an MCP server that
        did not start: shown with the other plugin problems."""
        info.problems.append(" ".join(str(message).split()))

    register.problem = problem
    return register


def command_registrar(info: PluginInfo) -> Callable[..., None]:
    """The `register` passed to a plugin's `register_commands`: (name, callable, description)."""

    def register(name: str, fn: Callable[..., Any], description: str = "") -> None:
        if not isinstance(name, str) or not name.strip("/").strip() or not callable(fn):
            info.problems.append(f"command {name!r}: needs a name and a callable")
            return
        info.commands.append(Command(name.strip().lstrip("/"), fn, description, info.name))

    return register
