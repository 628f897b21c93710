"""How many layers to offload to the GPU: all when the model fits in free VRAM, else as many as fit.

llama.cpp's `n_gpu_layers = -1` offloads every layer and fails to load (or thrashes, with
unified memory) when the model does not fit. Runs in the worker: the free memory of each GPU
comes from ggml's device API (`ggml_backend_dev_memory`), which llama-cpp-python does not bind;
we bind the four C functions from the libggml next to libllama. A CPU-only build has no GPU
device: nothing is offloaded and nothing is asked.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

GPU_DEVICE_TYPES = (1, 2)  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU (0: CPU, 3: ACCEL)
COMPUTE_RESERVE = 512 * 1024 * 1024  # compute buffers and the driver's own share of VRAM
VRAM_SHARE = 0.95


@dataclass(frozen=True)
class OffloadPlan:
    n_gpu_layers: int  # -1: all (llama.cpp's value), else a count
    reason: str


def plan_layers(n_layers: int, weights_bytes: int, kv_bytes: int, free_vram: int | None) -> OffloadPlan:
    """All layers when weights + KV cache + compute buffers fit in free VRAM; else the layers that fit.

    Layers are taken as equal slices of the weights (plus one slice for the output layer);
    the KV cache goes with its layer (llama.cpp keeps it beside the layer's weights).
    """
    if free_vram is None:
        return OffloadPlan(0, "no GPU backend in this llama.cpp build")
    budget = int(free_vram * VRAM_SHARE) - COMPUTE_RESERVE
    if weights_bytes + kv_bytes <= budget:
        return OffloadPlan(-1, f"all layers: the model fits in {free_vram / 2**30:.1f} GiB of free VRAM")
    per_layer = weights_bytes / (n_layers + 1) + kv_bytes / max(n_layers, 1)
    n = max(0, min(n_layers, int(budget // per_layer))) if per_layer > 0 else 0
    return OffloadPlan(n, f"{n} of {n_layers} layers: the model needs {(weights_bytes + kv_bytes) / 2**30:.1f} GiB, "
                          f"{free_vram / 2**30:.1f} GiB of VRAM is free")


def free_vram() -> int | None:
    """Free bytes summed over the GPUs ggml sees, or None when there is none (CPU-only build)."""
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return None
    folder = Path(llama_cpp.__file__).parent / "lib"
    lib = None
    for name in ("libggml.so", "libggml.dylib", "ggml.dll"):
        if (folder / name).exists():
            lib = ctypes.CDLL(str(folder / name))
            break
    if lib is None:
        return None
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
    total_free, found = 0, False
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if dev and lib.ggml_backend_dev_type(dev) in GPU_DEVICE_TYPES:
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
            total_free += free.value
            found = True
    return total_free if found else None


def plan_for(path: str, n_ctx: int, requested: int) -> OffloadPlan:
    """The plan for a model file: `requested` (>= 0) as asked, -1 decided by free VRAM."""
    if requested >= 0:
        return OffloadPlan(requested, "as requested")
    from qwen_tui.engine.gguf_header import read_header
    from qwen_tui.engine.resources import memory_shape

    vram = free_vram()
    if vram is None:
        return OffloadPlan(0, "no GPU backend in this llama.cpp build")
    header = read_header(Path(path))
    shape = memory_shape(header)
    kv = shape.kv_bytes_per_token * n_ctx + shape.recurrent_state_bytes
    return plan_layers(shape.n_layers, header.file_size, kv, vram)
