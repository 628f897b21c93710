"""Tokenize a chat prompt in O(new text): per message, cached (app side, no llama_cpp).

Re-tokenizing the whole rendered conversation every turn costs O(history) (50 ms at 18K tokens
on the tiny fixture, measured; more on a slow CPU), which would make turn latency grow with the
session again. llama.cpp splits the text at special tokens before it runs BPE, so a prompt cut
right before each `<|im_start|>` tokenizes to the same tokens piece by piece. Pieces are cached
by their text, so a turn tokenizes only the messages that changed (the new user message, the
re-rendered last answer, the generation prompt). The first prompt is also tokenized whole and
compared: if a tokenizer does not split that way (a SentencePiece space prefix, a special token
that strips the whitespace next to it), whole-prompt tokenization is used from then on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

MARK = "<|im_start|>"


def split_at_marks(text: str, mark: str = MARK) -> list[str]:
    """text cut before every mark; "".join(pieces) == text."""
    cuts = []
    at = text.find(mark)
    while at != -1:
        cuts.append(at)
        at = text.find(mark, at + len(mark))
    bounds = [0, *[c for c in cuts if c > 0], len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


class PieceTokenizer:
    def __init__(self, tokenize: Callable[[str], list[int]], *, entries: int = 4096) -> None:
        self._tokenize = tokenize
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._entries = entries
        self.trusted: bool | None = None  # None: not checked yet
        self.calls = 0  # pieces actually sent to the tokenizer (tests count them)

    def __call__(self, text: str) -> list[int]:
        if self.trusted is False or MARK not in text:
            return self._tokenize(text)
        out: list[int] = []
        for piece in split_at_marks(text):
            out.extend(self._piece(piece))
        if self.trusted is None:
            whole = self._tokenize(text)
            self.trusted = whole == out
            if not self.trusted:
                self._cache.clear()
            return whole
        return out

    def _piece(self, piece: str) -> tuple[int, ...]:
        tokens = self._cache.get(piece)
        if tokens is not None:
            self._cache.move_to_end(piece)
            return tokens
        self.calls += 1
        tokens = tuple(self._tokenize(piece))
        self._cache[piece] = tokens
        if len(self._cache) > self._entries:
            self._cache.popitem(last=False)
        return tokens
