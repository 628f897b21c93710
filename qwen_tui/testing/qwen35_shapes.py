"""Hyperparameters of the random-weight qwen35 GGUFs that qwen_tui.testing.tiny_qwen35 writes.

`TINY` is the test fixture (toy widths: attention over a long cache dominates its cost).
`SHAPED_0_8B` has the *per-block* shape of Qwen 3.5 0.8B (one block = 3 Gated DeltaNet layers +
1 full-attention layer, at the real widths), so that benchmarks can show what a long session
costs on a real model's shape without downloading one: the real 0.8B stacks 6 such blocks
(24 layers), which scales the weight and the attention work alike. Values from Qwen3.5-0.8B's
config.json as llama.cpp's converter (conversion/qwen.py) writes them:

    hidden_size 1024 -> embedding_length        intermediate_size 3584 -> feed_forward_length
    num_attention_heads 8, num_key_value_heads 2, head_dim 256 (key/value length)
    partial_rotary_factor 0.25 -> rope dimension 64, mrope_section [11, 11, 10]
    linear_num_key_heads 16 -> ssm.group_count  linear_num_value_heads 16 -> ssm.time_step_rank
    linear_key_head_dim 128 -> ssm.state_size   linear_value_head_dim * heads 2048 -> ssm.inner_size
    linear_conv_kernel_dim 4 -> ssm.conv_kernel  full_attention_interval 4

(the same `ssm.*` / attention values as `engine/state_size.QWEN35_0_8B`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

N_VOCAB = 248320  # the real Qwen 3.5 vocabulary (padded to the model's embedding rows)


@dataclass(frozen=True)
class Qwen35Shape:
    name: str  # general.name
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int  # attention key/value length
    n_rot: int
    rope_sections: tuple[int, int, int, int]  # sum <= n_rot / 2
    ssm_state_size: int  # head_k_dim == head_v_dim
    ssm_group_count: int  # number of k heads
    ssm_time_step_rank: int  # number of v heads (a multiple of the k heads)
    full_attention_interval: int = 4
    ssm_conv_kernel: int = 4
    q8_0: bool = False  # matrices as Q8_0 (the token embedding always is)
    context_length: int = 262144
    rms_eps: float = 1e-6
    rope_freq_base: float = 10_000_000.0

    @property
    def ssm_inner_size(self) -> int:
        return self.ssm_state_size * self.ssm_time_step_rank

    def is_recurrent(self, il: int) -> bool:
        return (il + 1) % self.full_attention_interval != 0

    def with_layers(self, n_layer: int) -> "Qwen35Shape":
        """The same widths with more (or fewer) layers; a multiple of the attention interval."""
        if n_layer < 1 or n_layer % self.full_attention_interval:
            raise ValueError(f"layers must be a positive multiple of {self.full_attention_interval}, not {n_layer}")
        return replace(self, n_layer=n_layer)


# Known to load and decode with llama-cpp-python 0.3.36; the test fixture (do not change: the
# tests and the cached fixture files depend on these exact values).
TINY = Qwen35Shape(
    name="tiny-qwen35-random", n_embd=64, n_layer=4, n_ff=128, n_head=2, n_head_kv=1, head_dim=32,
    n_rot=8, rope_sections=(2, 1, 1, 0), ssm_state_size=16, ssm_group_count=2, ssm_time_step_rank=4,
)

SHAPED_0_8B = Qwen35Shape(
    name="qwen35-0.8b-shaped-random", n_embd=1024, n_layer=4, n_ff=3584, n_head=8, n_head_kv=2, head_dim=256,
    n_rot=64, rope_sections=(11, 11, 10, 0), ssm_state_size=128, ssm_group_count=16, ssm_time_step_rank=16,
    q8_0=True,
)
