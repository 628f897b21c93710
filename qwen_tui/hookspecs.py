"""The hooks a qwen-tui plugin can implement (the whole plugin API, in one place).

A plugin is a Python module (a file, or a module named by an entry point of group
``qwen_tui``) with functions decorated by ``qwen_tui.hookimpl`` whose names are those below.
An implementation may leave out arguments it does not need (pluggy matches them by name).

Every hook is called for each plugin separately by ``qwen_tui.plugins.PluginHost``: an
implementation that raises disables its own plugin (with the error reported), never the others.
See docs/plugins.md for a walk-through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from qwen_tui.plugins import SessionInfo
    from qwen_tui.tools.runner import ToolResult
    from qwen_tui.tools.tool import Tool

PROJECT = "qwen_tui"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tools(register: Callable[..., Any]) -> None:
    """Register the tools this plugin offers to the model.

    ``register(fn_or_obj, name=None)`` takes either a plain typed function (sync or
    ``async def``), whose name, first docstring paragraph, type hints and per-argument
    docstring descriptions make the tool, or an instance of a class whose public methods all
    become tools sharing that instance's state/config (``name``, if given, prefixes them:
    ``name_method``). ``name`` renames a function tool. Decorate with ``qwen_tui.tool(...)``
    (or set function attributes) for ``read_only``, ``timeout`` and ``needs_approval``.
    """


@hookspec
def register_commands(register: Callable[[str, Callable[..., Any], str], None]) -> None:
    """Register slash commands: ``register(name, fn, description)``.

    ``name`` without the slash (``"weather"`` gives ``/weather``); ``fn(args: str)`` receives the
    text after the command and may return a string to show (or ``None``).
    """


@hookspec
def extra_system_prompt(session: "SessionInfo") -> Optional[str]:
    """Return text to append to the system prompt, or ``None``.

    ``session`` is read-only: ``session.workspace`` (a resolved ``Path``) and
    ``session.model`` (the model's name, or ``None`` before one is loaded).
    """


@hookspec(firstresult=True)
def approve_tool_call(call: Any, tool: "Tool") -> Optional[Literal["allow", "deny"]]:
    """Decide on a tool call before qwen-tui's own approval rules: ``"allow"``, ``"deny"``, or
    ``None`` to leave it to the next plugin and then to the user's rules.

    ``call`` has ``.name`` and ``.arguments`` (a dict, already validated types not guaranteed);
    ``tool`` is the ``qwen_tui.tools.Tool`` it would run. The first non-``None`` answer wins
    (plugins loaded later are asked first, as in pluggy). A plugin's answer applies even with
    ``--yolo``.
    """


@hookspec
def tool_call_finished(call: Any, result: "ToolResult") -> None:
    """Called after every tool call the agent ran (or refused): ``result.ok``, ``.content``,
    ``.error``, ``.elapsed_ms``, ``.truncated``. For logging, metrics, notifications."""


@hookspec
def plugin_unloading() -> None:
    """Release what this plugin holds (child processes, threads, open files, sockets).

    Called once for a plugin that goes away: before a hot reload replaces it (the new version
    is already loaded and registered its own tools), when its file is deleted, when it is
    disabled after an error, and when qwen-tui exits. An exception here is logged and ignored.
    """

