"""Context checkpoints: cheap rollback for models whose memory cannot be cut back (worker side).

Qwen 3.5's Gated DeltaNet layers keep one constant-size state per sequence, updated in place:
once a token is in, the state before it is gone, so a prompt that diverges from what the
context holds (the template dropping an earlier `<think>`, an edited or regenerated message)
would have to be re-evaluated from token 0. Like llama-server's `--ctx-checkpoints`, we save
only the part of the memory that cannot roll back (`llama_state_seq_get_data_ext` with
`LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY`: the recurrent state, ~19 MiB for Qwen 3.5 0.8B) at
message boundaries and just before the end of each prompt. On divergence the newest checkpoint
at or below the divergence point is loaded back and the attention KV cache, which *can* roll
back, is cut to the same position (`llama_memory_seq_rm`); only the rest is evaluated.

A checkpoint taken at `n` holds the state after tokens[0:n] (taken before token n is decoded).
The store is bounded by count and by bytes; the oldest go first, except the first one (the end
of the system prompt, what a compaction of old turns diverges after).

Only the worker process imports this module (it calls llama.cpp).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import llama_cpp

PARTIAL = llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
MIB = 1024 * 1024


def prefix_key(tokens: list[int], n: int) -> int:
    """A fingerprint of tokens[0:n] (0.3 ms for 20K tokens); guards against restoring a wrong prefix."""
    return hash((n, tuple(tokens[:n])))


@dataclass
class Checkpoint:
    n_tokens: int  # the state after this many tokens
    key: int  # prefix_key(tokens, n_tokens) when it was taken
    data: ctypes.Array = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class CheckpointStore:
    """Checkpoints of one sequence, ordered by position, bounded by count and bytes."""

    max_count: int = 32
    max_bytes: int = 1024 * MIB
    items: list[Checkpoint] = field(default_factory=list)
    saved: int = 0  # statistics: how many were taken / restored / evicted since the start
    restored: int = 0
    evicted: int = 0
    save_ms: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(cp.size for cp in self.items)

    @property
    def enabled(self) -> bool:
        return self.max_count > 0 and self.max_bytes > 0

    def positions(self) -> list[int]:
        return [cp.n_tokens for cp in self.items]

    def has(self, n_tokens: int) -> bool:
        return any(cp.n_tokens == n_tokens for cp in self.items)

    def add(self, cp: Checkpoint) -> bool:
        """Keep cp (replacing one at the same position); evict the oldest to stay in bounds."""
        if not self.enabled or cp.size > self.max_bytes:
            return False
        self.items = [c for c in self.items if c.n_tokens != cp.n_tokens]
        self.items.append(cp)
        self.items.sort(key=lambda c: c.n_tokens)
        while len(self.items) > self.max_count or self.total_bytes > self.max_bytes:
            others = [c for c in self.items if c is not cp]
            # Keep the first (the end of the system prompt) while there is room for two.
            victim = others[1] if len(others) >= 2 else others[0]
            self.items.remove(victim)
            self.evicted += 1
        return cp in self.items

    def newest_at_or_below(self, n: int) -> list[Checkpoint]:
        """Candidates to restore for a divergence at n, newest first."""
        return [cp for cp in reversed(self.items) if 0 < cp.n_tokens <= n]

    def drop_after(self, n: int) -> None:
        """Forget checkpoints past n: the tokens after n are about to change."""
        self.items = [cp for cp in self.items if cp.n_tokens <= n]

    def discard(self, cp: Checkpoint) -> None:
        self.items = [c for c in self.items if c is not cp]

    def clear(self) -> None:
        self.items.clear()

    def stats(self, restored_at: int | None) -> dict:
        """For Finished.extra: which checkpoint a request started from, what the store holds."""
        return {
            "restored_checkpoint_at": restored_at,  # None: exact reuse, seq_rm, or from scratch
            "checkpoints": len(self.items),
            "checkpoint_bytes": self.total_bytes,
            "checkpoints_saved": self.saved,
            "checkpoints_restored": self.restored,
            "checkpoints_evicted": self.evicted,
            "checkpoint_save_ms": self.save_ms,
        }


def save(ctx, tokens: list[int], n_tokens: int) -> Checkpoint | None:
    """Copy the partial (recurrent) state of sequence 0, which holds tokens[0:n_tokens]."""
    size = llama_cpp.llama_state_seq_get_size_ext(ctx, 0, PARTIAL)
    if size <= 0:
        return None
    data = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data_ext(ctx, data, size, 0, PARTIAL)
    if written != size:
        return None
    return Checkpoint(n_tokens, prefix_key(tokens, n_tokens), data)


def restore(ctx, memory, cp: Checkpoint) -> bool:
    """Load cp's recurrent state and cut the attention cache to the same position.

    False when llama.cpp refuses the data or the memory does not end where cp says; the caller
    then clears the memory (its state is unknown) and evaluates from token 0.
    """
    if llama_cpp.llama_state_seq_set_data_ext(ctx, cp.data, cp.size, 0, PARTIAL) == 0:
        return False
    # Hybrid memory reports the lower of the two ends: the recurrent state must sit at n-1
    # (the attention cache still reaches further until it is cut below).
    if llama_cpp.llama_memory_seq_pos_max(memory, 0) != cp.n_tokens - 1:
        return False
    if not llama_cpp.llama_memory_seq_rm(memory, 0, cp.n_tokens, -1):
        return False
    return llama_cpp.llama_memory_seq_pos_max(memory, 0) == cp.n_tokens - 1


def plan_positions(prompt: list[int], start: int, boundary_tokens: frozenset[int], *,
                   min_step: int = 256, last_taken: int = -1) -> list[int]:
    """Where to stop and checkpoint while evaluating prompt[start:].

    Every message start (a boundary token such as `<|im_start|>`) at least `min_step` after the
    previous checkpoint; always the last two message starts (the last user message and the
    reply's header: what an edit, an undo or the template's rewrite of the reply diverges at);
    and len(prompt) - 1 (an identical prompt or a regenerate needs the last token's logits again).
    """
    end = len(prompt)
    starts = [i for i in range(start, end) if prompt[i] in boundary_tokens] if boundary_tokens else []
    always = set(starts[-2:]) | {end - 1}
    chosen: list[int] = []
    prev = last_taken
    for p in starts:
        if p in always or p - prev >= min_step:
            chosen.append(p)
            prev = p
    chosen.append(end - 1)
    return sorted({p for p in chosen if start < p < end or (p == start and p > 0)})


def common_prefix(a: list[int], b: list[int], block: int = 1024) -> int:
    """len of the longest common prefix; whole blocks are compared in C (20K tokens: ~0.1 ms)."""
    limit = min(len(a), len(b))
    n = 0
    while n + block <= limit and a[n:n + block] == b[n:n + block]:
        n += block
    while n < limit and a[n] == b[n]:
        n += 1
    return n
