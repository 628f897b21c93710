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
        gpu = "GPU: all layers" if self.n_gpu_layers < 0 else f"GPU: {self.n_gpu_layers} layers" if self.n_gpu_layers else "CPU"
        text = f"{self.threads.n_threads}/{self.threads.n_threads_batch} threads"
        text += " (CPU busy)" if self.threads.reason.startswith("busy") else ""
        text += f", {gpu}"
        return text + (f", {self.drafting}" if self.drafting else "")

    @property
    def drafting(self) -> str:
        """Draft-and-verify state: "" (off), "MTP", "MTP 62% accepted", "lookup ..." """
        kind = self.extra.get("speculative")
        if not kind:
            return ""
        name = "MTP" if kind == "mtp" else kind
        drafted = self.extra.get("draft_tokens", 0)
        return f"{name} {self.extra.get('draft_accepted', 0) / drafted:.0%} accepted" if drafted else name

    def note_generation(self, stats: dict) -> None:
        """Take a generation's Finished.extra: the thread counts chosen for it, draft acceptance."""
        if "n_threads" in stats:
            self.threads = ThreadPlan(stats["n_threads"], stats["n_threads_batch"], stats.get("threads_reason", ""))
        for key in ("draft_tokens", "draft_accepted"):
            if key in stats:
                self.extra[key] = stats[key]
