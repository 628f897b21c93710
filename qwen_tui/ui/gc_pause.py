"""Python's cyclic garbage collector kept off the app's old objects while an answer streams.

A full collection walks every live object: the app's widgets, styles, render caches, the
transcript's history. In a fast stream that took 45-56 ms and came every ~0.4 s here (measured
with `gc.callbacks` while benchmarks/tui_stream.py ran), each time holding up a frame and any key
typed meanwhile. Textual pauses the collector during smooth scrolling (PAUSE_GC_ON_SCROLL) for
the same reason. Here it keeps running, but only over what is new: at the start of a turn, and
again as each slice of text is put on screen, everything alive is frozen (`gc.freeze`: moved out of the
collector's view, a constant-time list splice), so a collection looks only at objects made since
the last slice; at the end of the turn all of it is handed back, and garbage among it is
collected between turns. With freezing at the turn's start only, full collections still took
7-27 ms, growing with the answer's rendered blocks.
"""

from __future__ import annotations

import gc


class StreamingCollector:
    def __init__(self) -> None:
        self.frozen = False

    def turn_started(self) -> None:
        if not self.frozen:
            gc.freeze()
            self.frozen = True

    def batch_arrived(self) -> None:
        if self.frozen:
            gc.freeze()

    def turn_finished(self) -> None:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
