"""Split a streamed reply into reasoning (`<think>...</think>`) and answer, incrementally.

Works on text, not token ids, so it serves any model: Qwen 3.5 opens the block in the prompt
(its generation prompt ends with `<think>\\n` when thinking is on), other models may open it
themselves at the start of the reply. A tag split across two deltas is held back until it
is complete, so no `</thi` fragment ever reaches the screen.
"""

from __future__ import annotations

from qwen_tui.engine.events import ReasoningDelta, TextDelta

OPEN, CLOSE = "<think>", "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of text that is a proper prefix of tag."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningSplitter:
    def __init__(self, in_reasoning: bool = False) -> None:
        self.in_reasoning = in_reasoning
        self._pending = ""
        self._answer_started = False  # a `<think>` is only honoured before any answer text
        self._strip_newlines = in_reasoning  # the text right after a tag starts with newlines we drop

    def feed(self, text: str) -> list[TextDelta | ReasoningDelta]:
        self._pending += text
        out: list[TextDelta | ReasoningDelta] = []
        while self._pending:
            if self.in_reasoning:
                idx = self._pending.find(CLOSE)
                if idx >= 0:
                    self._emit(out, self._pending[:idx])
                    self._pending = self._pending[idx + len(CLOSE) :]
                    self.in_reasoning = False
                    self._strip_newlines = True
                    continue
                keep = _partial_suffix(self._pending, CLOSE)
            else:
                if not self._answer_started:
                    stripped = self._pending.lstrip()
                    if stripped.startswith(OPEN):
                        self._pending = stripped[len(OPEN) :]
                        self.in_reasoning = True
                        self._strip_newlines = True
                        continue
                    if not stripped or OPEN.startswith(stripped):
                        break  # could still become `<think>`: wait for more
                keep = 0
            ready, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
            self._emit(out, ready)
            break
        return out

    def flush(self) -> list[TextDelta | ReasoningDelta]:
        out: list[TextDelta | ReasoningDelta] = []
        rest, self._pending = self._pending, ""
        self._emit(out, rest)
        return out

    def _emit(self, out: list, text: str) -> None:
        if self._strip_newlines:
            text = text.lstrip("\n")
            if not text:
                return
            self._strip_newlines = False
        if not text:
            return
        if self.in_reasoning:
            out.append(ReasoningDelta(text))
        else:
            self._answer_started = True
            out.append(TextDelta(text))
