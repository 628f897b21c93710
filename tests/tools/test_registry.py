"""The registry offers each tool name once: a clash disables the later one, with a reason."""

from __future__ import annotations

import textwrap

from qwen_tui.plugins import PluginHost
from qwen_tui.tools import Tool
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import run_tool


def write_plugin(path, greeting: str) -> None:
    path.write_text(textwrap.dedent(f'''
        from qwen_tui import hookimpl

        def greet(name: str) -> str:
            """Greet someone."""
            return "{greeting}, " + name

        @hookimpl
        def register_tools(register):
            register(greet)
    '''))


def test_name_clash_between_plugins_keeps_the_first(tmp_path):
    write_plugin(tmp_path / "alpha.py", "Hello")
    write_plugin(tmp_path / "beta.py", "Bonjour")
    host = PluginHost(plugin_paths=[tmp_path / "alpha.py", tmp_path / "beta.py"], builtin_dir=tmp_path / "none",
                      user_dir=tmp_path / "none", entry_points=False, disabled=())
    host.load_all()
    registry = ToolRegistry(host)
    assert registry.names() == ["greet"]
    assert run_tool(registry.get("greet"), {"name": "Ada"}).content == "Hello, Ada"
    [problem] = registry.problems
    assert "clashes" in problem and "beta" in problem and "alpha" in problem
    assert registry.disabled_reason("beta", "greet") == problem
    assert registry.disabled_reason("alpha", "greet") is None
    assert len(registry.openai_schemas()) == 1


def test_fixed_tools_clash_too():
    def ping() -> str:
        """Ping."""
        return "pong"

    registry = ToolRegistry(tools=[Tool.from_function(ping)])
    registry.add(Tool.from_function(lambda: "other", name="ping"))
    assert registry.get("ping").fn() == "pong" and len(registry) == 1
    assert "clashes" in registry.problems[0]
    assert "ping" in registry and "pong" not in registry
