"""What a context checkpoint and the attention cache cost (from a GGUF's hyperparameters), and
how many checkpoints the configuration allows (`[context] max_checkpoints`, `checkpoint_mib`).

A checkpoint (engine/checkpoints.py) holds the recurrent state of every Gated DeltaNet layer,
in f32 (llama.cpp's default type for recurrent state), the formula of llama.cpp's
`llama_hparams::n_embd_r()` / `n_embd_s()`:

    conv  = (ssm.conv_kernel - 1) * (ssm.inner_size + 2 * ssm.group_count * ssm.state_size)
    delta = ssm.state_size * ssm.inner_size
    checkpoint bytes = recurrent layers * (conv + delta) * 4   (+ ~100 bytes of headers)

with recurrent layers = block_count - block_count / full_attention_interval. The attention
layers' KV cache (f16) costs attention layers * 2 * head_count_kv * key_length * 2 bytes a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024

# GGUF hyperparameters (the `qwen35.*` keys) of the published Qwen 3.5 models.
QWEN35_0_8B = {
    "block_count": 24, "full_attention_interval": 4, "ssm.conv_kernel": 4, "ssm.state_size": 128,
    "ssm.group_count": 16, "ssm.time_step_rank": 16, "ssm.inner_size": 2048,
    "attention.head_count_kv": 2, "attention.key_length": 256, "attention.value_length": 256,
}
QWEN35_9B = {
    "block_count": 32, "full_attention_interval": 4, "ssm.conv_kernel": 4, "ssm.state_size": 128,
    "ssm.group_count": 16, "ssm.time_step_rank": 32, "ssm.inner_size": 4096,
    "attention.head_count_kv": 4, "attention.key_length": 256, "attention.value_length": 256,
}


@dataclass(frozen=True)
class StateCost:
    recurrent_layers: int
    attention_layers: int
    checkpoint_bytes: int  # one checkpoint (the recurrent state), without llama.cpp's small headers
    kv_bytes_per_token: int  # attention KV cache, f16

    def describe(self) -> str:
        return (f"{self.recurrent_layers} DeltaNet layers: {self.checkpoint_bytes / MIB:.2f} MiB per checkpoint; "
                f"{self.attention_layers} attention layers: {self.kv_bytes_per_token / 1024:.0f} KiB of KV per token")


def state_cost(hparams: dict[str, Any]) -> StateCost | None:
    """From `qwen35.*`-style keys without the architecture prefix; None for a model without SSM layers."""
    try:
        n_layer = int(hparams["block_count"])
        inner = int(hparams["ssm.inner_size"])
        d_state = int(hparams["ssm.state_size"])
        groups = int(hparams["ssm.group_count"])
        kernel = int(hparams["ssm.conv_kernel"])
    except (KeyError, TypeError, ValueError):
        return None
    interval = int(hparams.get("full_attention_interval") or 0)
    attn_layers = n_layer // interval if interval else 0
    recr_layers = n_layer - attn_layers
    per_layer = (kernel - 1) * (inner + 2 * groups * d_state) + d_state * inner
    head_kv = hparams.get("attention.head_count_kv", 0)
    head_kv = max(head_kv) if isinstance(head_kv, list) else int(head_kv)
    k_len = int(hparams.get("attention.key_length", 0))
    v_len = int(hparams.get("attention.value_length", k_len))
    kv = attn_layers * head_kv * (k_len + v_len) * 2
    return StateCost(recr_layers, attn_layers, recr_layers * per_layer * 4, kv)


def header_state_cost(header) -> StateCost | None:
    """state_cost() of a GGUFHeader (engine/gguf_header.py)."""
    prefix = header.architecture + "."
    return state_cost({k[len(prefix):]: v for k, v in header.metadata.items() if k.startswith(prefix)})


CHECKPOINT_KEYS = {"max_checkpoints": 32, "checkpoint_mib": 1024}


def checkpoint_settings(table: dict | None = None) -> tuple[dict[str, int], list[str]]:
    """`[context] max_checkpoints` / `checkpoint_mib` (engine/checkpoints.py); bad values -> defaults + a note."""
    problems: list[str] = []
    if table is None:
        from qwen_tui.config import load_table

        table, problems = load_table("context")
    settings = dict(CHECKPOINT_KEYS)
    for key, default in CHECKPOINT_KEYS.items():
        value = table.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            settings[key] = value
        else:
            problems.append(f"[context] {key} must be a whole number >= 0, not {value!r}; using {default}")
    return settings, problems
