"""The built-in MCP plugin (plugins/mcp_servers.py) with real servers started through config.toml:
PyPI's `mcp-server-time` and a small slow server written with the `mcp` package."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qwen_tui.agent.parser import ToolCall
from qwen_tui.plugins import PluginHost, builtin_plugins_dir
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.mcp_bridge import parse_servers, tool_name_for
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.runner import execute_call, run_tool
from qwen_tui.tools.tool import ToolContext

PLUGIN = builtin_plugins_dir() / "mcp_servers.py"
CLOCK = builtin_plugins_dir() / "clock.py"
# generous startup_timeout: a loaded test machine can take many seconds to import a server
TIME_SERVER = (f'command = {json.dumps(sys.executable)}\nargs = ["-m", "mcp_server_time", "--local-timezone", "UTC"]\n'
               "startup_timeout = 120\n")

SLOW_SERVER = textwrap.dedent('''
    import asyncio
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("slow")

    @server.tool()
    async def wait(seconds: float) -> str:
        """Wait some seconds, then say so."""
        await asyncio.sleep(seconds)
        return f"waited {seconds} s"

    asyncio.run(server.run_stdio_async())
''')


def children(marker: str) -> list[int]:
    """Processes whose parent is this test process and whose command line holds `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and marker in cmdline:
            found.append(int(entry))
    return found


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def start(tmp_path: Path, monkeypatch, config: str, *extra: Path):
    """Load the MCP plugin (and `extra` plugins) with `config` as config.toml in a private home."""
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(config)
    monkeypatch.setenv("QWEN_TUI_HOME", str(home))
    host = PluginHost(plugin_paths=[PLUGIN, *extra], builtin_dir=tmp_path / "none", user_dir=tmp_path / "none",
                      entry_points=False, disabled=())
    host.load_all()
    return host, ToolRegistry(host), host.find(name="mcp_servers").module


@pytest.fixture
def time_server(tmp_path, monkeypatch):
    host, registry, module = start(tmp_path, monkeypatch, "[mcp.servers.time]\n" + TIME_SERVER + "timeout = 20\n")
    yield host, registry, module
    module.shutdown()


def call(registry, name, arguments, *, tmp_path, answer="once"):
    policy = ApprovalPolicy(tmp_path, interactive=True, store_path=tmp_path / "approvals.json")
    asked = []
    result = execute_call(ToolCall(name, arguments, ""), registry=registry, policy=policy, context=ToolContext(),
                          ask=lambda c, t, d: asked.append(t.name) or answer)
    return result, asked


def test_tools_of_the_time_server_round_trip(time_server, tmp_path):
    host, registry, _module = time_server
    assert host.problems() == []
    assert {"time__get_current_time", "time__convert_time"} <= set(registry.names())
    tool = registry.get("time__get_current_time")
    assert tool.plugin == "mcp_servers" and not tool.read_only
    schema = tool.openai_schema()["function"]
    assert schema["parameters"]["required"] == ["timezone"]  # the server's own inputSchema
    assert "IANA timezone name" in schema["parameters"]["properties"]["timezone"]["description"]
    assert schema["description"].startswith("Get current time in a specific timezone")

    result, asked = call(registry, "time__get_current_time", {"timezone": "Asia/Tokyo"}, tmp_path=tmp_path)
    assert asked == ["time__get_current_time"]  # same approval rules as any tool that is not read-only
    assert result.ok, result.error
    answer = json.loads(result.content)
    assert answer["timezone"] == "Asia/Tokyo" and answer["datetime"].endswith("+09:00")
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    assert abs(datetime.fromisoformat(answer["datetime"]) - now) < timedelta(minutes=2)
    assert answer["day_of_week"] == datetime.fromisoformat(answer["datetime"]).strftime("%A")

    converted, _ = call(registry, "time__convert_time",
                        {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Kolkata"}, tmp_path=tmp_path)
    assert converted.ok and json.loads(converted.content)["target"]["datetime"][11:16] == "17:30"

    refused, _ = call(registry, "time__get_current_time", {"timezone": "Nowhere/Atlantis"}, tmp_path=tmp_path)
    assert not refused.ok and "Invalid timezone" in refused.error and "Nowhere/Atlantis" in refused.error
    wrong, _ = call(registry, "time__get_current_time", {"zone": "UTC"}, tmp_path=tmp_path)
    assert not wrong.ok and "missing required argument 'timezone'" in wrong.error
    denied, _ = call(registry, "time__get_current_time", {"timezone": "UTC"}, tmp_path=tmp_path, answer="deny")
    assert denied.denied

    headless = ApprovalPolicy(tmp_path, interactive=False, store_path=tmp_path / "approvals.json")
    off = execute_call(ToolCall("time__get_current_time", {"timezone": "UTC"}, ""), registry=registry, policy=headless)
    assert off.denied and "--allow time__get_current_time" in off.error


def test_the_agent_calls_an_mcp_tool_and_reads_its_answer(time_server, tmp_path):
    from qwen_tui.agent.events import AgentFinished
    from qwen_tui.agent.loop import Agent
    from qwen_tui.testing.fake_engine import FakeEngine

    host, registry, _module = time_server
    call_text = ("<tool_call>\n<function=time__get_current_time>\n<parameter=timezone>\nAmerica/New_York\n"
                 "</parameter>\n</function>\n</tool_call>")
    engine = FakeEngine([call_text, "Done."])
    policy = ApprovalPolicy(tmp_path, interactive=True, store_path=tmp_path / "approvals.json")
    asked = []
    agent = Agent(engine, registry, policy, host, ask=lambda c, t, d: asked.append(c.name) or "once",
                  context=ToolContext(workspace=tmp_path))
    events = list(agent.run([{"role": "user", "content": "Time in New York?"}], thinking=False, max_tokens=100))
    done = events[-1]
    assert isinstance(done, AgentFinished) and done.answer == "Done." and asked == ["time__get_current_time"]
    offered = {t["function"]["name"]: t for t in engine.requests[0]["tools"]}
    assert offered["time__get_current_time"]["function"]["parameters"]["required"] == ["timezone"]
    [tool_message] = [m for m in done.messages if m["role"] == "tool"]
    assert json.loads(tool_message["content"])["timezone"] == "America/New_York"
    assert engine.requests[1]["messages"][-1] == tool_message  # the model read the server's answer


def test_shutdown_leaves_no_child_process(time_server):
    _host, registry, module = time_server
    assert len(children("mcp_server_time")) == 1
    module.shutdown()
    assert wait_until(lambda: children("mcp_server_time") == []), children("mcp_server_time")
    after = run_tool(registry.get("time__get_current_time"), {"timezone": "UTC"})
    assert not after.ok and "shut down" in after.error


def test_a_server_that_died_is_restarted_on_the_next_call(time_server):
    _host, registry, _module = time_server
    [first] = children("mcp_server_time")
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: first not in children("mcp_server_time"))
    result = run_tool(registry.get("time__get_current_time"), {"timezone": "Europe/Paris"}, timeout=None)
    assert result.ok, result.error
    assert json.loads(result.content)["timezone"] == "Europe/Paris"
    assert len(children("mcp_server_time")) == 1 and first not in children("mcp_server_time")


def test_a_broken_server_is_a_problem_and_everything_else_works(tmp_path, monkeypatch):
    config = (
        "[mcp.servers.time]\n" + TIME_SERVER
        + '[mcp.servers.broken]\ncommand = "/nonexistent/mcp-server"\n'
        + f'[mcp.servers.crashes]\ncommand = {json.dumps(sys.executable)}\nargs = ["-c", "import sys; sys.exit(\'no token set\')"]\n'
        + '[mcp.servers.off]\ncommand = "/nonexistent/other"\nenabled = false\n'
    )
    host, registry, module = start(tmp_path, monkeypatch, config, CLOCK)
    try:
        problems = host.problems()
        assert len(problems) == 2, problems
        assert any("MCP server 'broken' (/nonexistent/mcp-server) failed: FileNotFoundError" in p for p in problems)
        assert any("MCP server 'crashes'" in p and "its stderr: no token set" in p for p in problems)
        assert all(p.startswith("plugin mcp_servers: ") and "\n" not in p for p in problems)
        assert not any(name.startswith(("broken__", "crashes__", "off__")) for name in registry.names())
        assert "current_time" in registry.names()
        assert run_tool(registry.get("current_time"), {"timezone": "UTC"}).ok
        assert run_tool(registry.get("time__get_current_time"), {"timezone": "UTC"}).ok
    finally:
        module.shutdown()
    assert wait_until(lambda: children("mcp_server_time") == [])


def test_a_server_that_never_answers_is_given_up_after_startup_timeout(tmp_path, monkeypatch):
    marker = f"silent-{os.getpid()}-{time.monotonic_ns()}"
    config = (f"[mcp.servers.silent]\ncommand = {json.dumps(sys.executable)}\n"
              f'args = ["-c", "import time, sys; sys.argv; time.sleep(120)", "{marker}"]\nstartup_timeout = 1\n')
    began = time.monotonic()
    host, registry, module = start(tmp_path, monkeypatch, config)
    try:
        assert time.monotonic() - began < 15
        assert host.problems() == [f"plugin mcp_servers: MCP server 'silent' ({sys.executable}) did not answer within 1 s (startup_timeout)"]
        assert not any(name.startswith("silent__") for name in registry.names())
        assert wait_until(lambda: children(marker) == [])  # the stuck process was killed
    finally:
        module.shutdown()


def test_a_slow_call_times_out_and_the_server_stays_usable(tmp_path, monkeypatch):
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW_SERVER)
    config = f"[mcp.servers.slow]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(script))}]\ntimeout = 3\nstartup_timeout = 120\n"
    host, registry, module = start(tmp_path, monkeypatch, config)
    try:
        assert host.problems() == []
        tool = registry.get("slow__wait")
        assert tool.parameters["required"] == ["seconds"]
        began = time.monotonic()
        slow = run_tool(tool, {"seconds": 30}, timeout=None)
        assert time.monotonic() - began < 10
        assert not slow.ok and "MCP server 'slow' did not answer wait within 3 s (timeout)" in slow.error
        quick = run_tool(tool, {"seconds": 0.1}, timeout=None)
        assert quick.ok and quick.content == "waited 0.1 s"
    finally:
        module.shutdown()
    assert wait_until(lambda: children(str(script)) == [])


@pytest.mark.parametrize("config, message", [
    ({"x": "uvx"}, "[mcp.servers.x] must be a table"),
    ({"x": {"args": ["a"]}}, "[mcp.servers.x]: command must be a non-empty string"),
    ({"x": {"command": "a", "args": "b"}}, "args must be a list of strings"),
    ({"x": {"command": "a", "env": {"A": 1}}}, "env must be a table of strings"),
    ({"x": {"command": "a", "timeout": 0}}, "timeout and startup_timeout must be positive"),
    ({"x": {"command": "a", "enabled": "yes"}}, "enabled must be true or false"),
    ({"a b": {"command": "a"}}, "[mcp.servers.a b]: the name must be a letter"),
])
def test_bad_server_entries_are_one_line_problems(config, message):
    servers, problems = parse_servers(config)
    assert servers == [] and len(problems) == 1 and message in problems[0]


def test_tool_names_are_valid_and_unique():
    assert tool_name_for("time", "get_current_time") == "time__get_current_time"
    assert tool_name_for("fs", "read file/now") == "fs__read_file_now"
    long_a, long_b = tool_name_for("server", "x" * 80), tool_name_for("server", "x" * 79 + "y")
    assert len(long_a) == 64 and len(long_b) == 64 and long_a != long_b


@pytest.mark.parametrize("parameters, message", [
    ({"type": "array"}, "parameters must be a JSON schema of type object"),
    ({"type": "object", "properties": {"a": "string"}}, "'properties' must map names to schemas"),
    ({"type": "object", "required": "a"}, "'required' must be a list of names"),
])
def test_a_server_schema_that_cannot_be_a_tool_is_refused_clearly(parameters, message):
    from qwen_tui.tools.tool import Tool, ToolDefinitionError

    with pytest.raises(ToolDefinitionError, match=message.replace("(", r"\(")):
        Tool.from_schema("srv__x", "d", parameters, lambda **kw: "")
    with pytest.raises(ToolDefinitionError, match="tool name"):
        Tool.from_schema("bad name", "d", {}, lambda **kw: "")
    made = Tool.from_schema("srv__x", " text ", {}, lambda **kw: "")
    assert made.parameters == {"type": "object", "properties": {}, "required": []} and made.description == "text"
