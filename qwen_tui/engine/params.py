"""Parameters that cross from the app to the inference process (plain, picklable dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoadParams:
    path: str
    n_ctx: int
    n_threads: int
    n_threads_batch: int
    n_gpu_layers: int = 0
    use_extra_bufts: bool = True
    n_batch: int = 512
    flash_attn: int = -1  # llama.cpp's "auto"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_k: int = 20
    top_p: float = 0.8
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    seed: int = 0xFFFFFFFF  # llama.cpp's "random"
    grammar: str | None = None  # GBNF; forces the output (tests use it for exact replies)
