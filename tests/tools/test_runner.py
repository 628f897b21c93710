"""Running one call: validation the model can act on, errors as results, timeouts, output caps."""

from __future__ import annotations

import asyncio
import enum
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from qwen_tui.tools import Tool, ToolContext, tool
from qwen_tui.tools.runner import cap_output, run_tool


def make(fn) -> Tool:
    return Tool.from_function(fn)


def add(a: int, b: int = 1) -> int:
    """Add."""
    return a + b


def test_sync_tool_and_json_serialisation():
    def info(name: str) -> dict:
        """Info."""
        return {"name": name, "size": 3, "path": Path("/x")}

    r = run_tool(make(info), {"name": "é"})
    assert r.ok and r.error is None and not r.truncated
    assert r.content == '{"name": "é", "size": 3, "path": "/x"}'
    assert run_tool(make(add), {"a": 2}).content == "3"
    assert r.elapsed_ms >= 0


def test_async_tool():
    async def slow_echo(text: str) -> str:
        """Echo."""
        await asyncio.sleep(0.01)
        return text * 2

    assert run_tool(make(slow_echo), {"text": "ab"}).content == "abab"


def test_validation_errors_name_the_problem():
    t = make(add)
    r = run_tool(t, {})
    assert not r.ok and "missing required argument 'a'" in r.error
    r = run_tool(t, {"a": "2"})
    assert "argument 'a' must be integer, got str \"2\"" in r.error
    r = run_tool(t, {"a": 1, "c": 3})
    assert "unknown argument 'c'" in r.error and "'a', 'b'" in r.error
    assert "must be integer" in run_tool(t, {"a": True}).error  # a bool is not an int
    assert "JSON object" in run_tool(t, ["a"]).error


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def test_enum_literal_list_validation_and_conversion():
    def temp(unit: Unit, values: list[float], mode: str = "x") -> str:
        """Temp."""
        return f"{unit.name}:{sum(values)}"

    t = make(temp)
    assert run_tool(t, {"unit": "celsius", "values": [1, 2.5]}).content == "C:3.5"
    r = run_tool(t, {"unit": "kelvin", "values": []})
    assert 'must be one of "celsius", "fahrenheit"' in r.error
    r = run_tool(t, {"unit": "celsius", "values": [1, "x"]})
    assert "argument 'values'[1] must be number" in r.error


def test_exception_becomes_error_result_without_traceback():
    def boom(path: str) -> str:
        """Boom."""
        raise FileNotFoundError(f"no such file: {path}")

    r = run_tool(make(boom), {"path": "a.txt"})
    assert not r.ok and r.error == "FileNotFoundError: no such file: a.txt"
    assert r.for_model() == "Error: FileNotFoundError: no such file: a.txt"
    r = run_tool(make(boom), {"path": "a.txt"}, traceback=True)
    assert "Traceback" in r.error


def test_hanging_sync_tool_returns_within_timeout():
    def hang() -> str:
        """Hang."""
        time.sleep(30)
        return "never"

    start = time.monotonic()
    r = run_tool(make(hang), {}, timeout=0.3)
    assert time.monotonic() - start < 0.3 + 0.5
    assert not r.ok and "timed out after 0.3 s" in r.error
    assert run_tool(make(add), {"a": 1}).ok  # the next call is unaffected


def test_hanging_async_tool_is_cancelled():
    cancelled = []

    async def wait_forever() -> str:
        """Wait."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    start = time.monotonic()
    r = run_tool(make(wait_forever), {}, timeout=0.2)
    assert time.monotonic() - start < 0.7 and "timed out" in r.error
    deadline = time.monotonic() + 2
    while not cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cancelled


def test_tool_timeout_attribute_wins():
    @tool(timeout=0.2)
    def hang() -> None:
        """Hang."""
        time.sleep(5)

    start = time.monotonic()
    assert "timed out after 0.2 s" in run_tool(make(hang), {}, timeout=30).error
    assert time.monotonic() - start < 1


def test_hanging_tool_does_not_block_interpreter_exit(tmp_path):
    script = textwrap.dedent("""
        import time
        from qwen_tui.tools import Tool
        from qwen_tui.tools.runner import run_tool
        def hang():
            time.sleep(60)
        print(run_tool(Tool.from_function(hang), {}, timeout=0.1).error)
    """)
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "timed out" in out.stdout
    assert time.monotonic() - start < 10


def test_output_cap_keeps_head_and_tail():
    def big() -> str:
        """Big."""
        return "HEAD" + "x" * 10_000 + "TAIL"

    r = run_tool(make(big), {}, max_output_chars=1000)
    assert r.ok and r.truncated
    assert r.content.startswith("HEAD") and r.content.endswith("TAIL")
    assert "[... 9" in r.content and "characters elided ...]" in r.content
    assert len(r.content) <= 1000
    assert cap_output("short", 1000) == ("short", False)


def test_context_is_passed_to_tools_that_ask(tmp_path):
    def where(ctx: ToolContext) -> str:
        """Where."""
        return str(ctx.workspace)

    assert run_tool(make(where), {}, context=ToolContext(workspace=tmp_path)).content == str(tmp_path)


@given(text=st.text(max_size=3000), limit=st.integers(min_value=60, max_value=2000))
def test_cap_output_properties(text, limit):
    capped, truncated = cap_output(text, limit)
    assert truncated == (len(text) > limit)
    assert len(capped) <= max(limit, len(text) if not truncated else 0)
    if truncated:
        head, rest = capped.split("\n[... ", 1)
        count, tail = rest.split(" characters elided ...]\n", 1)
        assert text.startswith(head) and text.endswith(tail)
        assert len(head) + int(count) + len(tail) == len(text)
    else:
        assert capped == text
