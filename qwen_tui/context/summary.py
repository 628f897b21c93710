"""The compaction summary, written by the loaded model itself.

Cheap where it can be: the request is the conversation's own beginning (system prompt, tools and
the turns to summarise, rendered exactly as the last turn sent them) followed by one instruction,
so the engine finds that prefix in its cache and evaluates only the instruction. When that prefix
is too large for the window (a huge message just arrived), a standalone request carries a
transcript of the turns instead, each message shortened until it fits. If the model fails or
writes nothing, a plain list of the user's requests stands in, and `error` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qwen_tui.context.budget import Budget, TokenCounter
from qwen_tui.conversation import Message

SUMMARY_SYSTEM = (
    "You write compact, faithful summaries of conversations between a user and an AI assistant. "
    "Keep facts, decisions, names, numbers, file paths, code identifiers and open questions. "
    "Do not add anything that is not in the conversation."
)
SUMMARY_REQUEST = (
    "Summarise the following earlier part of our conversation so that it can replace it. "
    "Write plain prose or short bullet points, at most about {words} words.\n\n"
    "<conversation>\n{transcript}\n</conversation>"
)
SUMMARY_IN_PLACE = (
    "Stop here: do not answer or call any tool. Summarise our whole conversation above so that the "
    "summary can replace it: keep facts, decisions, names, numbers, file paths, code identifiers and "
    "open questions; add nothing. Plain prose or short bullet points, at most about {words} words."
)


@dataclass
class SummaryResult:
    text: str
    generated: int = 0  # tokens the model wrote
    error: str | None = None  # None: the model wrote it
    prompt_tokens: int = 0  # the request's size ...
    evaluated: int = 0  # ... and what the engine had to evaluate of it (the rest came from its cache)


def transcript(messages: list[Message], max_chars: int | None = None) -> str:
    lines = []
    for m in messages:
        who = {"user": "User", "assistant": "Assistant", "tool": "Tool result", "system": "System"}.get(m.role, m.role)
        if m.kind == "summary":
            who = "Summary of what came before"
        text = m.content
        if m.tool_calls:
            calls = ", ".join(str((c.get("function") or c).get("name", "?")) for c in m.tool_calls)
            text = f"{text}\n(called: {calls})".strip()
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars] + " [...]"
        lines.append(f"{who}: {text}")
    return "\n\n".join(lines)


def fallback(messages: list[Message], why: str) -> str:
    asks = [" ".join(m.content.split())[:160] for m in messages if m.role == "user" and m.content]
    listing = "\n".join(f"- {a}" for a in asks[:20]) or "- (no user requests)"
    return f"(No model summary: {why}.) {len(messages)} earlier messages; the user asked:\n{listing}"


def summarise(engine: Any, counter: TokenCounter, messages: list[Message], budget: Budget, max_tokens: int,
              *, prefix: list[dict] | None = None, tools: list[dict] | None = None) -> SummaryResult:
    """Summarise `messages`; `prefix`: the conversation's own template messages up to the last of
    them (system prompt included), rendered with `tools`, to reuse the engine's cache."""
    max_new = max(16, min(max_tokens, budget.n_ctx // 4))
    words = max(20, int(max_new * 0.6))
    room = budget.n_ctx - max_new - 8
    request: list[dict] | None = None
    request_tools = None
    if prefix:
        candidate = [*prefix, {"role": "user", "content": SUMMARY_IN_PLACE.format(words=words)}]
        if counter.prompt_tokens(candidate, tools=tools, thinking=False) <= room:
            request, request_tools = candidate, tools
    if request is None:
        request = _standalone(counter, messages, words, room)
        if request is None:
            return SummaryResult(fallback(messages, "the part to summarise is too large for the model's context"),
                                 error="too large to summarise")
    from qwen_tui.engine.events import Finished, TextDelta

    text: list[str] = []
    result = SummaryResult("")
    try:
        for event in engine.generate(request, tools=request_tools, thinking=False, max_tokens=max_new):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Finished):
                result.generated = event.usage.completion_tokens
                result.prompt_tokens = event.usage.prompt_tokens
                result.evaluated = getattr(event.usage, "prompt_tokens_evaluated", event.usage.prompt_tokens)
                if event.reason in ("error", "cancelled"):
                    result.error = event.error or event.reason
    except Exception as exc:  # noqa: BLE001 - a failed summary must not lose the turn
        result.error = f"{type(exc).__name__}: {exc}"
    summary = "".join(text).strip()
    if result.error or not summary:
        result.error = result.error or "the model wrote nothing"
        result.text = fallback(messages, result.error)
    else:
        result.text = summary
    return result


def _standalone(counter: TokenCounter, messages: list[Message], words: int, room: int) -> list[dict] | None:
    def build(max_chars: int | None) -> list[dict]:
        body = SUMMARY_REQUEST.format(words=words, transcript=transcript(messages, max_chars))
        return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": body}]

    max_chars: int | None = None
    request = build(None)
    tokens = counter.prompt_tokens(request, thinking=False)
    while tokens > room:
        if max_chars == 40:
            return None
        longest = max((len(m.content) for m in messages), default=1) or 1
        max_chars = max(40, int((max_chars or longest) * min(0.8, room / tokens)))
        request = build(max_chars)
        tokens = counter.prompt_tokens(request, thinking=False)
    return request
