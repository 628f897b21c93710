"""What the model is shown for a Python function: names, descriptions, JSON schemas, flags."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, List, Literal, Optional

import pytest

from qwen_tui.tools import Tool, ToolContext, ToolDefinitionError, tool


def props(fn) -> dict:
    return Tool.from_function(fn).parameters["properties"]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_simple_types_and_required():
    def f(s: str, i: int, x: float, b: bool, p: Path, anything, n: int = 3):
        """Do."""

    t = Tool.from_function(f)
    assert t.parameters["required"] == ["s", "i", "x", "b", "p", "anything"]
    assert t.parameters["additionalProperties"] is False
    p = t.parameters["properties"]
    assert [p[k].get("type") for k in "s i x b p".split()] == ["string", "integer", "number", "boolean", "string"]
    assert p["anything"] == {}
    assert p["n"] == {"type": "integer", "default": 3}


def test_containers():
    def f(a: list[int], b: List[str], c: list, d: dict, e: dict[str, float], g: tuple[int, ...]):
        """Do."""

    p = props(f)
    assert p["a"] == {"type": "array", "items": {"type": "integer"}}
    assert p["b"] == {"type": "array", "items": {"type": "string"}}
    assert p["c"] == {"type": "array"}
    assert p["d"] == {"type": "object"}
    assert p["e"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert p["g"] == {"type": "array", "items": {"type": "integer"}}


def test_literal_enum_optional():
    def f(mode: Literal["fast", "slow"], level: Literal[1, 2], color: Color, o: Optional[int], u: str | None = None,
          c2: Color = Color.BLUE, implicit: int = None):
        """Do."""

    p = props(f)
    assert p["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert p["level"] == {"type": "integer", "enum": [1, 2]}
    assert p["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert p["o"] == {"type": ["integer", "null"]}
    assert p["u"] == {"type": ["string", "null"], "default": None}
    assert p["c2"] == {"type": "string", "enum": ["red", "blue"], "default": "blue"}
    assert p["implicit"] == {"type": ["integer", "null"], "default": None}
    assert Tool.from_function(f).parameters["required"] == ["mode", "level", "color", "o"]


def test_google_docstring():
    def search(query: str, limit: int = 10, *, regex: bool = False) -> list[str]:
        """Search the files of the workspace
        for a text.

        Slower on big trees.

        Args:
            query: the text to look for,
                case-sensitive.
            limit (int): at most this many hits.
            regex: treat `query` as a regular expression.

        Returns:
            matching lines
        """

    t = Tool.from_function(search)
    assert t.description == "Search the files of the workspace for a text."
    p = t.parameters["properties"]
    assert p["query"]["description"] == "the text to look for, case-sensitive."
    assert p["limit"]["description"] == "at most this many hits."
    assert p["regex"]["description"] == "treat `query` as a regular expression."


def test_rest_docstring():
    def read(path: str, encoding: str = "utf-8"):
        """Read a text file.

        :param path: file to read,
            relative to the workspace
        :param str encoding: its encoding
        :returns: the text
        """

    t = Tool.from_function(read)
    assert t.description == "Read a text file."
    p = t.parameters["properties"]
    assert p["path"]["description"] == "file to read, relative to the workspace"
    assert p["encoding"]["description"] == "its encoding"


def test_openai_schema_shape_and_no_docstring():
    def ping():
        pass

    assert Tool.from_function(ping).openai_schema() == {
        "type": "function",
        "function": {"name": "ping", "description": "", "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False}},
    }


def test_flags_by_decorator_and_attribute():
    @tool(read_only=True, timeout=5)
    def look() -> str:
        """Look."""

    def write() -> None:
        """Write."""

    write.read_only = False
    write.needs_approval = lambda arguments, workspace: True
    a, b = Tool.from_function(look), Tool.from_function(write)
    assert (a.read_only, a.timeout) == (True, 5.0)
    assert b.read_only is False and b.needs_approval({}, Path(".")) is True

    @tool
    def bare():
        """Bare."""

    assert Tool.from_function(bare).read_only is False
    assert Tool.from_function(look, name="peek").name == "peek"


def test_async_and_context_parameter_hidden():
    async def fetch(ctx: ToolContext, n: int) -> int:
        """Fetch."""

    t = Tool.from_function(fetch)
    assert t.is_async and t.context_param == "ctx"
    assert list(t.parameters["properties"]) == ["n"]


def test_methods_of_an_instance_share_config():
    class Notes:
        def __init__(self, folder: str):
            self.folder = folder

        def add(self, text: str) -> str:
            """Add a note."""
            return f"{self.folder}:{text}"

        @tool(read_only=True)
        def count(self) -> int:
            """Count notes."""
            return 0

        def _private(self):
            pass

        @property
        def expensive(self) -> int:
            raise AssertionError("properties are never evaluated")

    tools = {t.name: t for t in Tool.from_object(Notes("inbox"))}
    assert set(tools) == {"add", "count"}
    assert tools["count"].read_only and tools["add"].fn(text="x") == "inbox:x"
    assert {t.name for t in Tool.from_object(Notes("a"), prefix="notes")} == {"notes_add", "notes_count"}


def test_unsupported_hint_is_a_clear_error():
    def f(x: set[bytes]) -> None:
        """F."""

    with pytest.raises(ToolDefinitionError, match="parameter 'x'"):
        Tool.from_function(f)
    with pytest.raises(ToolDefinitionError, match="name"):
        Tool.from_function(lambda: None, name="has space")


def test_any_annotation_is_unconstrained():
    def f(x: Any):
        """F."""

    assert props(f)["x"] == {}
