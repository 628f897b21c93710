"""Python's cyclic garbage collector kept off the app's long-lived objects while someone uses it,
and run in full when they pause.

A full collection walks every live object: widgets, styles, Textual's strip caches, the render
cache, a long session's history. Measured here with `gc.callbacks`: 45-56 ms every ~0.4 s while
an answer streamed fast, and, paging up through 1,000 messages, full collections that grew to
450 ms as rendered blocks piled up, each one a frozen screen under a key press. Textual pauses
the collector during smooth scrolling (PAUSE_GC_ON_SCROLL) for the same reason.

So while the app is in use (an answer streaming, or a key, click or scroll in the last
IDLE_COLLECT_S seconds) everything alive is frozen every TICK_S (`gc.freeze`: moved out of the
collector's view, a constant-time list splice) and a collection only looks at what was made
since. Once the app has been left alone for IDLE_COLLECT_S it is all handed back and collected
once, so garbage among it (blocks scrolled out of the window, finished turns) is not kept.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

TICK_S = 0.25
IDLE_COLLECT_S = 5.0


class QuietCollector:
    def __init__(self, busy: Callable[[], bool], clock: Callable[[], float] = time.monotonic,
                 idle_collect_s: float = IDLE_COLLECT_S) -> None:
        self.busy = busy  # an answer is streaming
        self.clock = clock
        self.idle_collect_s = idle_collect_s
        self.last_activity = clock()
        self.frozen = False  # objects were frozen since the last full collection
        self.collections = 0  # full collections run at idle (tests read it)

    def activity(self) -> None:
        """A key, click or scroll: the app is in use."""
        self.last_activity = self.clock()

    def settle(self) -> None:
        """Work happened that people are waiting on (a slice of an answer): freeze at once."""
        gc.freeze()
        self.frozen = True

    def tick(self) -> None:
        """Called every TICK_S: freeze while in use; collect in full once left alone."""
        if self.busy() or self.clock() - self.last_activity < self.idle_collect_s:
            self.settle()
        elif self.frozen:
            self.release()
            gc.collect()
            self.collections += 1

    def release(self) -> None:
        """Hand everything back to the collector (at idle, and when the app quits)."""
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
