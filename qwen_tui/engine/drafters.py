"""Drafters for engine/speculative.py: Qwen 3.5's MTP head, and prompt lookup (worker side).

MtpDrafter: the GGUF's NextN block (`blk.N.nextn.*`, loaded with `load_mtp`) in a second
llama.cpp context of type MTP. It takes (token at p, target hidden state at p-1) and predicts
the token at p+1; its own KV cache mirrors every batch the target decodes. llama.cpp exposes the
hidden states through its staging API (src/llama-ext.h), exported from libllama with C++
linkage and not bound by llama-cpp-python: we bind those symbols here (MTP_BINDINGS is False,
and decoding plain, when they are missing).

LookupDrafter: continues the longest recent n-gram that occurred earlier in the context
(prompt-lookup decoding): free to draft, useful when the model quotes a file.

A drafter: begin(cached), observe(tokens, start_pos), trimmed(keep), reset(),
draft(token, pos, n_max) -> tokens, close().
"""

from __future__ import annotations

import ctypes
import logging

import llama_cpp
import numpy as np

from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.params import SpeculativeParams

log = logging.getLogger(__name__)

MTP_ARCHITECTURES = ("qwen35", "qwen35moe")  # one NextN head: the MTP graph llama.cpp has for them
_TOP_K = 10  # MTP confidence: softmax over the head's 10 best logits (llama.cpp's draft-mtp sampler)


def _staging(mangled: str, argtypes: list, restype):
    try:
        fn = getattr(llama_cpp.llama_cpp._lib, mangled)
    except AttributeError:
        return None
    fn.argtypes, fn.restype = argtypes, restype
    return fn


_set_embeddings_nextn = _staging("_Z26llama_set_embeddings_nextnP13llama_contextbb",
                                 [ctypes.c_void_p, ctypes.c_bool, ctypes.c_bool], None)
_get_embeddings_nextn = _staging("_Z26llama_get_embeddings_nextnP13llama_context",
                                 [ctypes.c_void_p], ctypes.POINTER(ctypes.c_float))
_get_embeddings_nextn_ith = _staging("_Z30llama_get_embeddings_nextn_ithP13llama_contexti",
                                     [ctypes.c_void_p, ctypes.c_int32], ctypes.POINTER(ctypes.c_float))
MTP_BINDINGS = None not in (_set_embeddings_nextn, _get_embeddings_nextn, _get_embeddings_nextn_ith)


def has_mtp_head(model) -> bool:
    """A NextN block of an architecture whose MTP graph llama.cpp has, and the bindings to drive it."""
    return bool(MTP_BINDINGS and _meta(model, "general.architecture") in MTP_ARCHITECTURES
                and llama_cpp.llama_model_n_layer_nextn(model) > 0)


def _meta(model, key: str) -> str:
    buf = ctypes.create_string_buffer(128)
    n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else ""


# -- drafters ------------------------------------------------------------------------------


class LookupDrafter:
    """Prompt lookup: find the context's last n tokens earlier in the context, propose what followed."""

    name = "lookup"

    def __init__(self, sp: SpeculativeParams) -> None:
        self.n_min = max(1, sp.ngram_min)
        self.n_max = max(self.n_min, sp.ngram_max)
        self.tokens: list[int] = []  # mirrors the tokens in the target's memory
        self.index: dict[tuple[int, ...], int] = {}  # n-gram -> end (exclusive) of its latest occurrence
        self.indexed = 0  # n-grams ending at or before this position are in the index

    def begin(self, cached: list[int]) -> None:
        n = len(self.tokens)
        if n > len(cached) or cached[:n] != self.tokens:
            self.reset()
        self.tokens.extend(cached[len(self.tokens):])

    def reset(self) -> None:
        self.tokens.clear()
        self.index.clear()
        self.indexed = 0

    def observe(self, tokens: list[int], start_pos: int) -> None:
        if start_pos < len(self.tokens):
            self.trimmed(start_pos)
        elif start_pos > len(self.tokens):
            self.reset()  # a gap: begin() resyncs from the runner's token list
            return
        self.tokens.extend(tokens)

    def trimmed(self, keep: int) -> None:
        del self.tokens[keep:]
        self.indexed = min(self.indexed, keep)  # stale entries are checked against the tokens on lookup

    def _update_index(self) -> None:
        toks, index = self.tokens, self.index
        for end in range(self.indexed + 1, len(toks) + 1):
            for n in range(self.n_min, self.n_max + 1):
                if end >= n:
                    index[tuple(toks[end - n:end])] = end
        self.indexed = len(toks)

    def draft(self, token: int, pos: int, n_max: int) -> list[int]:
        toks = self.tokens
        if pos != len(toks):
            return []
        self._update_index()
        for n in range(self.n_max, self.n_min - 1, -1):
            if len(toks) < n:  # the key is the last n-1 tokens plus `token`, and needs an earlier copy
                continue
            key = (*toks[len(toks) - n + 1:], token)
            end = self.index.get(key)
            if end is None or end >= len(toks) or tuple(toks[end - n:end]) != key:
                continue
            return toks[end:end + n_max]
        return []

    def accepted(self, pos0: int, n_keep: int) -> None:
        pass  # observe() and trimmed() keep the token list exact

    def close(self) -> None:
        pass


class MtpDrafter:
    """Qwen 3.5's multi-token-prediction head, run in an MTP context next to the target's."""

    name = "mtp"

    def __init__(self, runner, sp: SpeculativeParams) -> None:
        self.p_min = sp.p_min
        self.target = runner.ctx
        self.n_embd = llama_cpp.llama_model_n_embd_out(runner.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(runner.vocab)
        p = runner.params
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = runner.n_ctx  # one attention layer's KV cache over the whole context
        cparams.n_batch = cparams.n_ubatch = p.n_batch
        cparams.n_threads, cparams.n_threads_batch = p.n_threads, p.n_threads_batch
        cparams.flash_attn_type = runner.flash_attn  # the main context's choice ([speed] flash_attn, CPU default)
        cparams.n_outputs_max = 1
        cparams.n_rs_seq = 0
        cparams.ctx_type = llama_cpp.LLAMA_CONTEXT_TYPE_MTP
        cparams.ctx_other = runner.ctx
        self.ctx = llama_cpp.llama_init_from_model(runner.model, cparams)
        if not self.ctx:
            raise EngineError("llama.cpp could not create the MTP context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_ext_init(self.ctx)
        _set_embeddings_nextn(self.target, True, False)  # the target's hidden state for every row
        _set_embeddings_nextn(self.ctx, True, True)  # the head's own, for the rows we read
        self._pos = (ctypes.c_int32 * 4)()
        self.pending = np.zeros(self.n_embd, dtype=np.float32)  # target hidden state at n_past - 1
        self.pending_ok = False
        self.n_past = 0  # positions [.., n_past) of the head's memory mirror the target's
        self.rows = np.zeros((0, self.n_embd), dtype=np.float32)  # hidden states of the last target batch
        self.rows_pos = 0

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        llama_cpp.llama_set_n_threads(self.ctx, n_threads, n_threads_batch)

    def begin(self, cached: list[int]) -> None:
        if self.n_past > len(cached):
            self.trimmed(len(cached))

    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        self.pending_ok = False
        self.n_past = 0

    def trimmed(self, keep: int) -> None:
        if keep < self.n_past:
            llama_cpp.llama_memory_seq_rm(self.memory, 0, keep, -1)
            self.n_past = keep
            idx = keep - 1 - self.rows_pos
            self.pending_ok = 0 <= idx < len(self.rows)
            if self.pending_ok:
                self.pending[:] = self.rows[idx]

    def _add(self, token: int, pos: int, embd: np.ndarray, output: bool) -> None:
        b = self.batch
        idx = llama_cpp.llama_batch_ext_add_token(b, 0, token)
        if idx < 0:
            raise EngineError(f"MTP batch is full (error {idx})")
        self._pos[0] = pos
        llama_cpp.llama_batch_ext_set_pos(b, idx, self._pos)
        llama_cpp.llama_batch_ext_set_embd_token(
            b, idx, llama_cpp.llama_embd(embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), 1, self.n_embd))
        if output:
            llama_cpp.llama_batch_ext_set_output_logits(b, idx, True)

    def observe(self, tokens: list[int], start_pos: int) -> None:
        """The target decoded `tokens` from `start_pos`: give the head the same positions."""
        n = len(tokens)
        ptr = _get_embeddings_nextn(self.target)
        if not ptr:
            self.reset()
            return
        rows = np.ctypeslib.as_array(ptr, shape=(n * self.n_embd,)).reshape(n, self.n_embd).copy()
        if start_pos == 0:
            self.reset()
        elif start_pos < self.n_past:
            self.trimmed(start_pos)
        elif start_pos > self.n_past:
            self.pending_ok = False  # a gap (e.g. a state restored elsewhere): skip one position
        llama_cpp.llama_batch_ext_clear(self.batch)
        added = 0
        for k, tok in enumerate(tokens):
            if k == 0:
                if not self.pending_ok:
                    continue
                embd = self.pending
            else:
                embd = rows[k - 1]
            self._add(tok, start_pos + k, embd, False)
            added += 1
        if added and llama_cpp.llama_process(self.ctx, llama_cpp.LLAMA_PROCESS_TYPE_DECODE, self.batch) != 0:
            log.warning("MTP head failed to follow the target; drafting restarts with the next prompt")
            self.reset()
            return
        self.rows, self.rows_pos = rows, start_pos
        self.pending[:] = rows[-1]
        self.pending_ok = True
        self.n_past = start_pos + n

    def accepted(self, pos0: int, n_keep: int) -> None:
        self.trimmed(pos0 + n_keep)

    def draft(self, token: int, pos: int, n_max: int) -> list[int]:
        if not self.pending_ok or pos != self.n_past or n_max <= 0:
            return []
        drafts: list[int] = []
        embd = self.pending
        tok = token
        for i in range(n_max):
            llama_cpp.llama_batch_ext_clear(self.batch)
            self._add(tok, pos + i, embd, True)
            if llama_cpp.llama_process(self.ctx, llama_cpp.LLAMA_PROCESS_TYPE_DECODE, self.batch) != 0:
                break
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, 0), shape=(self.n_vocab,))
            best = int(logits.argmax())
            if self.p_min > 0:
                top = np.partition(logits, -_TOP_K)[-_TOP_K:]
                p = 1.0 / float(np.exp(top - logits[best]).sum())
                if p < self.p_min:
                    break
            drafts.append(best)
            embd = np.ctypeslib.as_array(_get_embeddings_nextn_ith(self.ctx, 0), shape=(self.n_embd,)).copy()
            tok = best
        llama_cpp.llama_memory_seq_rm(self.memory, 0, pos, -1)  # the target's verify batch rewrites them
        return drafts

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_batch_ext_free(self.batch)
            _set_embeddings_nextn(self.target, False, False)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
