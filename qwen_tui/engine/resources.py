"""Decide context length and thread counts for this machine before llama.cpp allocates anything.

llama-cpp-python's defaults (n_ctx 512, n_threads = cpu_count // 2) fit neither a 262K-context
Qwen 3.5 nor a 2-core box where the UI shares the CPU: llama.cpp's worker threads spin, so a
second thread that has to fight the UI (or anything else) for a core slows decoding several
times over instead of speeding it up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qwen_tui.engine.errors import InsufficientMemoryError
from qwen_tui.engine.gguf_header import GGUFHeader

MiB = 1024 * 1024
GiB = 1024 * MiB
KV_BYTES_PER_ELEMENT = 2  # llama.cpp's default KV cache type is F16
RUNTIME_OVERHEAD = 384 * MiB  # fixed compute buffers, output logits, the Python worker itself
COMPUTE_BYTES_PER_TOKEN = 1024  # compute buffers grow with n_ctx too (257 MiB at 262K, measured)
RAM_SHARE = 0.8  # leave the rest for the UI, the OS and the page cache
MIN_CONTEXT = 512


@dataclass(frozen=True)
class MemoryShape:
    """The parts of a model's memory that depend on context length, from its GGUF header."""

    n_layers: int
    n_attention_layers: int
    n_recurrent_layers: int
    kv_bytes_per_token: int
    recurrent_state_bytes: int  # per sequence, independent of context length
    trained_context: int


def memory_shape(header: GGUFHeader) -> MemoryShape:
    n_layers = int(header.arch_key("block_count", 0) or 0)
    n_embd = int(header.arch_key("embedding_length", 0) or 0)
    n_head = _first(header.arch_key("attention.head_count", 1)) or 1
    n_head_kv = _first(header.arch_key("attention.head_count_kv", n_head)) or n_head
    key_len = int(header.arch_key("attention.key_length", n_embd // n_head) or 0)
    value_len = int(header.arch_key("attention.value_length", n_embd // n_head) or 0)
    trained = int(header.arch_key("context_length", 4096) or 4096)

    n_recurrent = 0
    state_bytes = 0
    d_state = header.arch_key("ssm.state_size")
    if d_state:  # hybrid or recurrent (Qwen 3.5's Gated DeltaNet layers)
        interval = int(header.arch_key("full_attention_interval", 4) or 4)
        n_recurrent = sum(1 for i in range(n_layers) if (i + 1) % interval != 0)
        d_state = int(d_state)
        n_group = int(header.arch_key("ssm.group_count", 1) or 1)
        n_v_heads = int(header.arch_key("ssm.time_step_rank", 1) or 1)
        d_inner = int(header.arch_key("ssm.inner_size", d_state * n_v_heads) or 0)
        d_conv = int(header.arch_key("ssm.conv_kernel", 4) or 4)
        conv_dim = 2 * d_state * n_group + d_inner
        per_layer = ((d_conv - 1) * conv_dim + d_state * d_state * n_v_heads) * 4  # F32 state
        state_bytes = n_recurrent * per_layer
    n_attention = n_layers - n_recurrent
    kv_per_token = n_attention * n_head_kv * (key_len + value_len) * KV_BYTES_PER_ELEMENT
    return MemoryShape(n_layers, n_attention, n_recurrent, kv_per_token, state_bytes, trained)


def _first(value: object) -> int:
    """head_count_kv may be a per-layer array; take the largest (a safe over-estimate)."""
    if isinstance(value, list):
        return int(max(value)) if value else 0
    return int(value or 0)


def available_memory() -> int:
    """Bytes of RAM available to us now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * GiB


@dataclass(frozen=True)
class ContextPlan:
    n_ctx: int
    kv_bytes: int
    state_bytes: int
    weights_bytes: int
    reason: str


def plan_context(header: GGUFHeader, requested: int | None = None, *, available: int | None = None) -> ContextPlan:
    """Pick n_ctx: the trained length, capped by what RAM allows. A request that can't fit is an error."""
    shape = memory_shape(header)
    weights = header.file_size
    available = available_memory() if available is None else available
    budget = int(available * RAM_SHARE) - weights - RUNTIME_OVERHEAD - shape.recurrent_state_bytes
    per_token = shape.kv_bytes_per_token + COMPUTE_BYTES_PER_TOKEN
    fits = max(budget // per_token, 0)

    def plan(n_ctx: int, why: str) -> ContextPlan:
        return ContextPlan(n_ctx, n_ctx * shape.kv_bytes_per_token, shape.recurrent_state_bytes, weights, why)

    if requested:
        if requested > fits:
            need = weights + RUNTIME_OVERHEAD + shape.recurrent_state_bytes + requested * per_token
            raise InsufficientMemoryError(
                f"not enough memory for a {requested:,}-token context: it needs about {need / GiB:.1f} GiB "
                f"(weights {weights / GiB:.1f} GiB + KV cache {requested * per_token / GiB:.1f} GiB), "
                f"{available / GiB:.1f} GiB is available; try --ctx {max(min(fits, shape.trained_context) // 256 * 256, MIN_CONTEXT)} or less"
            )
        return plan(requested, f"{requested:,} tokens as requested")
    if fits >= shape.trained_context:
        return plan(shape.trained_context, f"the model's trained context ({shape.trained_context:,} tokens)")
    if fits < MIN_CONTEXT:
        raise InsufficientMemoryError(
            f"not enough memory to run {header.path.name}: weights {weights / GiB:.1f} GiB, "
            f"{available / GiB:.1f} GiB available"
        )
    n_ctx = fits // 256 * 256
    return plan(
        n_ctx,
        f"{n_ctx:,} of {shape.trained_context:,} trained tokens: limited by RAM "
        f"({available / GiB:.1f} GiB available, KV cache {n_ctx * per_token / GiB:.2f} GiB)",
    )


@dataclass(frozen=True)
class ThreadPlan:
    n_threads: int
    n_threads_batch: int
    reason: str


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores(logical: int) -> int:
    """Logical CPUs divided by SMT siblings (hyper-threads share a core's arithmetic units)."""
    siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    try:
        text = siblings.read_text().strip()
        per_core = sum(
            (int(b) - int(a) + 1) if "-" in part else 1
            for part in text.split(",")
            for a, _, b in [part.partition("-")]
        )
        return max(1, logical // max(per_core, 1))
    except (OSError, ValueError):
        return logical


def plan_threads(n_threads: int | None = None, n_threads_batch: int | None = None, *, gpu: bool = False) -> ThreadPlan:
    """Leave one core to the UI on small machines; never count hyper-threads as cores."""
    logical = usable_cpus()
    cores = physical_cores(logical)
    if gpu:
        auto, why = min(cores, 4), "GPU does the math; a few threads feed it"
    elif cores <= 4:
        auto = max(1, cores - 1)
        why = f"{cores} core(s): one left for the UI, since llama.cpp threads spin and slow down when they must share"
    else:
        auto = cores - 1
        why = f"{cores} physical cores, one left for the UI"
    return ThreadPlan(n_threads or auto, n_threads_batch or n_threads or auto, why if not n_threads else "as requested")
