"""Turn the text of a `<parameter=...>` value into the JSON type its tool's schema asks for.

Qwen 3.5's XML tool-call format carries every value as text; the chat template writes strings
and numbers with Python's `str()` (so booleans arrive as `True`/`False` and None as `None`) and
objects/arrays as JSON. `coerce()` maps that text back, following the parameter's JSON schema:

- no schema, no `type` (or only `string`): the text is kept as it is;
- `integer`, `number`: a JSON number (`5.0` is accepted for an integer); never NaN/infinity;
- `boolean`: `true` / `false`, any case; `null`: `null` / `None`, any case;
- `object` / `array`: `json.loads` of the text, which must give a dict / list;
- a union (`["integer", "string"]`, `anyOf`/`oneOf`): the non-string types are tried in the
  order null, boolean, integer, number, object, array; if none fits and `string` is allowed the
  text stays a string without complaint, otherwise the text is kept and an error is returned.

Surrounding whitespace is ignored for the non-string types only.
"""

from __future__ import annotations

import json
import math
import re

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_ORDER = ("null", "boolean", "integer", "number", "object", "array")
_EXAMPLES = {
    "integer": "42",
    "number": "3.14",
    "boolean": "true",
    "null": "null",
    "object": '{"key": "value"}',
    "array": '["a", "b"]',
}
_FAIL = object()


def parameter_schemas(tools: object) -> dict[str, dict]:
    """OpenAI-style tools -> {tool name: {parameter name: JSON schema}}, skipping anything odd."""
    found: dict[str, dict] = {}
    for tool in tools if isinstance(tools, (list, tuple)) else ():
        spec = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            params = spec.get("parameters")
            props = params.get("properties") if isinstance(params, dict) else None
            found[spec["name"]] = props if isinstance(props, dict) else {}
    return found


def schema_types(schema: object) -> list[str]:
    """The JSON types a (sub)schema allows, as far as we can tell; [] means unknown."""
    if not isinstance(schema, dict):
        return []
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    found: list[str] = []
    for key in ("anyOf", "oneOf"):
        subs = schema.get(key)
        if isinstance(subs, list):
            for sub in subs:
                found += [t for t in schema_types(sub) if t not in found]
    if found:
        return found
    values = schema.get("enum") if isinstance(schema.get("enum"), list) else None
    if values is None and "const" in schema:
        values = [schema["const"]]
    for value in values or []:
        kind = _json_type(value)
        if kind not in found:
            found.append(kind)
    return found


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _FAIL


def _convert(kind: str, text: str) -> object:
    """The value of `text` as JSON type `kind`, or _FAIL."""
    text = text.strip()
    lowered = text.lower()
    if kind == "null":
        return None if lowered in ("null", "none") else _FAIL
    if kind == "boolean":
        return {"true": True, "false": False}.get(lowered, _FAIL)
    if kind in ("integer", "number"):
        if not _NUMBER.fullmatch(text):
            return _FAIL
        value = _loads(text)
        if isinstance(value, float):
            if not math.isfinite(value):
                return _FAIL
            if kind == "integer":
                return int(value) if value.is_integer() else _FAIL
        return value
    if kind in ("object", "array"):
        value = _loads(text)
        return value if isinstance(value, dict if kind == "object" else list) else _FAIL
    return _FAIL


def coerce(text: str, schema: object) -> tuple[object, str | None]:
    """(value, None) on success; (text, what-was-expected) when the text fits no allowed type."""
    types = schema_types(schema)
    wanted = [t for t in _ORDER if t in types]
    for kind in wanted:
        value = _convert(kind, text)
        if value is not _FAIL:
            return value, None
    if not wanted or "string" in types:
        return text, None
    described = [f"{'an' if t[0] in 'aeiou' else 'a'} {t} (e.g. {_EXAMPLES[t]})" for t in types if t in _ORDER]
    return text, " or ".join(described)
