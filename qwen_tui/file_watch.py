"""A daemon thread that watches folders and rescans them (plugins, themes).

Events come from watchfiles, grouped for `debounce_ms`; every `rescan_s` the folders are also
rescanned regardless, in case an event was missed, and if watchfiles fails (a folder removed)
the thread falls back to polling. What changed is decided by the subclass's `rescan()`, usually
by comparing content hashes (`content_hashes`), so an editor's save-by-rename is seen and a
touch that changes nothing is not.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def content_hashes(paths: Iterable[Path]) -> dict[Path, str]:
    """{path: sha1 of its bytes} for the paths that can be read."""
    out = {}
    for path in paths:
        try:
            out[path] = hashlib.sha1(path.read_bytes()).hexdigest()
        except OSError:
            continue
    return out


class FolderWatcher:
    """Subclasses implement `rescan()`; `start()` runs it on every change, `stop()` ends it."""

    thread_name = "qwen-tui watcher"

    def __init__(self, folders: list[Path], *, rescan_s: float = 0.5, debounce_ms: int = 150) -> None:
        self.folders = list(folders)
        self.rescan_ms = max(int(rescan_s * 1000), 50)
        self.debounce_ms = debounce_ms
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def rescan(self) -> list:
        raise NotImplementedError

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        if not self.folders:
            return
        import watchfiles

        self.rescan()
        try:
            for _changes in watchfiles.watch(*self.folders, stop_event=self.stop_event, debounce=self.debounce_ms,
                                            step=30, rust_timeout=self.rescan_ms, yield_on_timeout=True,
                                            recursive=False):
                self.rescan()
        except Exception:  # noqa: BLE001 - e.g. a folder was removed: poll instead
            log.exception("%s: watchfiles failed, polling instead", self.thread_name)
            while not self.stop_event.wait(self.rescan_ms / 1000):
                self.rescan()
