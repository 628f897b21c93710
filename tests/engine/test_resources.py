"""Context length and thread choices for the machine, before llama.cpp allocates anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_tui.engine import resources
from qwen_tui.engine.errors import InsufficientMemoryError
from qwen_tui.engine.gguf_header import GGUFHeader, read_header

GiB = 1024**3
MiB = 1024**2


def qwen35_header(n_layers, n_embd, n_head_kv, head_dim, k_heads, v_heads, d_state=128, size=1 * GiB):
    """A header with the hyperparameters of a real Qwen 3.5 GGUF (no weights needed)."""
    md = {
        "general.architecture": "qwen35",
        "qwen35.block_count": n_layers,
        "qwen35.embedding_length": n_embd,
        "qwen35.attention.head_count": 8,
        "qwen35.attention.head_count_kv": n_head_kv,
        "qwen35.attention.key_length": head_dim,
        "qwen35.attention.value_length": head_dim,
        "qwen35.context_length": 262_144,
        "qwen35.full_attention_interval": 4,
        "qwen35.ssm.state_size": d_state,
        "qwen35.ssm.group_count": k_heads,
        "qwen35.ssm.time_step_rank": v_heads,
        "qwen35.ssm.inner_size": d_state * v_heads,
        "qwen35.ssm.conv_kernel": 4,
    }
    return GGUFHeader(Path("qwen3.5.gguf"), 3, md, [], 0, size)


def test_qwen35_0_8b_memory_shape():
    shape = resources.memory_shape(qwen35_header(24, 1024, 2, 256, 16, 16))
    assert (shape.n_recurrent_layers, shape.n_attention_layers) == (18, 6)
    assert shape.kv_bytes_per_token == 12 * 1024  # 12 KiB per token, F16 KV
    assert 18 * MiB < shape.recurrent_state_bytes < 20 * MiB  # ~19 MiB of DeltaNet state


def test_qwen35_9b_memory_shape():
    shape = resources.memory_shape(qwen35_header(32, 4096, 4, 256, 16, 32))
    assert shape.kv_bytes_per_token == 32 * 1024
    assert 48 * MiB < shape.recurrent_state_bytes < 52 * MiB


def test_tiny_fixture_shape(tiny_qwen35_path):
    shape = resources.memory_shape(read_header(tiny_qwen35_path))
    assert (shape.n_recurrent_layers, shape.n_attention_layers) == (3, 1)
    assert shape.kv_bytes_per_token == 1 * 1 * (32 + 32) * 2


def test_full_trained_context_when_ram_allows():
    plan = resources.plan_context(qwen35_header(24, 1024, 2, 256, 16, 16), available=32 * GiB)
    assert plan.n_ctx == 262_144
    assert "trained" in plan.reason


def test_context_capped_by_ram_and_says_so():
    header = qwen35_header(32, 4096, 4, 256, 16, 32, size=int(6.6 * GiB))
    plan = resources.plan_context(header, available=10 * GiB)
    assert 8_192 < plan.n_ctx < 262_144
    assert plan.n_ctx % 256 == 0
    assert "limited by RAM" in plan.reason
    assert plan.weights_bytes + plan.kv_bytes < 10 * GiB


def test_requested_context_too_big_is_a_clear_error():
    header = qwen35_header(32, 4096, 4, 256, 16, 32, size=int(6.6 * GiB))
    with pytest.raises(InsufficientMemoryError, match="not enough memory for a 262,144-token context"):
        resources.plan_context(header, 262_144, available=8 * GiB)


def test_model_that_cannot_fit_at_all():
    with pytest.raises(InsufficientMemoryError, match="not enough memory to run"):
        resources.plan_context(qwen35_header(32, 4096, 4, 256, 16, 32, size=20 * GiB), available=8 * GiB)


def test_threads_leave_a_core_for_the_ui_on_small_machines(monkeypatch):
    monkeypatch.setattr(resources, "usable_cpus", lambda: 2)
    monkeypatch.setattr(resources, "physical_cores", lambda n: n)
    plan = resources.plan_threads()
    assert (plan.n_threads, plan.n_threads_batch) == (1, 1)
    assert "UI" in plan.reason


def test_hyperthreads_are_not_cores(monkeypatch):
    monkeypatch.setattr(resources, "usable_cpus", lambda: 16)
    monkeypatch.setattr(resources, "physical_cores", lambda n: n // 2)
    assert resources.plan_threads().n_threads == 7


def test_explicit_threads_win():
    plan = resources.plan_threads(3, 5)
    assert (plan.n_threads, plan.n_threads_batch, plan.reason) == (3, 5, "as requested")
