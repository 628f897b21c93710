"""The model runner: loads a model, creates its context, generates (llama.cpp through
llama-cpp-python's ctypes bindings).

It runs inside the engine's worker process, as do the other modules that call llama.cpp:
prompt_eval.py (evaluating the prompt, prefix reuse), sampler_chain.py, checkpoints.py,
speculative.py, vision.py. We drive llama.cpp's C API ourselves instead of
`Llama.create_completion`, which re-detokenizes the whole completion on every token (+2.4 ms
per token at 2K tokens, measured) and allocates an n_batch x n_vocab score matrix (~509 MB
for Qwen 3.5's 248K vocabulary). Per token we do: sample (C), piece (C), feed one UTF-8
incremental decoder, fill a one-token batch, decode (C).
"""

from __future__ import annotations

import codecs
import ctypes
import time
from collections.abc import Callable

import llama_cpp

from qwen_tui.engine import checkpoints, gpu_offload, sampler_chain, speculative, thread_tuning
from qwen_tui.engine.errors import EngineError, ModelLoadError
from qwen_tui.engine.events import Finished, Timings, Usage
from qwen_tui.engine.params import LoadParams, Sampling, flash_attn_type
from qwen_tui.engine.prompt_eval import PromptEvaluation

_backend_ready = False


class LlamaRunner(PromptEvaluation):
    """One model, one context, one sequence; remembers which tokens are in the context's memory."""

    def __init__(self, params: LoadParams, progress: Callable[[float], None] | None = None) -> None:
        global _backend_ready
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True
        self.params = params
        cpu_while_loading = thread_tuning.CpuLoad() if params.tune_threads else None  # others' use: the first look
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
        self.flash_attn = flash_attn_type(params.flash_attn, self.offload.n_gpu_layers)  # [speed] flash_attn
        cparams.flash_attn_type = self.flash_attn
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
        self.threads = thread_tuning.attach(self, cpu_while_loading) if params.tune_threads else None  # measured, cached
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
            "flash_attn": {-1: "auto", 0: "off", 1: "on"}.get(self.flash_attn, str(self.flash_attn)),
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
        if self.threads is None:
            return self._generate(prompt, t_start, max_tokens, sampling, emit_text, cancelled)
        self.threads.before_generate()  # fewer threads while other programs use the CPU (no waiting)
        try:
            return self._generate(prompt, t_start, max_tokens, sampling, emit_text, cancelled)
        finally:
            self.threads.after_generate()  # after a cancel or an error too: the background looks resume

    def _generate(self, prompt: list[int], t_start: float, max_tokens: int, sampling: Sampling,
                  emit_text: Callable[[str], None], cancelled: Callable[[], bool]) -> Finished:
        start = self._reuse_prefix(prompt)
        evaluated = len(prompt) - start

        if not self._evaluate_prompt(prompt, start, cancelled):
            return self._finish_cancelled_prompt(prompt, evaluated, t_start)
        t_prompt = time.perf_counter()

        sampler = sampler_chain.build(self.vocab, sampling)
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
        return Finished(
            reason,
            Usage(len(prompt), evaluated, n_out),
            Timings((t_prompt - t_start) * 1000, (t_end - t_first) * 1000, (t_first - t_start) * 1000),
            extra={"sample_ms": t_sample * 1000, "decode_call_ms": t_decode * 1000, **self.checkpoints.stats(self._restored_at),
                   **(self.speculative.stats() if self.speculative is not None else {}),
                   **(self.threads.stats() if self.threads is not None else {}),
                   **(self.vision.stats() if self.vision is not None else {})},
        )

    def _reset(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        self.cached.clear()
        self.checkpoints.clear()  # they need the attention cache of their prefix
        if self.speculative is not None:
            self.speculative.reset()

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
        if self.threads is not None:
            self.threads.close()  # its background look
        if self.speculative is not None:
            self.speculative.close()  # its context refers to ours
        if self.vision is not None:
            self.vision.close()
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)
