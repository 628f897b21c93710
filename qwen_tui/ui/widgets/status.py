"""The status line: model, state, speed, context use, engine settings."""

from __future__ import annotations

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

    def render(self) -> str:
        parts = [self.model, self.state]
        if self.speed:
            parts.append(self.speed)
        if self.context:
            parts.append(f"ctx {self.context}")
        parts.append("think on" if self.thinking else "think off")
        if self.settings:
            parts.append(self.settings)
        if self.settings_suffix:
            parts.append(self.settings_suffix)
        return " │ ".join(parts)

    def set_context(self, used: int, size: int) -> None:
        self.context = f"{human_tokens(used)} / {human_tokens(size)}"
