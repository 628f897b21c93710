"""The OpenAI-compatible wire format, for RemoteEngine: URLs, messages, SSE lines, error text.

Pure functions, no I/O: each is tested on its own and through the real servers in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Timings


class RemoteError(EngineError):
    """The server could not be used (message: one line, fit to show)."""


class ServerUnreachable(RemoteError):
    """Nothing answered at the URL (refused, DNS, connect timeout)."""


class AuthFailed(RemoteError):
    """HTTP 401/403: the API key is missing or wrong."""


class ModelNotFound(RemoteError):
    """The server does not serve the model asked for."""


def api_urls(url: str) -> tuple[str, str]:
    """(the /v1 base, the server root) for what a user typed: `http://h:8000`, `.../v1`, `.../v1/`
    or a full `.../v1/chat/completions`."""
    url = url.strip().rstrip("/")
    for tail in ("/chat/completions", "/completions"):
        if url.endswith(tail):
            url = url[: -len(tail)]
    if url.endswith("/v1"):
        return url, url[:-3]
    return url + "/v1", url


def _value_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def call_as_xml(name: str, arguments: dict) -> str:
    """A call in Qwen 3.5's own format (what its template writes and what the model is taught)."""
    params = "".join(f"<parameter={k}>\n{_value_text(v)}\n</parameter>\n" for k, v in arguments.items())
    return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


def to_openai_messages(messages: list[dict], *, text_tool_calls: bool) -> list[dict]:
    """The agent's conversation (Qwen's shape: tool-call `arguments` as dicts, no ids) as the
    OpenAI API wants it: ids on calls, `tool_call_id` on results, `arguments` as JSON text.

    `text_tool_calls`: for servers that neither parse tool calls nor accept them back (llama-cpp-
    python's server renders the template with the arguments string): past calls are written into
    the assistant's content in the model's own XML format instead."""
    out: list[dict] = []
    pending: list[str] = []
    n_calls = 0
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            m = {k: v for k, v in message.items() if k != "tool_calls"}
            m["content"] = m.get("content") or ""
            ids, calls = [], []
            for call in message["tool_calls"]:
                fn = call.get("function", call)
                call_id = call.get("id") or f"call_{n_calls}"
                n_calls += 1
                ids.append(call_id)
                args = fn.get("arguments") or {}
                if text_tool_calls:
                    if isinstance(args, str):
                        try:
                            args = json.loads(args)
                        except ValueError:
                            args = {"arguments": args}
                    calls.append(call_as_xml(fn.get("name", ""), args if isinstance(args, dict) else {}))
                else:
                    calls.append({"id": call_id, "type": "function",
                                  "function": {"name": fn.get("name", ""), "arguments": _value_text(args)}})
            if text_tool_calls:
                m["content"] = "\n\n".join(p for p in (m["content"].strip(), "\n".join(calls)) if p)
            else:
                m["tool_calls"] = calls
            pending = ids
            out.append(m)
        elif role == "tool":
            m = dict(message)
            if "tool_call_id" in m:
                pass
            elif pending:
                m["tool_call_id"] = pending.pop(0)
            else:  # a result without a call (a malformed-call note): still needs an id
                m["tool_call_id"] = f"call_{n_calls}"
                n_calls += 1
            m["content"] = m.get("content") if m.get("content") is not None else ""
            out.append(m)
        else:
            out.append(dict(message))
    return out


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each Server-Sent Event (multi-line data joined with newlines); comments
    (`: ping`) and other fields are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def error_text(body: str | bytes, limit: int = 200) -> str:
    """The message in an error body (OpenAI `{"error": {"message"}}`, Ollama `{"error": "..."}`,
    FastAPI `{"detail"}`), or the body itself, as one short line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body.strip()
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg") or json.dumps(err)
        if isinstance(err, list):  # FastAPI validation errors
            err = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in err)
        if err:
            text = str(err)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def http_error(status: int, body: str | bytes, *, url: str, path: str, model: str | None, key_env: str | None) -> RemoteError:
    """A one-line error for a non-2xx answer."""
    detail = error_text(body)
    said = f" ({detail})" if detail else ""
    if status in (401, 403):
        hint = (f"check the key in ${key_env}" if key_env
                else "it needs an API key: put it in an environment variable and pass --api-key-env NAME")
        return AuthFailed(f"the server at {url} refused the request: HTTP {status}{said}; {hint}")
    if status == 404 and ("model" in detail.lower()):
        return ModelNotFound(f"model {model!r} not found on {url}{said}")
    if status == 404:
        return RemoteError(f"{url} has no {path} (HTTP 404{said}): is it an OpenAI-compatible server?")
    return RemoteError(f"the server at {url} answered HTTP {status}{said}")


def add_call_delta(calls: dict[int, dict], tc: dict) -> None:
    """Accumulate one streamed `tool_calls` delta into `calls` (by index: name, id, arguments)."""
    index = tc.get("index", len(calls))
    entry = calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
    entry["id"] = tc.get("id") or entry["id"]
    fn = tc.get("function") or {}
    if fn.get("name"):
        entry["name"] += fn["name"]
    args = fn.get("arguments")
    if args:
        entry["arguments"] += args if isinstance(args, str) else json.dumps(args)


def server_usage(usage: dict) -> tuple[int, int, int]:
    """(prompt tokens, of those cached, completion tokens) from an OpenAI `usage` object."""
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return int(usage.get("prompt_tokens") or 0), int(cached or 0), int(usage.get("completion_tokens") or 0)


def server_timings(timings) -> tuple[Timings | None, int | None]:
    """llama-server's `timings` (prompt_ms, predicted_ms, prompt_n): (Timings, prompt tokens it
    evaluated), or (None, None) when the server sent none."""
    if not isinstance(timings, dict) or timings.get("predicted_ms") is None:
        return None, None
    prompt_ms = float(timings.get("prompt_ms") or 0)
    evaluated = timings.get("prompt_n")
    return Timings(prompt_ms, float(timings["predicted_ms"]), prompt_ms), (int(evaluated) if evaluated is not None else None)


def flatten(messages: list[dict], tools: list[dict] | None) -> str:
    """All the text of a request, for a rough count when no template renders it."""
    parts = [json.dumps(tools, ensure_ascii=False)] if tools else []
    for m in messages:
        content = m.get("content")
        parts.append(f"{m.get('role', '')}\n{content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)}")
        for key in ("reasoning_content", "tool_calls"):
            if m.get(key):
                parts.append(m[key] if isinstance(m[key], str) else json.dumps(m[key], ensure_ascii=False))
    return "\n".join(parts)
