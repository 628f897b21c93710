"""llama.cpp sampler chains from our Sampling settings (worker side)."""

from __future__ import annotations

import ctypes
import re

import llama_cpp

from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.params import Sampling


def build(vocab, s: Sampling):
    """A sampler chain for these settings: grammar, logit bias, then greedy or top-k, top-p,
    min-p, temperature and a seeded draw. The caller frees it (llama_sampler_free)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
    if s.grammar:
        if s.grammar_trigger:
            # Lazy: no cost per token until the trigger shows up (a 248K-vocabulary grammar costs
            # ~10x a plain decode step, measured); then the grammar constrains from the trigger on.
            pattern = "[\\s\\S]*?(" + re.escape(s.grammar_trigger) + "[\\s\\S]*)"
            patterns = (ctypes.c_char_p * 1)(pattern.encode())
            grammar = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
                vocab, s.grammar.encode(), b"root", patterns, 1, None, 0)
        else:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, s.grammar.encode(), b"root")
        if not grammar:
            llama_cpp.llama_sampler_free(chain)
            raise EngineError("the grammar does not parse (GBNF)")
        add(grammar)
    if s.logit_bias:
        biases = (llama_cpp.llama_logit_bias * len(s.logit_bias))(*[
            llama_cpp.llama_logit_bias(token, bias) for token, bias in s.logit_bias])
        add(llama_cpp.llama_sampler_init_logit_bias(llama_cpp.llama_vocab_n_tokens(vocab), len(biases), biases))
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
