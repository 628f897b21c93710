"""How often the generation thread hands streamed text to the UI: adaptive, by measured cost.

Each hand-over costs the UI thread a re-layout and a repaint, and that cost grows with the
terminal size, the answer's shape (code blocks, lists) and the machine's speed. A fixed rate
either wastes CPU the model needs (on a 2-core laptop the UI competes with llama.cpp) or looks
choppy on a fast machine. So the pacer measures the UI thread's own CPU time per hand-over and
spaces them so the UI uses about TARGET of a core: never faster than `max_hz`, never slower
than `min_hz` (text must still visibly stream).
"""

from __future__ import annotations

import time

# Share of one core the UI thread may use while an answer streams. On a 2-core machine llama.cpp's
# decode threads use both cores, so every UI cycle is taken from the model: at 10% the demo model
# ran at 0.84x its headless speed in the app (benchmarks/tui_stream.py).
TARGET = 0.06
MIN_HZ = 4.0  # never fewer hand-overs a second than this: text must still visibly stream


class FlushPacer:
    def __init__(self, max_hz: float, min_hz: float = MIN_HZ, target: float = TARGET) -> None:
        self.min_interval = 1 / max_hz
        self.max_interval = 1 / min_hz
        self.target = target
        self.interval = self.min_interval  # read by the generation thread
        self._cost: float | None = None  # smoothed UI-thread CPU seconds per hand-over
        self._last_cpu: float | None = None

    def turn_started(self) -> None:
        self._last_cpu = None  # idle time between turns says nothing about streaming cost

    def handed_over(self) -> None:
        """Call on the UI thread as each batch arrives: the CPU used since the previous one
        (the previous batch's layout and repaint included) is what one hand-over costs."""
        now = time.thread_time()
        if self._last_cpu is not None:
            self.observe(now - self._last_cpu)
        self._last_cpu = now

    def observe(self, cost: float) -> None:
        self._cost = cost if self._cost is None else 0.7 * self._cost + 0.3 * cost
        wanted = self._cost / self.target
        self.interval = min(self.max_interval, max(self.min_interval, wanted))
