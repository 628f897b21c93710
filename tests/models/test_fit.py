"""Hardware fit: the seed's tiers, the context's memory, nvidia-smi detection, load warnings."""

from __future__ import annotations

import os
import stat

import pytest

from qwen_tui.engine.gguf_header import read_header
from qwen_tui.engine.resources import memory_shape
from qwen_tui.models import catalog
from qwen_tui.models.fit import (
    Gpu,
    Hardware,
    context_bytes,
    load_warning,
    max_context_for,
    nvidia_gpus,
    recommend,
)

GiB = 1024**3


def machine(ram: float, vram: float = 0, name: str = "GPU") -> Hardware:
    gpus = (Gpu(name, int(vram * GiB)),) if vram else ()
    return Hardware(int(ram * GiB), int(ram * GiB), 4, gpus)


@pytest.mark.parametrize(("hw", "size"), [
    (machine(2), "qwen3.5:0.8b"),  # phone / Pi / edge: 2 GB RAM
    (machine(4), "qwen3.5:2b"),  # integrated graphics: 4 GB
    (machine(16, vram=6), "qwen3.5:4b"),  # laptop dGPU: 6 GB VRAM
    (machine(32, vram=8), "qwen3.5:9b"),  # the new default: 8 GB VRAM
    (machine(32, vram=7.8), "qwen3.5:9b"),  # an "8 GB" card as nvidia-smi reports it
    (machine(64, vram=4), "qwen3.5:2b"),  # a small GPU caps the size whatever the RAM
])
def test_recommendation_follows_the_seed_tiers(hw, size):
    rec = recommend(hw)
    assert rec.choice is not None and rec.choice.preset.name == size
    assert rec.choice.needed <= rec.choice.memory
    assert any("the seed's table" in r for r in rec.reasons)


def test_quant_is_the_best_that_fits_with_the_context():
    hw = machine(32, vram=12)
    short = recommend(hw, n_ctx=4096).choice
    long = recommend(hw, n_ctx=65536).choice
    order = list(catalog.RECOMMENDED_QUANTS)
    assert short.preset.name == long.preset.name == "qwen3.5:9b"
    assert order.index(short.quant) < order.index(long.quant)  # more context, smaller quant
    # the next better quant would not have fitted
    better = order[order.index(long.quant) - 1]
    from qwen_tui.models.fit import evaluate

    assert evaluate(long.preset, better, 65536, hw).needed > long.memory


def test_a_long_context_can_change_the_size():
    hw = machine(32, vram=8)
    assert recommend(hw, n_ctx=32768).choice.preset.name == "qwen3.5:9b"
    long = recommend(hw, n_ctx=131072)
    assert long.choice.preset.name == "qwen3.5:4b"  # 9B at >= 4 bits plus 4 GiB of KV cache: too much
    assert "131,072-token context" in long.reasons[-2]


def test_context_memory_counts_only_full_attention_layers():
    nine = catalog.PRESETS_BY_NAME["qwen3.5:9b"]
    shape = memory_shape(nine.header())
    assert (shape.n_attention_layers, shape.n_recurrent_layers) == (8, 24)
    assert shape.kv_bytes_per_token == 8 * 4 * (256 + 256) * 2  # 32 KiB per token
    kv, state = context_bytes(nine, 262_144)
    assert kv > 8 * GiB and 0 < state < 100 * 1024**2  # DeltaNet state is fixed and small


def test_nothing_fits_says_what_to_do():
    rec = recommend(machine(1))
    assert rec.choice is None
    assert "nothing fits" in rec.reasons[-1] and "--demo" in rec.reasons[-1] and "--ctx" in rec.reasons[-1]


def test_cpu_only_machines_are_told_bigger_is_slower():
    rec = recommend(machine(64))
    assert rec.choice.preset.name == "qwen3.5:9b" and rec.choice.memory_kind == "RAM"
    assert any("CPU only" in r for r in rec.reasons)


def _fake_nvidia_smi(tmp_path, body: str, code: int = 0):
    exe = tmp_path / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{body}\nEOF\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_gpus_come_from_nvidia_smi(tmp_path):
    exe = _fake_nvidia_smi(tmp_path, "NVIDIA GeForce RTX 4060 Laptop GPU, 8188, 7900\nNVIDIA T4, 15360, 15000")
    gpus, note = nvidia_gpus(exe)
    assert note is None
    assert gpus == (Gpu("NVIDIA GeForce RTX 4060 Laptop GPU", 8188 * 1024**2, 7900 * 1024**2),
                    Gpu("NVIDIA T4", 15360 * 1024**2, 15000 * 1024**2))
    broken, note = nvidia_gpus(_fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed", code=9))
    assert broken == () and "nvidia-smi failed" in note


def test_no_nvidia_smi_means_no_gpu(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert nvidia_gpus() == ((), None)


def test_load_warning_for_a_model_that_does_not_fit(tiny_qwen35_path, demo_model_path):
    assert load_warning(tiny_qwen35_path, hw=machine(8)) is None
    warning = load_warning(demo_model_path, n_ctx=8192, hw=machine(0.3))
    assert warning and "SmolLM2" in warning and "may not load" in warning
    gpu = load_warning(demo_model_path, n_ctx=8192, hw=Hardware(16 * GiB, 16 * GiB, 4, (Gpu("tiny", 600 * 1024**2),)))
    assert gpu and "more than the GPU's" in gpu
    header = read_header(demo_model_path)
    assert 0 < max_context_for(header, machine(1)) < max_context_for(header, machine(2))


def test_detect_reads_this_machine():
    from qwen_tui.models.fit import detect

    hw = detect()
    assert hw.ram_total > 0 and 0 < hw.ram_available <= hw.ram_total * 1.01
    assert hw.cpus >= 1
    assert (hw.gpu is not None) == bool(hw.gpus)
    assert os.cpu_count() >= 1


@pytest.mark.parametrize(("spec", "repo", "quant", "name"), [
    ("qwen3.5:4b", "unsloth/Qwen3.5-4B-GGUF", None, "qwen3.5:4b"),
    ("Qwen3.5:9B:q5_k_m", "unsloth/Qwen3.5-9B-GGUF", "Q5_K_M", "qwen3.5:9b-q5_k_m"),
    ("unsloth/Qwen3.5-2B-GGUF:Q8_0", "unsloth/Qwen3.5-2B-GGUF", "Q8_0", "qwen3.5:2b-q8_0"),
    ("someone/Other-GGUF:IQ4_XS", "someone/Other-GGUF", "IQ4_XS", "someone/Other-GGUF:IQ4_XS"),
])
def test_pull_specs(spec, repo, quant, name):
    parsed = catalog.parse_spec(spec)
    assert (parsed.repo, parsed.quant, parsed.name) == (repo, quant, name)


def test_file_names_and_quants():
    four = catalog.PRESETS_BY_NAME["qwen3.5:4b"]
    assert four.filename("Q4_K_M") == "Qwen3.5-4B-Q4_K_M.gguf"
    assert catalog.quant_of_filename("Qwen3.5-9B-UD-Q4_K_XL.gguf") == "UD-Q4_K_XL"
    assert catalog.quant_of_filename("model.Q8_0.gguf") == "Q8_0"
    assert catalog.quant_of_filename("mmproj-F16.gguf") == "F16"
    assert catalog.quant_of_filename("weird.gguf") is None
    assert [p.min_memory_gb for p in catalog.PRESETS] == [2, 4, 6, 8]
    assert all(p.context_length == 262_144 for p in catalog.PRESETS)
