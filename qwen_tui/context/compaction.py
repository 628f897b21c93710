"""Compaction: make a conversation fit the context window before the model sees it, losing nothing.

    compactor = Compactor(engine, settings)
    report = compactor.ensure_fits(conversation, tools=..., thinking=..., max_tokens=...)  # turn start
    report = compactor.ensure_fits(conversation, force=True)                               # /compact
    messages, notes = compactor.fit_request(messages, ...)   # before every model call (agent loop)
    conversation.undo_compaction()                           # undo the latest one

`ensure_fits` does nothing while the prompt is under `compact_at` of the budget (n_ctx minus the
reply reserve). Past it, in this order, until the prompt is down to `compact_to` of the budget:

1. any single message over `max_message_fraction` of the budget (a pasted file, a huge tool
   result) is cut to that size, keeping its head and tail around a marker that says how much
   was cut;
2. old tool outputs (before the last `keep_recent_turns` turns) are elided to
   `tool_output_keep_chars` (head + tail + a note);
3. the oldest turns are summarised by the loaded model itself into one marked summary message.

The system prompt, pinned messages and the recent turns stay verbatim (recent ones are only cut
when a single message is too large by itself). Every changed message keeps its full text
(`original`) and a summary keeps the messages it replaced, so a compaction can be inspected and
undone (`Conversation.undo_compaction`). If the prompt still does not fit, the largest messages
are cut further; if even the system prompt and tool schemas alone do not fit, `ContextOverflow`
says so and nothing is sent to llama.cpp.

`fit_request` is the guard the agent loop runs before each model call: when a turn's own tool
results push the prompt past the budget, it elides and cuts (never summarises, so the turn's
messages keep their places), recording the full text under the private key `_original`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qwen_tui.context.budget import Budget, ContextSettings, TokenCounter
from qwen_tui.context.summary import summarise
from qwen_tui.conversation import Conversation, Message

MIN_KEEP_TOKENS = 32  # the smallest a message is cut to in an emergency

class ContextOverflow(Exception):
    """The request cannot be made to fit the context window (said in one sentence)."""


@dataclass
class CompactionReport:
    number: int | None  # the compaction's number in the conversation (None: a turn's own inputs)
    tokens_before: int
    tokens_after: int = 0
    budget: int = 0  # the prompt budget (n_ctx - reply reserve)
    truncated: list[Message] = field(default_factory=list)  # messages cut because they were too large
    elided: list[Message] = field(default_factory=list)  # old tool outputs shortened
    summary: Message | None = None  # the summary that replaced the oldest turns
    summary_tokens: int = 0  # tokens the model generated for the summary
    summary_error: str | None = None  # the model could not summarise: a plain list was used
    summary_prompt_tokens: int = 0  # the summary request's prompt ...
    summary_evaluated: int = 0  # ... and how much of it the engine had to evaluate (the rest was cached)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.truncated or self.elided or self.summary)

    def describe(self) -> str:
        parts = []
        if self.summary is not None:
            parts.append(f"{len(self.summary.replaced)} messages summarised")
        if self.elided:
            parts.append(f"{len(self.elided)} old tool outputs elided")
        if self.truncated:
            parts.append(f"{len(self.truncated)} oversized messages cut")
        what = ", ".join(parts) or "nothing to compact"
        return (f"Compacted the context: {what}; {self.tokens_before:,} -> {self.tokens_after:,} tokens "
                f"of {self.budget:,} ({self.seconds:.1f} s)")


def elide(text: str, keep_chars: int, what: str = "tool output") -> str:
    """Head and tail of `text` around a note saying how much was left out."""
    keep_chars = max(keep_chars, 2)
    if len(text) <= keep_chars:
        return text
    head, tail = text[: keep_chars * 2 // 3], text[len(text) - keep_chars // 3 :]
    gone = len(text) - len(head) - len(tail)
    return (f"{head}\n[... {gone:,} of {len(text):,} characters of this {what} were elided by qwen-tui to "
            f"save context; the full text is kept in the session ...]\n{tail}")


def cut_marker(gone: int, total: int) -> str:
    return (f"\n[... qwen-tui cut {gone:,} of {total:,} characters here so that the conversation fits the "
            f"model's context window; the full text is kept in the session ...]\n")


def cut_to_tokens(count: Callable[[str], int], text: str, max_tokens: int) -> str:
    """`text` cut in the middle (head 2/3, tail 1/3, a marker between) to at most `max_tokens`."""
    total = count(text)
    if total <= max_tokens:
        return text
    chars_per_token = len(text) / max(total, 1)
    keep = int(max_tokens * chars_per_token * 0.9)
    while True:
        keep = max(keep, 0)
        head, tail = text[: keep * 2 // 3], text[len(text) - keep // 3 :] if keep >= 3 else ""
        out = head + cut_marker(len(text) - len(head) - len(tail), len(text)) + tail
        if keep == 0 or count(out) <= max_tokens:
            return out
        keep = int(keep * 0.8)


def recent_start(messages: list[Message], keep_turns: int) -> int:
    """Index of the first message of the last `keep_turns` user turns (at least the last one)."""
    seen = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.role == "user" and m.kind != "summary":
            seen += 1
            if seen >= max(keep_turns, 1):
                return i
    return 0


class Compactor:
    def __init__(self, engine: Any, settings: ContextSettings | None = None, counter: TokenCounter | None = None) -> None:
        self.engine = engine
        self.settings = settings or ContextSettings()
        self.counter = counter or TokenCounter(engine)
        self.last_measure: tuple[int, Budget] | None = None  # (prompt tokens, budget) of the last check

    def budget(self, max_tokens: int | None = None) -> Budget:
        return Budget.for_engine(self.engine, self.settings, max_tokens)

    def measure(self, messages: list[dict], *, tools=None, thinking=None,
                request: Callable[[list[dict]], list[dict]] | None = None) -> int:
        return self.counter.prompt_tokens(request(messages) if request else messages, tools=tools, thinking=thinking)

    # -- the conversation (turn start, /compact) ---------------------------------------------

    def ensure_fits(self, conversation: Conversation, *, tools=None, thinking=None, max_tokens: int | None = None,
                    force: bool = False, request=None, progress: Callable[[str], None] | None = None
                    ) -> CompactionReport | None:
        """Compact `conversation` in place when its prompt is past the threshold (or `force`).
        Returns what was done, or None when nothing had to be. Raises ContextOverflow.
        `progress(text)` is told when the model starts writing a summary (it takes a while)."""
        start = time.monotonic()
        budget = self.budget(max_tokens)

        def measure() -> int:
            return self.measure(conversation.for_template(), tools=tools, thinking=thinking, request=request)

        before = measure()
        self.last_measure = (before, budget)
        if not force and before <= budget.threshold:
            return None
        number = conversation.next_compaction_number()
        report = CompactionReport(number, before, budget=budget.limit)
        total = before
        messages = conversation.messages
        count = self.counter.count_text

        # 1. single messages too large for the window by themselves
        cap = max(MIN_KEEP_TOKENS, int(budget.limit * self.settings.max_message_fraction))
        for m in messages:
            if m.kind != "summary" and self.counter.message_tokens(m.for_template()) > cap:
                self._shorten(m, cut_to_tokens(count, m.content, cap), number)
                report.truncated.append(m)
        if report.truncated:
            total = measure()

        # 2. old tool outputs
        keep_from = recent_start(messages, self.settings.keep_recent_turns)
        keep_chars = self.settings.tool_output_keep_chars
        estimate = total  # per-message estimates while eliding (one render per message would be slow)
        for m in messages[:keep_from]:
            if not force and estimate <= budget.target:
                break
            if m.role == "tool" and not m.pinned and m.original is None and len(m.content) > keep_chars + 200:
                was = self.counter.message_tokens(m.for_template())
                self._shorten(m, elide(m.content, keep_chars), number)
                estimate -= was - self.counter.message_tokens(m.for_template())
                report.elided.append(m)
        if report.elided:
            total = measure()

        # 3. the oldest turns, summarised by the model
        if force or total > budget.target:
            chosen = self._oldest_turns(messages[:keep_from], total - budget.target, force)
            if chosen and not (len(chosen) == 1 and chosen[0].kind == "summary"):
                if progress is not None:
                    progress(f"summarising {len(chosen)} messages")
                end = max(i for i, m in enumerate(messages) if any(m is c for c in chosen))
                prefix = Conversation(conversation.system_prompt, messages[: end + 1]).for_template()
                result = summarise(self.engine, self.counter, chosen, budget, self.settings.summary_max_tokens,
                                   prefix=request(prefix) if request else prefix, tools=tools)
                text, generated, error = result.text, result.generated, result.error
                report.summary_prompt_tokens, report.summary_evaluated = result.prompt_tokens, result.evaluated
                summary = Message("user", text, kind="summary", replaced=chosen, compaction=number, finish_reason="stop")
                at = next(i for i, m in enumerate(messages) if m is chosen[0])
                ids = {id(m) for m in chosen}
                messages[:] = [*[m for m in messages[:at] if id(m) not in ids], summary,
                               *[m for m in messages[at:] if id(m) not in ids]]
                report.summary, report.summary_tokens, report.summary_error = summary, generated, error
                total = measure()

        # 4. still too large (recent turns alone are): cut the largest messages further
        if total > budget.limit:
            total = self._squeeze(conversation, measure, total, budget, number, report)
        report.tokens_after = total
        report.seconds = time.monotonic() - start
        self.last_measure = (total, budget)
        return report

    @staticmethod
    def _shorten(m: Message, text: str, number: int | None) -> None:
        if m.original is None:
            m.original = m.content
        m.content = text
        m.compaction = number

    def _oldest_turns(self, candidates: list[Message], need: int, everything: bool) -> list[Message]:
        """The oldest unpinned messages worth `need` tokens (plus the summary's own size), ending
        where a user turn starts, so a call and its result are summarised together."""
        pool = [m for m in candidates if not m.pinned]
        if everything:
            return pool
        need += self.settings.summary_max_tokens
        chosen: list[Message] = []
        got = 0
        for i, m in enumerate(pool):
            chosen.append(m)
            got += self.counter.message_tokens(m.for_template())
            nxt = pool[i + 1] if i + 1 < len(pool) else None
            if got >= need and (nxt is None or (nxt.role == "user" and nxt.kind != "summary")):
                break
        return chosen

    def _squeeze(self, conversation: Conversation, measure, total: int, budget: Budget, number, report) -> int:
        last_user = conversation.last_user_index() or 0
        while total > budget.limit:
            sized = [(self.counter.message_tokens(m.for_template()), i, m) for i, m in enumerate(conversation.messages)
                     if m.content and m.kind != "summary"]
            # earlier messages first, then the current exchange; the largest first within each
            sized.sort(key=lambda t: (t[1] >= last_user, -t[0]))
            target = next(((n, m) for n, i, m in sized if n > MIN_KEEP_TOKENS * 2), None)
            if target is None:
                raise ContextOverflow(self._overflow_message(total, budget))
            n, m = target
            self._shorten(m, cut_to_tokens(self.counter.count_text, m.content, max(MIN_KEEP_TOKENS, n - (total - budget.limit) - 16, n // 2)), number)
            if m not in report.truncated:
                report.truncated.append(m)
            total = measure()
        return total

    @staticmethod
    def _overflow_message(total: int, budget: Budget) -> str:
        return (f"the conversation needs {total:,} tokens even with every message cut short, but the context holds "
                f"{budget.n_ctx:,} ({budget.reserve:,} kept for the answer): the system prompt or the tool list is too "
                "large for this context size (try --ctx)")

    # -- one request (the agent loop, before each model call) ----------------------------------

    def fit_request(self, messages: list[dict], *, tools=None, thinking=None, max_tokens: int | None = None,
                    request=None) -> tuple[list[dict], list[str]]:
        """`messages` made to fit the budget by eliding and cutting message text (never by
        summarising: the messages keep their places). Returns (messages, notes for the user).
        Raises ContextOverflow when even that cannot make it fit."""
        budget = self.budget(max_tokens)

        def measure(msgs: list[dict]) -> int:
            return self.measure(msgs, tools=tools, thinking=thinking, request=request)

        total = measure(messages)
        self.last_measure = (total, budget)
        if total <= budget.limit:
            return messages, []
        before = total
        out = [dict(m) for m in messages]
        notes: list[str] = []
        count = self.counter.count_text

        def shorten(entry: dict, text: str) -> None:
            entry.setdefault("_original", entry.get("content") or "")
            entry["content"] = text

        cap = max(MIN_KEEP_TOKENS, int(budget.limit * self.settings.max_message_fraction))
        for entry in out:
            if entry.get("role") != "system" and isinstance(entry.get("content"), str) and \
                    self.counter.message_tokens(entry) > cap:
                shorten(entry, cut_to_tokens(count, entry["content"], cap))
                notes.append(f"A {entry.get('role')} message of {len(entry['_original']):,} characters was cut to fit "
                             "the context window (marked where).")
        total = estimate = measure(out)
        for entry in out:
            if estimate <= budget.limit:
                break
            text = entry.get("content")
            if entry.get("role") == "tool" and isinstance(text, str) and "_original" not in entry and \
                    len(text) > self.settings.tool_output_keep_chars + 200:
                was = self.counter.message_tokens(entry)
                shorten(entry, elide(text, self.settings.tool_output_keep_chars))
                estimate -= was - self.counter.message_tokens(entry)
                notes.append("An earlier tool output was elided to fit the context window.")
        total = measure(out)
        while total > budget.limit:
            sized = sorted(((self.counter.message_tokens(e), i) for i, e in enumerate(out)
                            if e.get("role") != "system" and isinstance(e.get("content"), str) and e.get("content")),
                           reverse=True)
            if not sized or sized[0][0] <= MIN_KEEP_TOKENS * 2:
                raise ContextOverflow(self._overflow_message(total, budget))
            n, i = sized[0]
            shorten(out[i], cut_to_tokens(count, out[i]["content"], max(MIN_KEEP_TOKENS, n - (total - budget.limit) - 16, n // 2)))
            total = measure(out)
            notes.append(f"A {out[i].get('role')} message was cut to fit the context window.")
        self.last_measure = (total, budget)
        summary = f"The prompt was {before:,} tokens, over the budget of {budget.limit:,}; it is now {total:,}."
        return out, [*dict.fromkeys(notes), summary]
