"""What the app knows about a loaded model (shown in the status line and `--json`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_tui.engine.resources import ThreadPlan


@dataclass
class ModelInfo:
    path: Path
    name: str
    architecture: str
    file_size: int
    quant: str
    n_params: int
    n_ctx: int
    n_ctx_train: int
    context_reason: str
    threads: ThreadPlan
    n_gpu_layers: int
    use_extra_bufts: bool
    chat_template: str | None
    bos_token: str = ""
    eos_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def short_settings(self) -> str:
        gpu = "GPU: all layers" if self.n_gpu_layers else "CPU"
        return f"{self.threads.n_threads}/{self.threads.n_threads_batch} threads, {gpu}"
