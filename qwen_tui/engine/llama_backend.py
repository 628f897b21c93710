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
        mparams.n_gpu_layers = params.n_gpu_layers
        mparams.use_extra_bufts = params.use_extra_bufts
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
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ModelLoadError(f"llama.cpp could not create a {params.n_ctx}-token context for {params.path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self.cached: list[int] = []  # exactly the tokens whose effect is in the context's memory
        self._piece = ctypes.create_string_buffer(256)
        self._abort_requested: Callable[[], bool] = lambda: False
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: bool(self._abort_requested()))

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
            "recurrent": bool(llama_cpp.llama_model_is_recurrent(self.model) or llama_cpp.llama_model_is_hybrid(self.model)),
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
        return llama_cpp.llama_decode(self.ctx, batch)

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

        An exact extension of the cached tokens costs nothing to keep. Anything else needs the
        memory cut back, which a recurrent (Qwen 3.5 DeltaNet) state cannot do: then we start over.
        (State checkpoints that make divergence cheap belong to the context manager.)
        """
        cached = self.cached
        common = 0
        limit = min(len(cached), len(prompt))
        while common < limit and cached[common] == prompt[common]:
            common += 1
        if common == len(prompt):  # nothing new to evaluate: we still need the last position's logits
            common -= 1
        if common == len(cached):
            return common
        if common > 0 and llama_cpp.llama_memory_seq_rm(self.memory, 0, common, -1):
            del cached[common:]
            return common
        llama_cpp.llama_memory_clear(self.memory, True)
        cached.clear()
        return 0

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
        start = self._reuse_prefix(prompt)
        evaluated = len(prompt) - start

        # Prompt: in n_batch chunks, abortable inside a chunk (the callback costs a Python call per
        # graph node, fine for a prompt chunk, too much per decoded token: it is unset below).
        self._abort_requested = cancelled
        llama_cpp.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            pos = start
            while pos < len(prompt):
                if cancelled():
                    return self._finish_cancelled_prompt(prompt, evaluated, t_start)
                chunk = prompt[pos : pos + self.params.n_batch]
                rc = self._decode(chunk, pos)
                if rc == 2 or cancelled():
                    return self._finish_cancelled_prompt(prompt, evaluated, t_start)
                if rc != 0:
                    self._reset()
                    raise EngineError(f"llama_decode failed on the prompt (code {rc})")
                self.cached.extend(chunk)
                pos += len(chunk)
        finally:
            llama_cpp.llama_set_abort_callback(self.ctx, llama_cpp.ggml_abort_callback(0), None)
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
            while n_out < max_tokens:
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
        return Finished(
            reason,
            Usage(len(prompt), evaluated, n_out),
            Timings((t_prompt - t_start) * 1000, (t_end - t_first) * 1000, (t_first - t_start) * 1000),
            extra={"sample_ms": t_sample * 1000, "decode_call_ms": t_decode * 1000},
        )

    def _finish_cancelled_prompt(self, prompt: list[int], evaluated: int, t_start: float) -> Finished:
        self._reset()  # an aborted batch leaves the memory in an unknown state
        ms = (time.perf_counter() - t_start) * 1000
        return Finished("cancelled", Usage(len(prompt), evaluated, 0), Timings(ms, 0.0, ms))

    def _reset(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        self.cached.clear()

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
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)
