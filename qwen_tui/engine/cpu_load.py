"""What other processes use of the CPU, from /proc/stat minus this process's own time.

Steal time counts as used (on a VM it is another guest on our core). CpuLoad answers for the
window between two looks (waiting if asked to); RecentLoad for the last quarter to half
second, at once, from looks a background thread takes between generations. Off Linux
(no /proc) both answer None: no adapting.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

LOOK_PERIOD_S = 0.25  # the background look at /proc/stat between generations
MIN_WINDOW_S = 0.05  # a shorter window is mostly the 10 ms accounting tick's rounding: not used


def _process_seconds(pid: int | str, hz: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz  # utime, stime of all its threads


def _read_cpu_seconds(include_parent: bool = False) -> tuple[float, float] | None:
    """(busy seconds of all CPUs incl. steal, this process's CPU seconds), or None off Linux.

    With include_parent, the app that started this worker counts as ours too."""
    try:
        hz = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        busy = (user + nice + system + irq + softirq + steal) / hz
        mine = _process_seconds("self", hz)
        parent = os.getppid()
        if include_parent and parent > 1:
            try:
                mine += _process_seconds(parent, hz)
            except (OSError, ValueError, IndexError):
                pass  # it is gone: we are about to be stopped anyway
        return busy, mine
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _read_cpu_seconds_with_app() -> tuple[float, float] | None:
    """For the look before a generation: the app's own work just before it (rendering the message
    just sent, counting its tokens) is the request itself, over once we generate, not a program
    competing with us; counted as other, it made the first answer of a session decode with one
    thread instead of two (measured in the app, benchmarks/tui_stream.py). While we generate, the
    app's rendering of our stream still counts (CpuLoad)."""
    return _read_cpu_seconds(include_parent=True)


Look = tuple[float, tuple[float, float] | None]  # (clock, _read_cpu_seconds())


def _others_between(first: Look, second: Look) -> float | None:
    (t0, a), (t1, b) = first, second
    if a is None or b is None or t1 <= t0:
        return None
    return max(0.0, ((b[0] - a[0]) - (b[1] - a[1])) / (t1 - t0))


class CpuLoad:
    """Cores used by other processes between two looks (None where /proc is not available)."""

    def __init__(self, read: Callable[[], tuple[float, float] | None] = _read_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._read, self._clock, self._sleep = read, clock, sleep
        self._last: Look = (clock(), read())

    def mark(self) -> None:
        """Start a new window now."""
        self._last = (self._clock(), self._read())

    def others(self, min_window: float = 0.1) -> float | None:
        """Since the last look (waiting until `min_window` has passed); starts a new window."""
        first = self._last
        if first[1] is None:
            return None
        if self._clock() - first[0] < min_window:
            self._sleep(min_window - (self._clock() - first[0]))
        self._last = (self._clock(), self._read())
        return _others_between(first, self._last)


class RecentLoad:
    """Cores other processes used over the last 0.25 to 0.5 s, answered at once (no waiting).

    A daemon thread looks at /proc/stat every `period` seconds, except while we generate
    (`pause` .. `resume`: it sleeps until resumed, at most the one wake-up already due, so it
    does not compete with llama.cpp's spinning threads; what others use meanwhile is CpuLoad's
    job). `others()` compares now with the newest look at least `period` old, or
    with the oldest look when none is that old yet (just after loading), as long as that
    covers MIN_WINDOW_S; otherwise, or without /proc, it answers None.
    """

    def __init__(self, read: Callable[[], tuple[float, float] | None] = _read_cpu_seconds_with_app,
                 clock: Callable[[], float] = time.monotonic, period: float = LOOK_PERIOD_S,
                 thread: bool = True) -> None:
        self._read, self._clock, self.period = read, clock, period
        self._looks: deque[Look] = deque(maxlen=3)
        self._lock = threading.Lock()
        self._paused = False
        self._running = threading.Event()  # cleared while paused: the thread blocks on it
        self._running.set()
        self._stop = threading.Event()
        self._look()
        if thread:
            threading.Thread(target=self._run, name="qwen-tui-cpu-load", daemon=True).start()

    def _run(self) -> None:
        while self._running.wait() and not self._stop.wait(self.period):
            self.tick()

    def tick(self) -> None:
        """The background thread's periodic look (skipped while paused)."""
        if not self._paused:
            self._look()

    def _look(self) -> None:
        look = (self._clock(), self._read())
        with self._lock:
            self._looks.append(look)

    def others(self) -> float | None:
        now: Look = (self._clock(), self._read())
        with self._lock:
            looks = list(self._looks)
        old = [look for look in looks if now[0] - look[0] >= self.period]
        first = old[-1] if old else looks[0]
        if now[0] - first[0] < MIN_WINDOW_S:
            return None
        return _others_between(first, now)

    def pause(self) -> None:
        self._paused = True
        self._running.clear()

    def resume(self) -> None:
        self._paused = False
        self._look()
        self._running.set()

    def close(self) -> None:
        self._stop.set()
        self._running.set()
