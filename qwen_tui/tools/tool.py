"""A `Tool`: a Python function described to the model as an OpenAI-style function schema.

    Tool.from_function(fn, name=None) -> Tool(name, description, parameters, fn, read_only, timeout, ...)
    tool.openai_schema() -> {"type": "function", "function": {"name", "description", "parameters"}}

- name: the function's name (or `name=`); description: the docstring's first paragraph.
- parameters: a JSON schema (``{"type": "object", "properties", "required",
  "additionalProperties": False}``) from the type hints: ``str``, ``int``, ``float``, ``bool``,
  ``list[X]``, ``tuple[X, ...]``, ``dict`` / ``dict[str, X]``, ``Literal[...]``, ``Enum``
  subclasses (values; the function receives the member), ``Optional[X]`` / ``X | None``
  (``"type": [..., "null"]``), ``pathlib.Path`` (a string), no hint / ``Any`` (any value).
  A parameter with a default is not required. ``*args`` / ``**kwargs`` are not offered.
- per-argument descriptions from the docstring, Google style (``Args:`` then ``name: text`` or
  ``name (type): text``, continuation lines indented) or reST (``:param name: text``).
- A parameter annotated ``ToolContext`` is not shown to the model: the runner passes the
  call's context (workspace, ...) into it.
- Flags, by decorator ``@tool(read_only=True, timeout=5)`` or plain function attributes
  (``fn.read_only = True``): ``read_only`` (no side effects: auto-approved), ``timeout``
  (seconds, overrides the runner's default), ``needs_approval(arguments, workspace) -> bool``
  (asked even when read-only, e.g. for a path outside the workspace; ``False`` skips asking).
"""

from __future__ import annotations

import enum
import inspect
import pathlib
import re
import threading
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union

__all__ = ["Tool", "ToolContext", "ToolDefinitionError", "tool", "schema_for"]


class ToolDefinitionError(ValueError):
    """A function that cannot become a tool (unsupported type hint, bad name, ...)."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool may learn about the call: pass a parameter annotated ``ToolContext``."""

    workspace: Path = field(default_factory=Path.cwd)
    model: str | None = None
    extra: dict = field(default_factory=dict)
    model_has_vision: bool = False  # the loaded model can see images (an mmproj is configured)
    # Set when the user cancels (Esc) while the tool runs: a long-running tool should watch it
    # (`ctx.cancelled.wait(0.1)` / `.is_set()`) and stop promptly; the agent sets it.
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


def tool(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    read_only: bool | None = None,
    timeout: float | None = None,
    needs_approval: Callable[[dict, Path], bool] | None = None,
):
    """Mark a function (or method) with tool flags; usable bare (``@tool``) or with arguments."""

    def mark(f: Callable) -> Callable:
        if name is not None:
            f.tool_name = name
        if read_only is not None:
            f.read_only = read_only
        if timeout is not None:
            f.timeout = timeout
        if needs_approval is not None:
            f.needs_approval = needs_approval
        return f

    return mark(fn) if fn is not None else mark


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _json_type_of(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    for py, js in ((int, "integer"), (float, "number"), (str, "string"), (type(None), "null")):
        if isinstance(value, py):
            return js
    raise ToolDefinitionError(f"Literal value {value!r} is not a str, int, float, bool or None")


def _with_null(schema: dict) -> dict:
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list):
        out["type"] = kind + ["null"] if "null" not in kind else kind
    else:
        return {"anyOf": [schema, {"type": "null"}]} if schema else {}
    if "enum" in out and None not in out["enum"]:
        out["enum"] = list(out["enum"]) + [None]
    return out


def schema_for(hint: Any) -> dict:
    """The JSON schema for one type hint (raises ToolDefinitionError for what JSON can't carry)."""
    if hint is inspect.Parameter.empty or hint is Any or hint is object:
        return {}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is pathlib.Path or hint is pathlib.PurePath:
        return {"type": "string"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        kinds = sorted({_json_type_of(v) for v in values})
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}
    if hint is list or hint is tuple or hint is set:
        return {"type": "array"}
    if hint is dict:
        return {"type": "object"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        kinds = sorted({_json_type_of(v) for v in args})
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": list(args)}
    if origin is Union or (hasattr(types, "UnionType") and origin is getattr(types, "UnionType")):
        rest = [a for a in args if a is not type(None)]
        inner = schema_for(rest[0]) if len(rest) == 1 else {"anyOf": [schema_for(a) for a in rest]}
        return _with_null(inner) if len(rest) < len(args) else inner
    if origin in (list, set, frozenset, tuple) or origin in (typing.List, typing.Sequence):
        schema: dict = {"type": "array"}
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = args[:1]
        if len(args) == 1:
            item = schema_for(args[0])
            if item:
                schema["items"] = item
        return schema
    if origin is dict:
        schema = {"type": "object"}
        if len(args) == 2 and schema_for(args[1]):
            schema["additionalProperties"] = schema_for(args[1])
        return schema
    if typing.get_origin(hint) is typing.Annotated:  # pragma: no cover - get_type_hints strips it
        return schema_for(args[0])
    raise ToolDefinitionError(f"type hint {hint!r} cannot be described as JSON (use str, int, float, bool, list, dict, Literal, Enum)")


_GOOGLE_HEAD = re.compile(r"^(Args|Arguments|Parameters|Params)\s*:\s*$")
_GOOGLE_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_REST_ARG = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_OTHER_SECTION = re.compile(r"^(Returns?|Raises|Yields?|Examples?|Notes?|See Also|Attributes)\s*:\s*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(first paragraph as one line, {argument: description}) from a Google or reST docstring."""
    text = inspect.cleandoc(doc or "")
    lines = text.splitlines()
    para: list[str] = []
    for line in lines:
        if not line.strip() or _GOOGLE_HEAD.match(line.strip()) or line.strip().startswith(":"):
            break
        para.append(line.strip())
    args: dict[str, str] = {}
    current: str | None = None
    section_indent: int | None = None
    arg_indent: int | None = None
    for line in lines:
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        rest = _REST_ARG.match(stripped)
        if rest:
            current, section_indent = rest.group(1), None
            args[current] = rest.group(2).strip()
            continue
        if stripped.startswith(":"):
            current = None
            continue
        if _GOOGLE_HEAD.match(stripped):
            section_indent, arg_indent, current = indent, None, None
            continue
        if section_indent is not None:
            if stripped and (indent <= section_indent or _OTHER_SECTION.match(stripped)):
                section_indent, current = None, None
                continue
            match = _GOOGLE_ARG.match(stripped)
            if stripped and match and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
                continue
        if current is not None and stripped:
            args[current] = (args[current] + " " + stripped).strip()
        elif not stripped and section_indent is None:
            current = None
    return " ".join(para), args


@dataclass
class Tool:
    """One tool: what the model sees (name, description, parameters) and how to run it."""

    name: str
    description: str
    parameters: dict
    fn: Callable
    read_only: bool = False
    timeout: float | None = None
    needs_approval: Callable[[dict, Path], bool] | None = None
    is_async: bool = False
    context_param: str | None = None
    enums: dict = field(default_factory=dict)  # parameter -> Enum class, to convert values back
    plugin: str | None = None  # set by the plugin host: which plugin registered it

    @classmethod
    def from_function(cls, fn: Callable, name: str | None = None) -> "Tool":
        if not callable(fn):
            raise ToolDefinitionError(f"{fn!r} is not callable")
        name = name or getattr(fn, "tool_name", None) or getattr(fn, "__name__", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ToolDefinitionError(f"tool name {name!r} must be letters, digits, '_', '.', '-' (at most 64)")
        target = inspect.unwrap(fn)
        try:
            hints = typing.get_type_hints(target)
        except Exception as exc:
            raise ToolDefinitionError(f"tool {name!r}: cannot resolve its type hints ({type(exc).__name__}: {exc})") from None
        description, arg_docs = parse_docstring(inspect.getdoc(fn))
        properties: dict[str, dict] = {}
        required: list[str] = []
        enums: dict = {}
        context_param = None
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            hint = hints.get(pname, param.annotation)
            if hint is ToolContext:
                context_param = pname
                continue
            try:
                schema = schema_for(hint)
            except ToolDefinitionError as exc:
                raise ToolDefinitionError(f"tool {name!r}, parameter {pname!r}: {exc}") from None
            base = hint
            if typing.get_origin(hint) in (Union, getattr(types, "UnionType", Union)):
                rest = [a for a in typing.get_args(hint) if a is not type(None)]
                base = rest[0] if len(rest) == 1 else hint
            if isinstance(base, type) and issubclass(base, enum.Enum):
                enums[pname] = base
            if pname in arg_docs and arg_docs[pname]:
                schema["description"] = arg_docs[pname]
            if param.default is param.empty:
                required.append(pname)
            else:
                default = param.default.value if isinstance(param.default, enum.Enum) else param.default
                if default is None and schema:
                    schema = _with_null(schema)  # `x: int = None` accepts null too
                if default is None or isinstance(default, (str, int, float, bool)):
                    schema["default"] = default
            properties[pname] = schema
        parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
        timeout = getattr(fn, "timeout", None)
        return cls(
            name=name,
            description=description,
            parameters=parameters,
            fn=fn,
            read_only=bool(getattr(fn, "read_only", False)),
            timeout=float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None,
            needs_approval=getattr(fn, "needs_approval", None) if callable(getattr(fn, "needs_approval", None)) else None,
            is_async=is_async,
            context_param=context_param,
            enums=enums,
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: dict,
        fn: Callable,
        *,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> "Tool":
        """A tool whose JSON schema is given (by an MCP server, an OpenAPI document...) instead of
        read from type hints: ``fn(**arguments)`` runs it. Plugins pass it to ``register(tool)``."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ToolDefinitionError(f"tool name {name!r} must be letters, digits, '_', '.', '-' (at most 64)")
        if not callable(fn):
            raise ToolDefinitionError(f"tool {name!r}: {fn!r} is not callable")
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise ToolDefinitionError(f"tool {name!r}: parameters must be a JSON schema of type object")
        properties = parameters.get("properties") or {}
        required = parameters.get("required") or []
        if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
            raise ToolDefinitionError(f"tool {name!r}: 'properties' must map names to schemas")
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ToolDefinitionError(f"tool {name!r}: 'required' must be a list of names")
        schema = {**parameters, "type": "object", "properties": properties, "required": required}
        return cls(
            name=name,
            description=(description or "").strip(),
            parameters=schema,
            fn=fn,
            read_only=bool(read_only),
            timeout=float(timeout) if timeout is not None else None,
            is_async=inspect.iscoroutinefunction(fn),
        )

    @classmethod
    def from_object(cls, obj: object, prefix: str | None = None) -> list["Tool"]:
        """Each public method of an instance becomes a tool (they share the instance)."""
        tools = []
        for attr in sorted(dir(type(obj))):
            if attr.startswith("_"):
                continue
            raw = inspect.getattr_static(obj, attr)  # never evaluates properties
            if isinstance(raw, (types.FunctionType, staticmethod, classmethod)):
                value = getattr(obj, attr)
                tools.append(cls.from_function(value, name=f"{prefix}_{attr}" if prefix else getattr(value, "tool_name", None)))
        if not tools:
            raise ToolDefinitionError(f"{type(obj).__name__} instance has no public methods to offer as tools")
        return tools

    def openai_schema(self) -> dict:
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}
