"""The only code that calls llama.cpp (through llama-cpp-python's ctypes bindings).

It runs inside the engine's worker process. We drive llama.cpp's C API ourselves instead of
`Llama.create_completion`, which re-detokenizes the whole completion on every token (+2.4 ms
per token at 2K tokens, measured) and allocates an n_batch x n_vocab score matrix (~509 MB
for Qwen 3.5's 248K vocabulary). Per token we do: sample (C), piece (C), feed one UTF-8
incremental decoder, fill a one-token batch, decode (C).
"""

from __future__ import annotations

import codecs
import ctypes
import re
import time
from collections.abc import Callable

import llama_cpp

from qwen_tui.engine import checkpoints, gpu_offload, speculative, thread_tuning
from qwen_tui.engine.errors import EngineError, ModelLoadError
from qwen_tui.engine.events import Finished, Timings, Usage
from qwen_tui.engine.params import LoadParams, Sampling

_backend_ready = False


class LlamaRunner:
    """One model, one context, one sequence; remembers which tokens are in the context's memory."""

    def __init__(self, params: LoadParams, progress: Callable[[float], None] | None = None) -> None:
        global _backend_ready
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True
        self.params = params
        mparams = llama_cpp.llama_model_default_params()
        self.offload = gpu_offload.plan_for(params.path, params.n_ctx, params.n_gpu_layers)  # all, or what fits
        mparams.n_gpu_layers = self.offload.n_gpu_layers
        mparams.use_extra_bufts = params.use_extra_bufts
        mparams.load_mtp = speculative.load_mtp_weights(params)  # Qwen 3.5's NextN head, if the GGUF has one
        if progress is not None:
            def _progress(value: float, _data: ctypes.c_void_p) -> bool:
                progress(float(value))
                return True

            self._progress_cb = llama_cpp.llama_progress_callback(_progress)  # keep a reference
            mparams.progress_callback = self._progress_cb
        self.model = llama_cpp.llama_model_load_from_file(params.path.encode(), mparams)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not load {params.path}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = params.n_ctx
        cparams.n_batch = params.n_batch
        cparams.n_ubatch = params.n_batch
        cparams.n_threads = params.n_threads
        cparams.n_threads_batch = params.n_threads_batch
        cparams.flash_attn_type = params.flash_attn
        cparams.n_outputs_max = params.n_outputs_max
        cparams.no_perf = False
        cparams.n_rs_seq = speculative.rollback_depth(params, self.model)  # recurrent-state snapshots for draft rollback
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ModelLoadError(f"llama.cpp could not create a {params.n_ctx}-token context for {params.path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self.cached: list[int] = []  # exactly the tokens whose effect is in the context's memory
        # Hybrid/recurrent memory (Qwen 3.5's DeltaNet) cannot be cut back: checkpoints instead.
        self.recurrent = bool(llama_cpp.llama_model_is_recurrent(self.model) or llama_cpp.llama_model_is_hybrid(self.model))
        self.checkpoints = checkpoints.CheckpointStore(
            params.max_checkpoints if self.recurrent else 0, params.checkpoint_mib * checkpoints.MIB)
        self._restored_at: int | None = None  # the checkpoint the current request started from
        self._piece = ctypes.create_string_buffer(256)
        self._abort_requested: Callable[[], bool] = lambda: False
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: bool(self._abort_requested()))
        # Message starts (ChatML's `<|im_start|>`) are where checkpoints pay off.
        im_start = self.tokenize("<|im_start|>", parse_special=True)
        self._boundary_tokens = frozenset(im_start) if len(im_start) == 1 else frozenset()
        self.speculative = speculative.attach(self)  # None: plain decoding
        self.threads = thread_tuning.attach(self) if params.tune_threads else None  # measured, cached
        self.vision = None  # engine/vision.VisionEncoder, attached by the worker when an mmproj is loaded

    # -- vocabulary ------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
            return buf.raw[:n]
        return self._piece.raw[:n]

    def special_text(self, token: int) -> str:
        return self.piece(token).decode("utf-8", "replace") if token >= 0 else ""

    def describe(self) -> dict:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.model, buf, len(buf))
        bos = llama_cpp.llama_vocab_bos(self.vocab)
        eos = llama_cpp.llama_vocab_eos(self.vocab)
        return {
            "desc": buf.value.decode("utf-8", "replace"),
            "n_ctx": self.n_ctx,
            "n_ctx_train": llama_cpp.llama_model_n_ctx_train(self.model),
            "n_params": llama_cpp.llama_model_n_params(self.model),
            "n_vocab": llama_cpp.llama_vocab_n_tokens(self.vocab),
            "bos_token": self.special_text(bos),
            "eos_token": self.special_text(eos),
            "bos_id": bos if bos >= 0 else None,
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(self.vocab)),
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "gpu_layers": self.offload.n_gpu_layers,
            "gpu_reason": self.offload.reason,
            "recurrent": bool(llama_cpp.llama_model_is_recurrent(self.model) or llama_cpp.llama_model_is_hybrid(self.model)),
            "speculative": self.speculative.name if self.speculative is not None else None,
            "threads": self.threads.stats() if self.threads is not None else {},
        }

    # -- evaluation ------------------------------------------------------------------------

    def _decode(self, tokens: list[int], start_pos: int, logits_last: bool = True) -> int:
        batch = self.batch
        n = len(tokens)
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = start_pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 0
        if logits_last:
            batch.logits[n - 1] = 1
        batch.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, batch)
        if rc == 0 and self.speculative is not None:
            self.speculative.observe(tokens, start_pos)  # the MTP head mirrors every batch
        return rc

    def _decode_one(self, token: int, pos: int) -> int:
        """The per-token hot path: a one-token batch, filled in place."""
        batch = self.batch
        batch.token[0] = token
        batch.pos[0] = pos
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = 1
        batch.n_tokens = 1
        return llama_cpp.llama_decode(self.ctx, batch)

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

    def generate(
        self,
        prompt: list[int],
        *,
        max_tokens: int,
        sampling: Sampling,
        emit_text: Callable[[str], None],
        cancelled: Callable[[], bool],
    ) -> Finished:
        t_start = time.perf_counter()
        if not prompt:
            raise EngineError("empty prompt")
        if len(prompt) >= self.n_ctx:
            raise EngineError(f"the prompt has {len(prompt):,} tokens; the context holds {self.n_ctx:,}")
        if self.threads is not None:
            self.threads.before_generate()  # fewer threads while other programs use the CPU
        start = self._reuse_prefix(prompt)
        evaluated = len(prompt) - start

        if not self._evaluate_prompt(prompt, start, cancelled):
            return self._finish_cancelled_prompt(prompt, evaluated, t_start)
        t_prompt = time.perf_counter()

        sampler = self._make_sampler(sampling)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        sample, is_eog, decode_one = llama_cpp.llama_sampler_sample, llama_cpp.llama_vocab_is_eog, self._decode_one
        clock = time.perf_counter
        n_out = 0
        reason = "length"
        t_first = t_prompt
        t_sample = t_decode = 0.0  # seconds inside the sampler / inside llama_decode (C)
        try:
            if self.speculative is not None:  # draft-and-verify: engine/speculative.py
                n_out, reason, first, t_sample, t_decode = self.speculative.generate(
                    sampler, decoder, max_tokens, sampling.ignore_eos, emit_text, cancelled)
                t_first = first or t_prompt
            while n_out < max_tokens and self.speculative is None:
                if cancelled():
                    reason = "cancelled"
                    break
                t0 = clock()
                token = sample(sampler, self.ctx, -1)
                t1 = clock()
                t_sample += t1 - t0
                if n_out == 0:
                    t_first = t1
                if is_eog(self.vocab, token) and not sampling.ignore_eos:
                    reason = "stop"
                    break
                n_out += 1
                text = decoder.decode(self.piece(token))
                if text:
                    emit_text(text)
                if len(self.cached) + 1 >= self.n_ctx:
                    reason = "length"
                    break
                if n_out >= max_tokens:
                    break  # don't evaluate a token nobody will continue from
                t0 = clock()
                rc = decode_one(token, len(self.cached))
                t_decode += clock() - t0
                if rc != 0:
                    self._reset()
                    raise EngineError(f"llama_decode failed while generating (code {rc})")
                self.cached.append(token)
        finally:
            llama_cpp.llama_sampler_free(sampler)
        tail = decoder.decode(b"", final=True)
        if tail:
            emit_text(tail)
        t_end = time.perf_counter()
        if self.threads is not None:
            self.threads.after_generate()
        return Finished(
            reason,
            Usage(len(prompt), evaluated, n_out),
            Timings((t_prompt - t_start) * 1000, (t_end - t_first) * 1000, (t_first - t_start) * 1000),
            extra={"sample_ms": t_sample * 1000, "decode_call_ms": t_decode * 1000, **self.checkpoints.stats(self._restored_at),
                   **(self.speculative.stats() if self.speculative is not None else {}),
                   **(self.threads.stats() if self.threads is not None else {}),
                   **(self.vision.stats() if self.vision is not None else {})},
        )

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

    def _reset(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        self.cached.clear()
        self.checkpoints.clear()  # they need the attention cache of their prefix
        if self.speculative is not None:
            self.speculative.reset()

    def _make_sampler(self, s: Sampling):
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
        if s.grammar:
            if s.grammar_trigger:
                # Lazy: no cost per token until the trigger shows up (a 248K-vocabulary grammar costs
                # ~10x a plain decode step, measured); then the grammar constrains from the trigger on.
                pattern = "[\\s\\S]*?(" + re.escape(s.grammar_trigger) + "[\\s\\S]*)"
                patterns = (ctypes.c_char_p * 1)(pattern.encode())
                grammar = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
                    self.vocab, s.grammar.encode(), b"root", patterns, 1, None, 0)
            else:
                grammar = llama_cpp.llama_sampler_init_grammar(self.vocab, s.grammar.encode(), b"root")
            if not grammar:
                llama_cpp.llama_sampler_free(chain)
                raise EngineError("the grammar does not parse (GBNF)")
            add(grammar)
        if s.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(s.logit_bias))(*[
                llama_cpp.llama_logit_bias(token, bias) for token, bias in s.logit_bias])
            add(llama_cpp.llama_sampler_init_logit_bias(llama_cpp.llama_vocab_n_tokens(self.vocab), len(biases), biases))
        if s.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return chain
        if s.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(s.top_k))
        if s.top_p < 1.0:
            add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
        if s.min_p > 0:
            add(llama_cpp.llama_sampler_init_min_p(s.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(s.temperature))
        add(llama_cpp.llama_sampler_init_dist(s.seed))
        return chain

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        llama_cpp.llama_set_n_threads(self.ctx, n_threads, n_threads_batch)
        if self.speculative is not None:
            self.speculative.set_threads(n_threads, n_threads_batch)

    def perf(self) -> dict:
        data = llama_cpp.llama_perf_context(self.ctx)
        return {
            "t_p_eval_ms": data.t_p_eval_ms,
            "t_eval_ms": data.t_eval_ms,
            "n_p_eval": data.n_p_eval,
            "n_eval": data.n_eval,
        }

    def perf_reset(self) -> None:
        llama_cpp.llama_perf_context_reset(self.ctx)

    def close(self) -> None:
        if self.speculative is not None:
            self.speculative.close()  # its context refers to ours
        if self.vision is not None:
            self.vision.close()
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)
