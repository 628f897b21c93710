"""Draft-and-verify decoding in the worker: Qwen 3.5's own MTP head, or prompt lookup.

A drafter proposes the next few tokens cheaply; the target model evaluates the sampled token
and the drafts in one batch (one pass over the weights instead of one per token), and the
sampler then walks the batch's logit rows in order: a row's sample that equals the next draft
confirms it, the first that differs ends the step. Every emitted token is sampled by the same
sampler chain, from the same logits row a plain decode would have produced, in the same order,
so greedy output (and seeded sampling, which draws once per emitted token) stays the same.

Rollback: the rejected drafts must leave the model's memory. Qwen 3.5's Gated DeltaNet state
cannot be cut back in general (`seq_rm` returns False); llama.cpp keeps per-token snapshots of
the last batch when the context is created with `n_rs_seq` > 0 (whitelisted for qwen35), and
`seq_rm` then rewinds up to `n_rs_seq` tokens. It says yes to any rewind that short, though,
even when the snapshots belong to an older batch: `trim()` only allows rewinds inside the
batch that was decoded last.

The drafters (engine/drafters.py): MtpDrafter, the GGUF's own NextN head in an MTP context;
LookupDrafter, n-gram continuation from the context (prompt lookup).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import llama_cpp

from qwen_tui.engine.drafters import MTP_BINDINGS, LookupDrafter, MtpDrafter, has_mtp_head
from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.params import LoadParams

log = logging.getLogger(__name__)

MODES = ("auto", "mtp", "lookup", "off")


def load_mtp_weights(params: LoadParams) -> bool:
    """Whether to ask llama.cpp for the NextN tensors (nothing to load when a GGUF has none)."""
    return params.speculative.mode in ("auto", "mtp") and MTP_BINDINGS


def rollback_depth(params: LoadParams, model) -> int:
    """`n_rs_seq` for the target context: how far back the recurrent state can be rewound.

    Zero unless drafts will be verified: the snapshots cost (1 + n) copies of the recurrent state.
    """
    sp = params.speculative
    drafting = sp.mode == "lookup" or (sp.mode in ("auto", "mtp") and has_mtp_head(model))
    return max(0, sp.draft_max) if drafting else 0


# -- the verify loop -----------------------------------------------------------------------


class Pacer:
    """Drafts only while they pay off here: tokens/s of drafted steps vs. plain ones, measured.

    A rejected draft costs a wider batch (and, for MTP, the head's own decodes); whether that
    is cheaper than the tokens it saves depends on the model, the CPU and the text. So: a few
    plain steps first, then draft; once drafted steps have been slower than plain ones (moving
    averages), decode plainly for a while (32 tokens, doubling while drafting keeps losing,
    up to 1024) and try again.
    """

    ALPHA = 0.25
    MIN_STEPS = 4
    START_PAUSE = 32
    MAX_PAUSE = 1024

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.plain: float | None = None  # tokens/s, moving averages
        self.spec: float | None = None
        self.pause = 4 if enabled else 0  # plain steps to go (a first measurement of plain speed)
        self.backoff = self.START_PAUSE
        self.n_spec = 0
        self.paused_tokens = 0

    def allow(self) -> bool:
        if self.pause > 0:
            self.pause -= 1
            self.paused_tokens += 1
            return False
        return True

    def record(self, drafted: bool, tokens: int, seconds: float) -> None:
        if not self.enabled or seconds <= 0 or tokens <= 0:
            return
        rate = tokens / seconds
        if not drafted:
            self.plain = rate if self.plain is None else self.plain + self.ALPHA * (rate - self.plain)
            return
        self.spec = rate if self.spec is None else self.spec + self.ALPHA * (rate - self.spec)
        self.n_spec += 1
        if self.plain is None or self.n_spec < self.MIN_STEPS:
            return
        if self.spec < self.plain:
            self.pause, self.backoff = self.backoff, min(self.backoff * 2, self.MAX_PAUSE)
            self.spec, self.n_spec = None, 0
        else:
            self.backoff = self.START_PAUSE


class Speculative:
    """Drafts, verifies and rolls back for one LlamaRunner; counts what was accepted."""

    def __init__(self, runner, drafter, draft_max: int, adaptive: bool = True) -> None:
        self.runner = runner
        self.pacer = Pacer(adaptive)
        self.drafter = drafter
        self.name = drafter.name
        self.draft_max = draft_max
        self.recurrent = bool(llama_cpp.llama_model_is_recurrent(runner.model) or llama_cpp.llama_model_is_hybrid(runner.model))
        self.last = (0, 0)  # (start, n_tokens) of the last batch the target decoded
        self.drafted = self.accepted = self.steps = 0  # since load
        self._batch = runner.batch

    # hooks the runner calls -----------------------------------------------------------------

    def observe(self, tokens: list[int], start_pos: int) -> None:
        self.last = (start_pos, len(tokens))
        self.drafter.observe(tokens, start_pos)

    def trim(self, keep: int) -> bool:
        """Remove the runner's cached tokens from `keep` on; False (memory untouched) if it can't."""
        r = self.runner
        n_back = len(r.cached) - keep
        if n_back <= 0:
            return n_back == 0
        if self.recurrent:
            start, n = self.last
            if start + n != len(r.cached) or n_back >= n or n_back > llama_cpp.llama_n_rs_seq(r.ctx):
                return False  # the snapshots llama.cpp would rewind to are not from this batch
        if not llama_cpp.llama_memory_seq_rm(r.memory, 0, keep, -1):
            return False
        del r.cached[keep:]
        self.last = (keep, 0)  # one rewind per batch
        self.drafter.trimmed(keep)
        return True

    def reset(self) -> None:
        self.last = (0, 0)
        self.drafter.reset()

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        if hasattr(self.drafter, "set_threads"):
            self.drafter.set_threads(n_threads, n_threads_batch)

    def stats(self) -> dict:
        return {
            "speculative": self.name,
            "draft_tokens": self.drafted,
            "draft_accepted": self.accepted,
            "draft_steps": self.steps,
            "acceptance": self.accepted / self.drafted if self.drafted else 0.0,
            "draft_paused_tokens": self.pacer.paused_tokens,  # decoded plainly: drafts did not pay here
        }

    def close(self) -> None:
        self.drafter.close()

    # decoding --------------------------------------------------------------------------------

    def _decode_rows(self, tokens: list[int], pos: int) -> int:
        """Decode with logits for every row (row i predicts the token after tokens[i])."""
        b = self._batch
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1
        b.n_tokens = len(tokens)
        return llama_cpp.llama_decode(self.runner.ctx, b)

    def generate(self, sampler, decoder, max_tokens: int, ignore_eos: bool,
                 emit_text: Callable[[str], None], cancelled: Callable[[], bool]):
        """Continue after the prompt: the same stops and the same tokens as the runner's plain loop.

        Returns (tokens out, finish reason, time of the first sample or None, seconds sampling,
        seconds in llama_decode).
        """
        r = self.runner

        def emit(token: int) -> None:
            text = decoder.decode(r.piece(token))
            if text:
                emit_text(text)

        ctx, vocab, cached = r.ctx, r.vocab, r.cached
        sample, is_eog = llama_cpp.llama_sampler_sample, llama_cpp.llama_vocab_is_eog
        clock = time.perf_counter
        self.drafter.begin(cached)
        n_out, reason, t_first = 0, "length", None
        t_sample = t_decode = 0.0
        batch: list[int] = []  # what the last decode evaluated; empty: sample the prompt's last row
        step_start, step_out = None, 0  # when the last step began drafting, n_out then
        while max_tokens > 0:
            rows = max(len(batch), 1)
            keep = rows  # tokens of `batch` that stay in memory
            token = None
            done = False
            for i in range(rows):
                if cancelled():
                    reason, keep, done = "cancelled", i + 1, True
                    break
                t0 = clock()
                tok = sample(sampler, ctx, i if batch else -1)
                t1 = clock()
                t_sample += t1 - t0
                if t_first is None:
                    t_first = t1
                keep = i + 1
                if is_eog(vocab, tok) and not ignore_eos:
                    reason, done = "stop", True
                    break
                n_out += 1
                emit(tok)
                in_memory = len(cached) - rows + i + 1  # what a plain decode would hold now
                if in_memory + 1 >= r.n_ctx:
                    reason, done = "length", True
                    break
                if n_out >= max_tokens:
                    done = True
                    break
                if i + 1 < rows and tok == batch[i + 1]:
                    self.accepted += 1
                    continue
                token = tok
                break
            if step_start is not None:
                self.pacer.record(rows > 1, n_out - step_out, clock() - step_start)
            if batch and keep < rows:
                pos0 = len(cached) - rows
                if not self.trim(pos0 + keep):
                    r._reset()
                    raise EngineError("llama.cpp could not roll back rejected draft tokens")
            if done:
                break
            pos = len(cached)
            room = min(self.draft_max, max_tokens - n_out - 1, r.n_ctx - pos - 2)
            step_start, step_out = clock(), n_out
            drafts = self.drafter.draft(token, pos, room) if room > 0 and self.pacer.allow() else []
            batch = [token, *drafts[:max(room, 0)]]
            t0 = clock()
            rc = self._decode_rows(batch, pos)
            t_decode += clock() - t0
            if rc != 0:
                r._reset()
                raise EngineError(f"llama_decode failed while generating (code {rc})")
            cached.extend(batch)
            self.observe(batch, pos)
            if len(batch) > 1:
                self.steps += 1
                self.drafted += len(batch) - 1
        return n_out, reason, t_first, t_sample, t_decode


def attach(runner) -> Speculative | None:
    """A Speculative for this runner, or None: plain decoding (off, unsupported, no NextN tensors)."""
    sp = runner.params.speculative
    if sp.mode not in MODES or sp.mode == "off" or sp.draft_max <= 0:
        return None
    recurrent = bool(llama_cpp.llama_model_is_recurrent(runner.model) or llama_cpp.llama_model_is_hybrid(runner.model))
    depth = llama_cpp.llama_n_rs_seq(runner.ctx) if recurrent else sp.draft_max
    draft_max = min(sp.draft_max, depth, runner.params.n_outputs_max - 1, runner.params.n_batch - 1)
    if draft_max <= 0:
        return None  # a recurrent model without llama.cpp's rollback support
    drafter = None
    if sp.mode in ("auto", "mtp"):
        if has_mtp_head(runner.model):
            try:
                drafter = MtpDrafter(runner, sp)
            except EngineError as exc:
                log.warning("%s; decoding without drafts", exc)
                return None
    elif sp.mode == "lookup":
        drafter = LookupDrafter(sp)
    return Speculative(runner, drafter, draft_max, sp.adaptive) if drafter is not None else None
