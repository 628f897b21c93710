"""First-party plugin: the tools of MCP servers (stdio), written exactly as a user's plugin would be.

Each server in config.toml is started when the plugin loads (all at once, in a background
thread; qwen-tui waits for their tool lists) and its tools are offered as ``SERVER__TOOL``
with the server's own JSON schema and description. They are never read-only: every call asks
for approval unless a rule (``--allow``, "for this session", "always in this project") allows
it. A server that does not start is reported as a problem of this plugin; the others and every
other tool keep working.

    [mcp.servers.time]
    command = "uvx"                      # the program (required)
    args = ["mcp-server-time"]           # its arguments (default [])
    env = { TZ = "Europe/Paris" }        # extra environment (default {}); secrets are not inherited
    timeout = 60                         # seconds per call (default 60)
    startup_timeout = 30                 # seconds to start and list tools (default 30)
    enabled = true                       # false: not started (default true)

The servers stop (their processes end) when qwen-tui exits.
"""

from __future__ import annotations

import atexit
import logging

from qwen_tui import hookimpl
from qwen_tui.config import load_table
from qwen_tui.tools import Tool, ToolDefinitionError
from qwen_tui.tools.mcp_bridge import McpBridge, parse_servers, tool_name_for

log = logging.getLogger(__name__)
_bridge: McpBridge | None = None


def shutdown() -> None:
    """Stop every server started by this plugin (also run at exit)."""
    global _bridge
    bridge, _bridge = _bridge, None
    if bridge is not None:
        bridge.close()


@hookimpl
def plugin_unloading():
    shutdown()  # reloaded, disabled or exiting: the servers go with the plugin


def _caller(bridge: McpBridge, server: str, name: str):
    def call(**arguments):
        return bridge.call(server, name, arguments)

    call.__name__ = tool_name_for(server, name)
    return call


@hookimpl
def register_tools(register):
    global _bridge
    problem = getattr(register, "problem", log.warning)
    shutdown()  # loaded again: the previous servers go first
    table, problems = load_table("mcp.servers")
    servers, more = parse_servers(table)
    for message in problems + more:
        problem(message)
    if not servers:
        return
    _bridge = bridge = McpBridge()
    atexit.register(bridge.close)
    for message in bridge.start(servers):
        problem(message)
    for server, remote in bridge.tools():
        description = f"{(remote.description or remote.name).strip()} (MCP server {server!r})"
        try:
            tool = Tool.from_schema(tool_name_for(server, remote.name), description, remote.input_schema or {},
                                    _caller(bridge, server, remote.name), timeout=bridge.longest_call(server))
        except ToolDefinitionError as exc:
            problem(f"MCP server {server!r}, tool {remote.name!r} skipped: {exc}")
            continue
        register(tool)
