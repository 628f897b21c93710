"""Render a conversation with the model's own chat template (Jinja, from the GGUF metadata).

Rendered the way Hugging Face's transformers renders chat templates (sandboxed Jinja,
trim/lstrip blocks, a `tojson` that keeps non-ASCII text and does not HTML-escape), because
that is what the templates are written and tested against.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qwen_tui.engine.errors import EngineError

# Used when a GGUF carries no template: ChatML, which Qwen and SmolLM2 both speak.
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateError(EngineError):
    """The chat template failed to render these messages."""


def _raise_exception(message: str) -> None:
    raise TemplateError(f"chat template error: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"the model's chat template does not parse: {exc}") from None


def render_chat(
    template: str | None,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    thinking: bool | None = None,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """Render messages into the prompt text. `thinking=None` leaves the template's default."""
    variables: dict[str, Any] = {
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
    }
    if tools:
        variables["tools"] = tools
    if thinking is not None:
        variables["enable_thinking"] = thinking
    try:
        return _compile(template or CHATML).render(**variables)
    except TemplateError:
        raise
    except Exception as exc:  # a template bug must not take the app down
        raise TemplateError(f"the model's chat template failed: {type(exc).__name__}: {exc}") from None


def prompt_opens_reasoning(prompt: str) -> bool:
    """True when the prompt ends inside an open `<think>` block (Qwen 3.5 with thinking on)."""
    tail = prompt.rstrip()
    return tail.endswith("<think>")
