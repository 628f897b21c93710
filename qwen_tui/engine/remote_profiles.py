"""Which server to talk to: `--endpoint`/`--profile` flags and the config's `[endpoint]` and
`[profiles.NAME]` tables, merged into one `EndpointSettings`.

    [endpoint]                      # the default server (used when no --model/--demo is given)
    url = "http://gpu-box:8000/v1"
    api_key_env = "VLLM_API_KEY"    # the NAME of an environment variable; the key is never stored
    model = "Qwen/Qwen3.5-27B"      # default: the first model the server lists
    timeout = 600                   # seconds to wait for the next chunk of a streamed answer
    connect_timeout = 10
    n_ctx = 131072                  # context length, when the server does not say
    tool_calls = "auto"             # "native" | "text" | "auto": how past tool calls are sent back

    [profiles.local-llama]          # `--profile local-llama`; same keys
    url = "http://127.0.0.1:8080"

Precedence: flags, then the profile, then `[endpoint]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from qwen_tui.engine.errors import EngineError

KEYS = ("url", "api_key_env", "model", "timeout", "connect_timeout", "n_ctx", "tool_calls")
TOOL_CALL_MODES = ("auto", "native", "text")
DEFAULT_READ_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class EndpointSettings:
    url: str
    api_key_env: str | None = None
    model: str | None = None
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    n_ctx: int | None = None
    tool_calls: str = "auto"

    def api_key(self) -> str | None:
        """The key from the environment (read when needed, never kept in settings or sessions)."""
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env, "").strip()
        if not value:
            raise EngineError(f"the API key variable ${self.api_key_env} is not set (or empty)")
        return value

    @property
    def label(self) -> str:
        """How sessions record this engine: the model and the server, never the key."""
        return f"{self.model or 'default model'} @ {self.url}"


def _number(table: dict, key: str, where: str, problems: list[str], kind=float):
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.append(f"{where}.{key} must be a positive number; ignored")
        return None
    return kind(value)


def _settings_from(table: dict, where: str, problems: list[str]) -> dict:
    out: dict = {}  # unknown keys are reported by the config validator (qwen_tui.settings)
    for key in ("url", "api_key_env", "model"):
        value = table.get(key)
        if value is None:
            continue
        if isinstance(value, str) and value.strip():
            out[key] = value.strip()
        else:
            problems.append(f"{where}.{key} must be a non-empty string; ignored")
    if (value := _number(table, "timeout", where, problems)) is not None:
        out["read_timeout"] = value
    if (value := _number(table, "connect_timeout", where, problems)) is not None:
        out["connect_timeout"] = value
    if (value := _number(table, "n_ctx", where, problems, int)) is not None:
        out["n_ctx"] = value
    mode = table.get("tool_calls")
    if mode is not None:
        if mode in TOOL_CALL_MODES:
            out["tool_calls"] = mode
        else:
            problems.append(f"{where}.tool_calls must be one of {', '.join(TOOL_CALL_MODES)}; ignored")
    return out


def _load(name: str) -> tuple[dict, list[str]]:
    from qwen_tui.config import load_table

    return load_table(name)


def resolve_endpoint(
    endpoint: str | None = None,
    *,
    profile: str | None = None,
    api_key_env: str | None = None,
    model: str | None = None,
    use_default: bool = True,
    load=_load,
) -> tuple[EndpointSettings | None, list[str]]:
    """(settings, problems) for the flags given; None when no server is asked for.

    `use_default`: whether `[endpoint]` alone (no flag) selects a server (not when --model/--demo
    was given). An unknown profile or a profile without a url raises EngineError."""
    problems: list[str] = []
    base, more = load("endpoint")
    problems += more
    merged = _settings_from(base, "[endpoint]", problems)
    if profile:
        table, more = load(f"profiles.{profile}")
        problems += more
        if not table:
            raise EngineError(f"no [profiles.{profile}] table in the config file")
        merged.update(_settings_from(table, f"[profiles.{profile}]", problems))
    if endpoint:
        merged["url"] = endpoint
    if api_key_env:
        merged["api_key_env"] = api_key_env
    if model:
        merged["model"] = model
    if not (endpoint or profile or (use_default and base.get("url"))):
        return None, problems
    if not merged.get("url"):
        where = f"[profiles.{profile}]" if profile else "[endpoint]"
        raise EngineError(f"{where} has no url: set url = \"http://HOST:PORT/v1\" or pass --endpoint URL")
    url = merged["url"]
    if not url.startswith(("http://", "https://")):
        raise EngineError(f"endpoint {url!r} must start with http:// or https://")
    return EndpointSettings(**merged), problems
