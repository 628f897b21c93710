"""MCP servers (stdio) run from a background thread, their tools callable from any thread.

    servers, problems = parse_servers(load_table("mcp.servers")[0])
    bridge = McpBridge(); problems += bridge.start(servers)      # waits for each server's tool list
    bridge.tools() -> [(server, mcp_types.Tool), ...];  bridge.call("time", "get_current_time", {...}) -> str
    bridge.close()                                               # every child process ends

- One daemon thread runs one asyncio loop; each server is one task that holds the `mcp.Client`
  (its stdio transport and child process) open until `close()`. Calls from other threads go
  through `asyncio.run_coroutine_threadsafe` and wait at most the server's `timeout`.
- A server that cannot start (bad command, crash, no answer within `startup_timeout`) becomes
  one problem line naming it and the tail of its stderr (logged to `paths.log_dir()/mcp-NAME.log`);
  the other servers are unaffected. A server that dies later is restarted once on the next call;
  if that fails the call fails with the reason.
- The child gets only the `mcp` package's safe environment (HOME, PATH, USER, ...) plus the
  configured `env`, so qwen-tui's own secrets are not passed on.
- `close()` ends the sessions: the transport closes the child's stdin, then terminates and kills
  its process tree if needed (bounded waits).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_tui import paths

__all__ = ["ServerConfig", "McpBridge", "McpCallError", "parse_servers", "format_result", "tool_name_for"]

_SERVER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
DEFAULT_TIMEOUT = 60.0
DEFAULT_STARTUP_TIMEOUT = 30.0


class McpCallError(RuntimeError):
    """A call that could not be made or that the server reported as failed (message for the model)."""


@dataclass
class ServerConfig:
    name: str
    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float = DEFAULT_TIMEOUT  # per call, seconds
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT


def _number(value: Any, default: float) -> float | None:
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def parse_servers(table: dict) -> tuple[list[ServerConfig], list[str]]:
    """The enabled servers of a `[mcp.servers]` table and one problem line per bad entry."""
    servers, problems = [], []
    for name, entry in table.items():
        where = f"[mcp.servers.{name}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a table with command = \"...\"")
            continue
        if not _SERVER_NAME.match(name):
            problems.append(f"{where}: the name must be a letter then letters, digits, '_' or '-' (at most 32)")
            continue
        if entry.get("enabled", True) is False:
            continue
        command, args, env = entry.get("command"), entry.get("args", []), entry.get("env", {})
        timeout = _number(entry.get("timeout"), DEFAULT_TIMEOUT)
        startup = _number(entry.get("startup_timeout"), DEFAULT_STARTUP_TIMEOUT)
        cwd = entry.get("cwd")
        if not isinstance(command, str) or not command.strip():
            problems.append(f"{where}: command must be a non-empty string (the program to run)")
        elif not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            problems.append(f"{where}: args must be a list of strings")
        elif not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            problems.append(f"{where}: env must be a table of strings")
        elif timeout is None or startup is None:
            problems.append(f"{where}: timeout and startup_timeout must be positive numbers of seconds")
        elif cwd is not None and not isinstance(cwd, str):
            problems.append(f"{where}: cwd must be a string")
        elif not isinstance(entry.get("enabled", True), bool):
            problems.append(f"{where}: enabled must be true or false")
        else:
            servers.append(ServerConfig(name, command, list(args), dict(env), cwd, timeout, startup))
    return servers, problems


def format_result(result: Any) -> str:
    """The text of an MCP `CallToolResult` for the model; raises McpCallError when `is_error`."""
    parts = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', '?')}, {len(getattr(block, 'data', '') or '') * 3 // 4:,} bytes, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {resource.uri}, binary, not shown]")
        else:
            parts.append(f"[{kind or type(block).__name__} content, not shown]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    text = "\n".join(parts)
    if getattr(result, "is_error", False):
        raise McpCallError(text or "the MCP tool reported an error without a message")
    return text


def tool_name_for(server: str, tool: str) -> str:
    """The qwen-tui name of an MCP tool: ``SERVER__TOOL`` (other characters become ``_``; a name
    over 64 characters is cut and ends with a short hash, so it stays unique)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{server}__{tool}")
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def _tail(path: Path, start: int = 0, lines: int = 3) -> str:
    """The last lines written to `path` after byte `start` (this run's stderr only)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # anyio task groups wrap errors
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _closed(exc: BaseException) -> bool:
    """The connection to the server is gone (it exited or closed its pipes)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    from mcp_types import CONNECTION_CLOSED

    error = getattr(exc, "error", None)
    code = getattr(exc, "code", getattr(error, "code", None))
    return code == CONNECTION_CLOSED or type(exc).__name__ in ("ClosedResourceError", "BrokenResourceError", "EndOfStream")


class _Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.client: Any = None
        self.tools: list[Any] = []
        self.error: str | None = None
        self.ready = threading.Event()
        self.restart_lock = threading.Lock()  # one restart at a time when calls race
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task | None = None
        self.log_path = paths.log_dir() / f"mcp-{config.name}.log"
        self.log_start = 0

    def failure(self, what: str) -> str:
        tail = _tail(self.log_path, self.log_start)
        return f"MCP server {self.config.name!r} ({self.config.command}) {what}" + (f"; its stderr: {tail}" if tail else "")


class McpBridge:
    def __init__(self) -> None:
        self._servers: dict[str, _Server] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- the loop thread -----------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise McpCallError("the MCP bridge is shut down")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-bridge", daemon=True)
                self._thread.start()
            return self._loop

    async def _serve(self, server: _Server) -> None:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        config = server.config
        server.stop = asyncio.Event()
        try:
            with open(server.log_path, "a", encoding="utf-8") as errlog:
                server.log_start = errlog.tell()
                params = StdioServerParameters(command=config.command, args=config.args, env=config.env or None, cwd=config.cwd)
                async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=config.timeout) as client:
                    tools, cursor = [], None
                    while True:
                        page = await client.list_tools(cursor=cursor)
                        tools += list(page.tools)
                        cursor = page.next_cursor
                        if not cursor:
                            break
                    server.client, server.tools, server.error = client, tools, None
                    server.ready.set()
                    await server.stop.wait()
        except asyncio.CancelledError:
            server.error = server.error or server.failure("was stopped")
            raise
        except BaseException as exc:  # noqa: BLE001 - a server's failure is a message, never fatal
            server.error = server.failure(f"failed: {_describe(exc)}")
        finally:
            server.client = None
            server.ready.set()

    def _launch(self, server: _Server) -> None:
        loop = self._ensure_loop()
        server.ready.clear()
        server.error = None

        def create() -> None:
            server.task = loop.create_task(self._serve(server))

        loop.call_soon_threadsafe(create)

    def _wait_ready(self, server: _Server) -> str | None:
        """None when the server is up, else the problem (the task is cancelled on a timeout)."""
        if not server.ready.wait(server.config.startup_timeout):
            server.error = server.failure(f"did not answer within {server.config.startup_timeout:g} s (startup_timeout)")
            self._cancel(server, graceful=False)
            return server.error
        return None if server.client is not None else server.error or server.failure("stopped")

    def _cancel(self, server: _Server, graceful: bool = True) -> None:
        """End the server's task: its session closes and the transport stops the process (stdin
        closed, then terminate / kill, bounded). `graceful=False`: cancel at once (stuck start)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def stop() -> None:
            if server.stop is not None:
                server.stop.set()
            task = server.task
            if task is not None and not task.done():
                try:
                    if not graceful:
                        raise TimeoutError
                    await asyncio.wait_for(asyncio.shield(task), 8)
                except BaseException:  # noqa: BLE001 - then force it
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(15)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass

    # -- public --------------------------------------------------------------------------------

    def start(self, configs: list[ServerConfig]) -> list[str]:
        """Start every server at once and wait for their tool lists; returns the problems."""
        servers = []
        for config in configs:
            server = _Server(config)
            self._servers[config.name] = server
            self._launch(server)
            servers.append(server)
        return [problem for server in servers if (problem := self._wait_ready(server))]

    def tools(self) -> list[tuple[str, Any]]:
        """(server name, mcp Tool) for every running server's tools."""
        return [(name, tool) for name, server in self._servers.items() if server.client is not None for tool in server.tools]

    def longest_call(self, server_name: str) -> float:
        """The most a call can take: a restart, the liveness check and the call's own timeout."""
        server = self._servers.get(server_name)
        config = server.config if server is not None else ServerConfig("?", "?")
        return config.startup_timeout + 10 + config.timeout + 5

    def _run(self, coro: Any, limit: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        try:
            return future.result(limit + 2)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def _alive(self, server: _Server) -> bool:
        """False when the connection is closed (the server died since the last call). A request
        on a closed connection fails before anything is sent; `ping` is gone from the 2026-07-28
        protocol, so this re-lists the tools (cheap over stdio)."""
        client = server.client
        if client is None:
            return False
        try:
            self._run(asyncio.wait_for(client.list_tools(cache_mode="refresh"), 10), 10)
        except BaseException as exc:  # noqa: BLE001
            return not _closed(exc)  # busy or slow: still there
        return True

    def call(self, server_name: str, tool_name: str, arguments: dict) -> str:
        """Call one tool and return its text; McpCallError with a clear message on any failure.
        A server found dead is restarted once, before the call is sent (never re-sent)."""
        server = self._servers.get(server_name)
        if server is None:
            raise McpCallError(f"no MCP server named {server_name!r}")
        with server.restart_lock:
            if not self._alive(server):
                self._cancel(server)
                self._launch(server)
                problem = self._wait_ready(server)
                if problem:
                    raise McpCallError(f"{problem} (restarting it after it stopped)")
        client, limit = server.client, server.config.timeout
        try:
            result = self._run(asyncio.wait_for(client.call_tool(tool_name, arguments, read_timeout_seconds=limit), limit), limit)
        except (TimeoutError, asyncio.TimeoutError):
            raise McpCallError(f"MCP server {server_name!r} did not answer {tool_name} within {limit:g} s (timeout)") from None
        except BaseException as exc:  # noqa: BLE001
            if _closed(exc):
                self._cancel(server)
                raise McpCallError(server.failure("stopped during the call (connection closed); it is restarted on the next call")) from None
            raise McpCallError(f"MCP server {server_name!r}, tool {tool_name}: {_describe(exc)}") from None
        return format_result(result)

    def close(self) -> None:
        """Stop every server (their child processes end) and the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        for server in list(self._servers.values()):
            self._cancel(server)
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if not thread.is_alive():
                loop.close()
