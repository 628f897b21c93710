"""Small vision-projector (mmproj) GGUFs for tests.

`header_only_mmproj` writes a valid GGUF whose metadata says "clip with a vision encoder" (the
Qwen 3.5 projector type) and holds no tensors: enough for everything that reads headers
(registry, `models info`, capability detection), not for llama.cpp's mtmd, which needs weights.
"""

from __future__ import annotations

from pathlib import Path


def header_only_mmproj(path: Path, projector: str = "qwen3vl_merger") -> Path:
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(projector)
    writer.add_name("tiny test projector (no weights)")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# A tiny random-weight Qwen 3.5 / Qwen3-VL vision projector (llama.cpp's `qwen3vl_merger`), shaped
# like convert_hf_to_gguf.py's output for Qwen3_5ForConditionalGeneration, at toy sizes: one ViT
# block of width 32, 16 px patches, 2x2 spatial merge, projecting to the tiny qwen35's 64-wide
# embeddings. llama.cpp's mtmd loads it and encodes images with it; the output is noise.
V_EMBD = 32
V_HEADS = 2
V_FF = 64
V_LAYERS = 1
PATCH = 16
IMAGE_SIZE = 64  # learned position embeddings for a 4x4 patch grid (resized to other grids)


def build_tiny_mmproj(path: Path, text_n_embd: int = 64, seed: int = 0) -> Path:
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.02, dtype=np.float32) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "clip")
    writer.add_name("tiny-qwen35-mmproj-random")
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type("qwen3vl_merger")
    writer.add_vision_projection_dim(text_n_embd)
    writer.add_vision_embedding_length(V_EMBD)
    writer.add_vision_feed_forward_length(V_FF)
    writer.add_vision_block_count(V_LAYERS)
    writer.add_vision_head_count(V_HEADS)
    writer.add_vision_attention_layernorm_eps(1e-6)
    writer.add_vision_image_size(IMAGE_SIZE)
    writer.add_vision_patch_size(PATCH)
    writer.add_vision_image_mean([0.5, 0.5, 0.5])
    writer.add_vision_image_std([0.5, 0.5, 0.5])
    writer.add_vision_spatial_merge_size(2)
    writer.add_vision_use_gelu(True)
    n_pos = (IMAGE_SIZE // PATCH) ** 2
    # numpy shapes are ggml's ne reversed
    writer.add_tensor("v.patch_embd.weight", w(V_EMBD, 3, PATCH, PATCH, dtype=np.float16))
    writer.add_tensor("v.patch_embd.weight.1", w(V_EMBD, 3, PATCH, PATCH, dtype=np.float16))
    writer.add_tensor("v.patch_embd.bias", w(V_EMBD))
    writer.add_tensor("v.position_embd.weight", w(n_pos, V_EMBD))
    for il in range(V_LAYERS):
        p = f"v.blk.{il}"
        writer.add_tensor(f"{p}.ln1.weight", np.ones(V_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.ln1.bias", np.zeros(V_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.attn_qkv.weight", w(3 * V_EMBD, V_EMBD))
        writer.add_tensor(f"{p}.attn_qkv.bias", w(3 * V_EMBD))
        writer.add_tensor(f"{p}.attn_out.weight", w(V_EMBD, V_EMBD))
        writer.add_tensor(f"{p}.attn_out.bias", w(V_EMBD))
        writer.add_tensor(f"{p}.ln2.weight", np.ones(V_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.ln2.bias", np.zeros(V_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.ffn_up.weight", w(V_FF, V_EMBD))
        writer.add_tensor(f"{p}.ffn_up.bias", w(V_FF))
        writer.add_tensor(f"{p}.ffn_down.weight", w(V_EMBD, V_FF))
        writer.add_tensor(f"{p}.ffn_down.bias", w(V_EMBD))
    writer.add_tensor("v.post_ln.weight", np.ones(V_EMBD, dtype=np.float32))
    writer.add_tensor("v.post_ln.bias", np.zeros(V_EMBD, dtype=np.float32))
    writer.add_tensor("mm.0.weight", w(4 * V_EMBD, 4 * V_EMBD))
    writer.add_tensor("mm.0.bias", w(4 * V_EMBD))
    writer.add_tensor("mm.2.weight", w(text_n_embd, 4 * V_EMBD))
    writer.add_tensor("mm.2.bias", w(text_n_embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path
