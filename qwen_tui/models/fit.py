"""Hardware fit: what this machine has, which Qwen 3.5 size and quant suit it, and why.

The rule is the seed article's table (0.8B: 2 GB RAM, 2B: 4 GB, 4B: 6 GB VRAM, 9B: 8 GB VRAM),
then the quant: the best of Q8_0 ... Q3_K_M whose weights, plus the memory the chosen context
needs (KV cache for the full-attention layers, fixed state for the Gated DeltaNet layers,
computed by `engine.resources.memory_shape`) and the runtime's overhead, fit in the memory
the weights will live in (VRAM with a GPU, else RAM).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwen_tui.engine.resources import (
    COMPUTE_BYTES_PER_TOKEN,
    RAM_SHARE,
    RUNTIME_OVERHEAD,
    available_memory,
    memory_shape,
)
from qwen_tui.models.catalog import PRESETS, QUANTS, RECOMMENDED_QUANTS, Preset

GB = 1000**3
GiB = 1024**3
DEFAULT_FIT_CONTEXT = 32_768  # what `recommend` plans for unless told otherwise
VRAM_RESERVE = 512 * 1024**2  # the display, the CUDA context


@dataclass(frozen=True)
class Gpu:
    name: str
    vram_total: int
    vram_free: int | None = None


@dataclass(frozen=True)
class Hardware:
    ram_total: int
    ram_available: int
    cpus: int
    gpus: tuple[Gpu, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def gpu(self) -> Gpu | None:
        return max(self.gpus, key=lambda g: g.vram_total) if self.gpus else None

    def to_json(self) -> dict:
        data = asdict(self)
        data["gpus"] = [asdict(g) for g in self.gpus]
        return data


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _ram_total() -> int:
    total = _meminfo("MemTotal")
    if total:
        return total
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * GiB


def nvidia_gpus(nvidia_smi: str | None = None) -> tuple[tuple[Gpu, ...], str | None]:
    """GPUs from `nvidia-smi` (absent: none). Returns (gpus, a note when detection failed)."""
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return (), None
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (), f"nvidia-smi failed: {exc}"
    if out.returncode != 0:
        return (), f"nvidia-smi failed: {(out.stderr or out.stdout).strip().splitlines()[-1:] or out.returncode}"
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            gpus.append(Gpu(parts[0], int(float(parts[1])) * 1024**2, int(float(parts[2])) * 1024**2))
        except (IndexError, ValueError):
            continue
    return tuple(gpus), None


def detect() -> Hardware:
    from qwen_tui.engine.resources import usable_cpus

    gpus, note = nvidia_gpus()
    notes = (note,) if note else ()
    return Hardware(_ram_total(), available_memory(), usable_cpus(), gpus, notes)


def context_bytes(preset: Preset, n_ctx: int) -> tuple[int, int]:
    """(KV cache + compute buffers for n_ctx tokens, DeltaNet state) for a preset's shape."""
    shape = memory_shape(preset.header())
    return n_ctx * (shape.kv_bytes_per_token + COMPUTE_BYTES_PER_TOKEN), shape.recurrent_state_bytes


@dataclass
class Choice:
    preset: Preset
    quant: str
    weights: int
    context: int
    n_ctx: int
    state: int
    overhead: int
    memory: int  # what it has to fit in
    memory_kind: str

    @property
    def needed(self) -> int:
        return self.weights + self.context + self.state + self.overhead

    def to_json(self) -> dict:
        return {"name": self.preset.name, "label": self.preset.label, "repo": self.preset.repo, "quant": self.quant,
                "pull": self.pull_spec, "file": self.preset.filename(self.quant), "weights_bytes": self.weights,
                "context_tokens": self.n_ctx, "kv_bytes": self.context, "deltanet_state_bytes": self.state,
                "needed_bytes": self.needed, "memory_bytes": self.memory, "memory_kind": self.memory_kind}

    @property
    def pull_spec(self) -> str:
        return self.preset.name if self.quant == "Q4_K_M" else f"{self.preset.name}:{self.quant}"


@dataclass
class Recommendation:
    hardware: Hardware
    n_ctx: int
    choice: Choice | None
    reasons: list[str] = field(default_factory=list)
    alternatives: list[Choice] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"hardware": self.hardware.to_json(), "context_tokens": self.n_ctx,
                "recommended": self.choice.to_json() if self.choice else None, "why": self.reasons,
                "alternatives": [c.to_json() for c in self.alternatives]}


def _budget(hw: Hardware) -> tuple[int, str, str]:
    gpu = hw.gpu
    if gpu:
        return max(gpu.vram_total - VRAM_RESERVE, 0), "VRAM", f"{gpu.name} with {gpu.vram_total / GiB:.1f} GiB VRAM"
    return int(hw.ram_total * RAM_SHARE), "RAM", f"no GPU found; {hw.ram_total / GiB:.1f} GiB RAM (we plan with {RAM_SHARE:.0%} of it)"


def evaluate(preset: Preset, quant: str, n_ctx: int, hw: Hardware) -> Choice:
    memory, kind, _ = _budget(hw)
    context, state = context_bytes(preset, n_ctx)
    return Choice(preset, quant, preset.estimated_size(quant), context, n_ctx, state, RUNTIME_OVERHEAD, memory, kind)


def recommend(hw: Hardware | None = None, n_ctx: int = DEFAULT_FIT_CONTEXT) -> Recommendation:
    hw = hw or detect()
    memory, kind, where = _budget(hw)
    tier_memory = (hw.gpu.vram_total if hw.gpu else hw.ram_total) / GiB
    rec = Recommendation(hw, n_ctx, None, [where])
    tiers = [p for p in PRESETS if p.min_memory_gb <= tier_memory + 0.25]  # "8 GB" cards report ~7.8 GiB
    # Quality drops faster below 4 bits than with a smaller size: a 3-bit quant only when nothing else fits.
    for quants in (RECOMMENDED_QUANTS[:-1], RECOMMENDED_QUANTS[-1:]):
        for preset in reversed(tiers):
            rec.choice = next((c for q in quants if (c := evaluate(preset, q, n_ctx, hw)).needed <= memory), None)
            if rec.choice:
                break
        if rec.choice:
            break
    if rec.choice is None:
        smallest = evaluate(PRESETS[0], RECOMMENDED_QUANTS[-1], n_ctx, hw)
        rec.reasons.append(
            f"nothing fits: even {PRESETS[0].label} {RECOMMENDED_QUANTS[-1]} needs {smallest.needed / GiB:.1f} GiB "
            f"at {n_ctx:,} tokens of context, {memory / GiB:.1f} GiB is usable; try a smaller --ctx, "
            "or `qwen-tui --demo` (SmolLM2-135M)"
        )
        return rec
    c = rec.choice
    p = c.preset
    rec.reasons.append(f"the seed's table: {p.label} needs about {p.min_memory_gb:g} GB {p.memory_kind} ({p.target})")
    if kind == "RAM" and p.memory_kind == "VRAM":
        rec.reasons.append(f"CPU only: {p.label} fits in RAM but decodes several times slower than on a GPU; "
                           "a smaller size answers faster")
    rec.reasons.append(
        f"{c.quant}: weights {c.weights / GiB:.1f} GiB + {n_ctx:,}-token context {c.context / GiB:.2f} GiB "
        f"(KV cache of the {memory_shape(p.header()).n_attention_layers} full-attention layers) + DeltaNet state "
        f"{c.state / 1024**2:.0f} MiB + runtime {c.overhead / GiB:.2f} GiB = {c.needed / GiB:.1f} GiB "
        f"of {memory / GiB:.1f} GiB {kind}"
    )
    better = [q for q in RECOMMENDED_QUANTS if QUANTS[q] > QUANTS[c.quant]]
    if better:
        rec.reasons.append(f"{better[-1]} would not fit with this context")
    for quant in RECOMMENDED_QUANTS:
        if quant != c.quant and (alt := evaluate(p, quant, n_ctx, hw)).needed <= memory:
            rec.alternatives.append(alt)
    return rec


def max_context_for(header, hw: Hardware | None = None) -> int:
    """Largest context (tokens) a local GGUF fits with, in the memory its weights will use."""
    hw = hw or detect()
    memory, _, _ = _budget(hw)
    shape = memory_shape(header)
    left = memory - header.file_size - RUNTIME_OVERHEAD - shape.recurrent_state_bytes
    return max(left // (shape.kv_bytes_per_token + COMPUTE_BYTES_PER_TOKEN), 0)


def load_warning(path: str | Path, n_ctx: int | None = None, hw: Hardware | None = None, *,
                 gpu_only: bool = False) -> str | None:
    """A one-line warning when a GGUF will not fit this machine's GPU or RAM (None: it fits).

    `gpu_only`: RAM is the engine's own check (`plan_context` caps the context or refuses with
    a clear message), so before a load only the VRAM case needs saying.
    """
    from qwen_tui.engine.gguf_header import read_header

    try:
        header = read_header(path)
    except Exception:
        return None  # the engine reports broken files itself
    hw = hw or detect()
    memory, kind, _ = _budget(hw)
    if gpu_only and kind != "VRAM":
        return None
    shape = memory_shape(header)
    n_ctx = n_ctx or min(shape.trained_context, DEFAULT_FIT_CONTEXT)
    need = header.file_size + RUNTIME_OVERHEAD + shape.recurrent_state_bytes + n_ctx * (
        shape.kv_bytes_per_token + COMPUTE_BYTES_PER_TOKEN)
    if need <= memory:
        return None
    if kind == "VRAM" and need <= hw.ram_total * RAM_SHARE:
        return (f"{Path(path).name} needs about {need / GiB:.1f} GiB at {n_ctx:,} tokens, more than the GPU's "
                f"{memory / GiB:.1f} GiB: layers that don't fit run on the CPU (slower); try --gpu-layers or a smaller quant")
    return (f"{Path(path).name} needs about {need / GiB:.1f} GiB at {n_ctx:,} tokens but {memory / GiB:.1f} GiB "
            f"{kind} is usable: it may not load; try a smaller size or quant (qwen-tui models recommend)")
