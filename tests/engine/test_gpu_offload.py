"""GPU offload planning (engine/gpu_offload.py): all layers when the model fits, else what fits."""

from __future__ import annotations

from qwen_tui.engine.gpu_offload import COMPUTE_RESERVE, plan_for, plan_layers

GiB = 2**30


def test_a_model_that_fits_goes_entirely_to_the_gpu():
    plan = plan_layers(32, weights_bytes=int(2.5 * GiB), kv_bytes=1 * GiB, free_vram=8 * GiB)
    assert plan.n_gpu_layers == -1 and plan.reason.startswith("all layers")


def test_a_model_too_big_is_offloaded_in_part():
    plan = plan_layers(32, weights_bytes=20 * GiB, kv_bytes=4 * GiB, free_vram=8 * GiB)
    per_layer = 20 * GiB / 33 + 4 * GiB / 32
    assert plan.n_gpu_layers == int((8 * GiB * 0.95 - COMPUTE_RESERVE) // per_layer)
    assert 0 < plan.n_gpu_layers < 32
    assert plan.reason.startswith(f"{plan.n_gpu_layers} of 32 layers")


def test_too_little_vram_and_no_gpu_mean_the_cpu():
    assert plan_layers(32, 20 * GiB, 0, free_vram=256 * 2**20).n_gpu_layers == 0
    assert plan_layers(32, 1 * GiB, 0, free_vram=None).n_gpu_layers == 0


def test_this_build_has_no_gpu_backend(tiny_qwen35_path):
    import llama_cpp

    plan = plan_for(str(tiny_qwen35_path), 4096, -1)
    if llama_cpp.llama_supports_gpu_offload():  # a GPU build: the real free VRAM decides
        assert plan.n_gpu_layers == -1 or plan.n_gpu_layers >= 0
    else:
        assert (plan.n_gpu_layers, plan.reason) == (0, "no GPU backend in this llama.cpp build")
    assert plan_for(str(tiny_qwen35_path), 4096, 7).n_gpu_layers == 7  # --gpu-layers wins
