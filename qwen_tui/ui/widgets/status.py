"""The status line: model, state, speed, context use, engine settings."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static


def human_tokens(n: int) -> str:
    if n >= 1000:
        return f"{n / 1000:.1f}K".replace(".0K", "K")
    return str(n)


def human_bytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


class StatusBar(Static):
    model = reactive("no model")
    state = reactive("idle")
    speed = reactive("")
    context = reactive("")
    settings = reactive("")
    thinking = reactive(True)
    settings_suffix = reactive("")

    context_level = reactive("ok")  # "ok", "near" (close to compaction) or "full" (compacting at the next turn)

    def render(self) -> Content:
        parts: list = [self.model, self.state]
        if self.speed:
            parts.append(self.speed)
        if self.context:
            style = {"near": "$warning", "full": "$error"}.get(self.context_level)
            parts.append((f"ctx {self.context}", style) if style else f"ctx {self.context}")
        parts.append("think on" if self.thinking else "think off")
        if self.settings:
            parts.append(self.settings)
        if self.settings_suffix:
            parts.append(self.settings_suffix)
        joined: list = []
        for part in parts:
            joined += [" │ ", part] if joined else [part]
        return Content.assemble(*joined)  # plain text: a "[" in a model name is not markup

    def set_context(self, used: int, size: int, level: str = "ok", estimated: bool = False) -> None:
        """The context meter: exact tokens the next request sends / the model's window (n_ctx).
        `estimated`: the engine can only guess counts (a server without a tokenize endpoint): "~" says so."""
        self.context = f"{'~' if estimated and used else ''}{human_tokens(used)} / {human_tokens(size)}"
        self.context_level = level
