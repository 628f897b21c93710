"""The stream hand-over rate adapts to what a repaint costs on this machine."""

from __future__ import annotations

import time

from qwen_tui.ui.pacing import FlushPacer


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cheap_repaints_stream_at_the_full_rate_and_expensive_ones_are_spaced_out():
    pacer = FlushPacer(max_hz=10, min_hz=3, target=0.10)
    for _ in range(10):
        pacer.observe(0.004)  # 4 ms a repaint: 10 Hz costs 4% of a core
    assert pacer.interval == 0.1
    for _ in range(20):
        pacer.observe(0.02)  # 20 ms: 10 Hz would cost 20%; every 0.2 s costs 10%
    assert 0.19 < pacer.interval < 0.21
    for _ in range(20):
        pacer.observe(0.2)  # very slow machine: never slower than 3 Hz, text must still move
    assert abs(pacer.interval - 1 / 3) < 1e-9


def test_the_cost_is_the_ui_threads_own_cpu_time_between_hand_overs():
    pacer = FlushPacer(max_hz=15, min_hz=2, target=0.10)
    pacer.turn_started()
    pacer.handed_over()
    for _ in range(3):
        burn(0.03)
        time.sleep(0.05)  # waiting is not cost
        pacer.handed_over()
    assert 0.25 < pacer.interval <= 0.5
    pacer.turn_started()  # a pause between turns isn't counted
    time.sleep(0.1)
    pacer.handed_over()
    assert 0.25 < pacer.interval <= 0.5
