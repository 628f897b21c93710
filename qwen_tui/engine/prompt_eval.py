"""Evaluating a prompt into the context (worker side): keep what the context already holds of
it, evaluate the rest in n_batch chunks, take checkpoints on the way, abortable.

A mixin of LlamaRunner (engine/llama_backend.py), which owns the state it works on: `ctx`,
`memory`, `cached` (exactly the tokens in the context's memory), `recurrent`, `checkpoints`,
`params`, `vision`, `_decode`, `_reset`, `_boundary_tokens` and the abort callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import llama_cpp

from qwen_tui.engine import checkpoints
from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Finished, Timings, Usage


class PromptEvaluation:
    """Prefix reuse (seq_rm or a checkpoint), chunked evaluation, rollback after an abort."""

    def _reuse_prefix(self, prompt: list[int]) -> int:
        """Keep what the context already holds of this prompt; return where evaluation starts.

        An exact extension of the cached tokens costs nothing to keep. Otherwise the memory is
        cut back to the divergence: `seq_rm` for attention-only models; for hybrid/recurrent
        ones (whose state cannot roll back) the newest checkpoint at or below the divergence is
        loaded and the attention tail removed. With no usable checkpoint: start over.
        """
        cached = self.cached
        self._restored_at = None
        common = checkpoints.common_prefix(cached, prompt)
        if common == len(prompt):  # nothing new to evaluate: we still need the last position's logits
            common -= 1
        if common == len(cached):
            return common
        if not self.recurrent:
            if common > 0 and llama_cpp.llama_memory_seq_rm(self.memory, 0, common, -1):
                del cached[common:]
                return common
        else:
            for cp in self.checkpoints.newest_at_or_below(common):
                if cp.key != checkpoints.prefix_key(prompt, cp.n_tokens):
                    self.checkpoints.discard(cp)  # not this prompt's prefix (cannot happen unless corrupted)
                    continue
                if checkpoints.restore(self.ctx, self.memory, cp):
                    del cached[cp.n_tokens:]
                    self.checkpoints.drop_after(cp.n_tokens)
                    self.checkpoints.restored += 1
                    self._restored_at = cp.n_tokens
                    return cp.n_tokens
                break  # llama.cpp refused it: the memory's state is unknown now, start over
        self._reset()
        return 0

    def _checkpoint_stops(self, prompt: list[int], start: int) -> list[int]:
        """Positions in the prompt where evaluation pauses to take a checkpoint."""
        if not self.checkpoints.enabled:
            return []
        positions = self.checkpoints.positions()
        return checkpoints.plan_positions(prompt, start, self._boundary_tokens,
                                          last_taken=positions[-1] if positions else -1)

    def _take_checkpoint(self, n_tokens: int) -> None:
        if self.checkpoints.has(n_tokens):
            return
        t0 = time.perf_counter()
        cp = checkpoints.save(self.ctx, self.cached, n_tokens)
        if cp is not None and self.checkpoints.add(cp):
            self.checkpoints.saved += 1
        self.checkpoints.save_ms += (time.perf_counter() - t0) * 1000

    def _evaluate_prompt(self, prompt: list[int], start: int, cancelled: Callable[[], bool]) -> bool:
        """Evaluate prompt[start:] in n_batch chunks (pausing at checkpoint positions).

        Returns False when cancelled. Abortable inside a chunk: the callback costs a Python call
        per graph node, fine for a prompt chunk, too much per decoded token: it is unset after.
        """
        stops = self._checkpoint_stops(prompt, start)
        self._abort_requested = cancelled
        llama_cpp.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            pos = start
            end = len(prompt)
            while pos < end:
                if cancelled():
                    return False
                while stops and stops[0] < pos:
                    stops.pop(0)
                if stops and stops[0] == pos:
                    self._take_checkpoint(pos)
                    stops.pop(0)
                stop = min(end, pos + self.params.n_batch, stops[0] if stops else end)
                chunk = prompt[pos:stop]
                vision = self.vision is not None and self.vision.has_placeholders(chunk)  # images: vision.py
                rc = self.vision.decode(chunk, pos) if vision else self._decode(chunk, pos)
                if rc == 2:  # aborted inside the chunk: keep what was evaluated before it
                    self._rollback_to_cached()
                    return False
                if rc != 0:
                    self._reset()
                    raise EngineError(f"llama_decode failed on the prompt (code {rc})")
                self.cached.extend(chunk)
                pos = stop
        finally:
            llama_cpp.llama_set_abort_callback(self.ctx, llama_cpp.ggml_abort_callback(0), None)
        return True

    def _rollback_to_cached(self) -> None:
        """After an aborted batch: make the memory hold exactly `cached` again (or start over).

        llama.cpp removes the aborted positions from the attention cache, but a recurrent state
        may have been updated part-way: a checkpoint at or below the end of `cached` fixes it.
        """
        n = len(self.cached)
        if not self.recurrent:
            if n and llama_cpp.llama_memory_seq_rm(self.memory, 0, n, -1):
                return
        else:
            for cp in self.checkpoints.newest_at_or_below(n):
                if checkpoints.restore(self.ctx, self.memory, cp):
                    del self.cached[cp.n_tokens:]
                    self.checkpoints.drop_after(cp.n_tokens)
                    return
                break
        self._reset()

    def _finish_cancelled_prompt(self, prompt: list[int], evaluated: int, t_start: float) -> Finished:
        # The memory holds exactly `cached` (the chunks evaluated before the cancel): the next
        # request reuses them.
        ms = (time.perf_counter() - t_start) * 1000
        return Finished("cancelled", Usage(len(prompt), evaluated, 0), Timings(ms, 0.0, ms))
