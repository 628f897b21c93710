"""The Qwen 3.5 presets (`qwen3.5:0.8b` ... `qwen3.5:9b`) and how a pull spec names a file.

The tiers are the seed article's: 0.8B (~1.0 GB, 2 GB RAM: phone/Pi/edge), 2B (~2.7 GB, 4 GB:
integrated graphics), 4B (~3.4 GB, 6 GB VRAM: laptop dGPU), 9B (~6.6 GB, 8 GB VRAM: the default),
all 262K context, vision in the base model, Unsloth GGUFs from 3-bit to 8-bit.

The shapes (layers, heads, DeltaNet state) are those of the published Qwen 3.5 configs, used
only to estimate memory before a file is downloaded; once a GGUF is local, its own header is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from qwen_tui.engine.gguf_header import GGUFHeader

GB = 1000**3

# Unsloth's quants from 3- to 8-bit, best first, with llama.cpp's average bits per weight
# (K-quants keep some tensors at higher precision, hence the non-integers).
QUANTS: dict[str, float] = {
    "Q8_0": 8.50,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.58,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.50,
}
DEFAULT_QUANT = "Q4_K_M"
RECOMMENDED_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M")


@dataclass(frozen=True)
class Preset:
    name: str  # "qwen3.5:4b"
    label: str  # "4B"
    repo: str  # Unsloth's GGUF repository on the Hub
    params: float  # text-model parameters (embeddings included), for size estimates
    approx_size_gb: float  # the seed's figure for the usual download
    min_memory_gb: float  # the seed's figure: what a machine needs to run it
    memory_kind: str  # "RAM" or "VRAM": where the seed expects the weights to live
    target: str  # the seed's words for the machine it suits
    mmproj: str  # the vision projector file in the same repo
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    linear_k_heads: int
    linear_v_heads: int
    linear_head_dim: int = 128
    full_attention_interval: int = 4
    context_length: int = 262_144

    def filename(self, quant: str) -> str:
        return f"{self.repo.split('/')[-1].removesuffix('-GGUF')}-{quant}.gguf"

    def estimated_size(self, quant: str) -> int:
        """Bytes of a `quant` GGUF of this size (params x bits per weight)."""
        return int(self.params * QUANTS.get(quant, 16.0) / 8)

    def header(self) -> GGUFHeader:
        """A header with this preset's shape, for `engine.resources.memory_shape` (no file behind it)."""
        arch = "qwen35"
        metadata = {
            "general.architecture": arch,
            f"{arch}.block_count": self.n_layers,
            f"{arch}.embedding_length": self.n_embd,
            f"{arch}.attention.head_count": self.n_head,
            f"{arch}.attention.head_count_kv": self.n_head_kv,
            f"{arch}.attention.key_length": self.head_dim,
            f"{arch}.attention.value_length": self.head_dim,
            f"{arch}.context_length": self.context_length,
            f"{arch}.full_attention_interval": self.full_attention_interval,
            f"{arch}.ssm.state_size": self.linear_head_dim,
            f"{arch}.ssm.group_count": self.linear_k_heads,
            f"{arch}.ssm.time_step_rank": self.linear_v_heads,
            f"{arch}.ssm.inner_size": self.linear_head_dim * self.linear_v_heads,
            f"{arch}.ssm.conv_kernel": 4,
        }
        return GGUFHeader(Path(self.filename(DEFAULT_QUANT)), 3, metadata)


PRESETS: tuple[Preset, ...] = (
    Preset("qwen3.5:0.8b", "0.8B", "unsloth/Qwen3.5-0.8B-GGUF", 0.85e9, 1.0, 2, "RAM",
           "phone, Raspberry Pi, edge", "mmproj-F16.gguf",
           n_layers=24, n_embd=1024, n_head=8, n_head_kv=2, head_dim=256, linear_k_heads=16, linear_v_heads=16),
    Preset("qwen3.5:2b", "2B", "unsloth/Qwen3.5-2B-GGUF", 2.1e9, 2.7, 4, "RAM",
           "integrated graphics", "mmproj-F16.gguf",
           n_layers=24, n_embd=2048, n_head=8, n_head_kv=2, head_dim=256, linear_k_heads=16, linear_v_heads=16),
    Preset("qwen3.5:4b", "4B", "unsloth/Qwen3.5-4B-GGUF", 4.5e9, 3.4, 6, "VRAM",
           "laptop with a discrete GPU", "mmproj-F16.gguf",
           n_layers=32, n_embd=2560, n_head=16, n_head_kv=4, head_dim=256, linear_k_heads=16, linear_v_heads=32),
    Preset("qwen3.5:9b", "9B", "unsloth/Qwen3.5-9B-GGUF", 9.4e9, 6.6, 8, "VRAM",
           "8 GB GPU: the new default", "mmproj-F16.gguf",
           n_layers=32, n_embd=4096, n_head=16, n_head_kv=4, head_dim=256, linear_k_heads=16, linear_v_heads=32),
)
PRESETS_BY_NAME = {p.name: p for p in PRESETS}


class SpecError(ValueError):
    """A pull spec that names nothing we can fetch."""


@dataclass(frozen=True)
class PullSpec:
    repo: str
    quant: str | None  # None: the repo's default (Q4_K_M if it has one)
    preset: Preset | None = None
    filename: str | None = None  # an exact file, when the spec named one

    @property
    def name(self) -> str:
        """The name the model gets in the local registry."""
        if self.preset and (self.quant or DEFAULT_QUANT) == DEFAULT_QUANT:
            return self.preset.name
        if self.preset:
            return f"{self.preset.name}-{self.quant.lower()}"
        return f"{self.repo}:{self.quant}" if self.quant else self.repo


_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_spec(spec: str) -> PullSpec:
    """`qwen3.5:4b`, `qwen3.5:4b:Q8_0`, `owner/repo`, `owner/repo:Q4_K_M`, `owner/repo/file.gguf`."""
    spec = spec.strip()
    lowered = spec.lower()
    for preset in PRESETS:
        if lowered == preset.name or lowered.startswith(preset.name + ":"):
            quant = spec[len(preset.name) + 1:].upper() or None
            return PullSpec(preset.repo, quant, preset)
    if spec.lower().startswith("qwen3.5:"):
        names = ", ".join(p.name for p in PRESETS)
        raise SpecError(f"unknown preset {spec!r}: the Qwen 3.5 presets are {names}")
    if spec.lower().endswith(".gguf") and spec.count("/") >= 2:
        owner, repo, filename = spec.split("/", 2)
        return PullSpec(f"{owner}/{repo}", None, _preset_for_repo(f"{owner}/{repo}"), filename)
    repo, _, quant = spec.partition(":")
    if not _REPO.match(repo):
        raise SpecError(
            f"{spec!r} is not a model to pull: give a preset ({PRESETS[0].name} ... {PRESETS[-1].name}) "
            "or a Hub repository as OWNER/REPO[:QUANT], e.g. unsloth/Qwen3.5-4B-GGUF:Q4_K_M"
        )
    return PullSpec(repo, quant.upper() or None, _preset_for_repo(repo))


def _preset_for_repo(repo: str) -> Preset | None:
    return next((p for p in PRESETS if p.repo.lower() == repo.lower()), None)


def quant_of_filename(filename: str) -> str | None:
    """`Qwen3.5-4B-Q4_K_M.gguf` -> `Q4_K_M`; `...-UD-Q4_K_XL.gguf` -> `UD-Q4_K_XL`."""
    stem = Path(filename).name.removesuffix(".gguf")
    match = re.search(r"[-.]((?:UD-)?(?:I?Q\d[\w]*|[BF]F?16|F32|MXFP4\w*))$", stem, re.IGNORECASE)
    return match.group(1).upper() if match else None


def is_mmproj(filename: str) -> bool:
    return Path(filename).name.lower().startswith("mmproj")
