"""Hot reload of user plugins: `PluginWatcher(host, on_change)` (also `qwen_tui.plugins.PluginWatcher`).

    watcher = PluginWatcher(host, on_change=lambda infos: ...).start()   # daemon thread
    ...
    watcher.stop()                                                       # prompt (stop_event)

An added or edited file is (re)loaded within about 0.1 s of the write (watchfiles events,
grouped for 30 ms, plus a full rescan every `rescan_s` in case an event is missed); a broken
edit keeps the previous version active and sets its `error`; a deleted file's plugin and tools
are removed. The folder's files are compared with what was last tried by content hash, so an
editor's save-by-rename or a same-second edit is seen, and a broken file isn't retried until it
changes again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from qwen_tui.plugins import PluginHost, PluginInfo

log = logging.getLogger("qwen_tui.plugins")

__all__ = ["PluginWatcher"]


class PluginWatcher:
    """Reload user plugins when their files change (watchfiles, in a daemon thread).

    Every filesystem event, and every `rescan_s` regardless, the folder's files are compared
    with what was last loaded (by content hash): added/edited files are (re)loaded, deleted
    ones unloaded; `on_change(infos)` is then called from the watcher thread.
    """

    def __init__(self, host: "PluginHost", on_change: Callable[[list["PluginInfo"]], Any] | None = None, *,
                 folder: Path | None = None, rescan_s: float = 0.5) -> None:
        self.host, self.on_change = host, on_change
        self.folder = Path(folder or host.user_dir)
        self.rescan_ms = max(int(rescan_s * 1000), 50)
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[Path, str] = {}
        for info in host.plugins:
            if info.source == "user" and info.path is not None and info.path.exists():
                self._seen[info.path] = hashlib.sha1(info.path.read_bytes()).hexdigest()

    def start(self) -> "PluginWatcher":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="qwen-tui plugin watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "PluginWatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rescan(self) -> list["PluginInfo"]:
        current = {}
        for path in self.host.plugin_files(self.folder):
            try:
                current[path] = hashlib.sha1(path.read_bytes()).hexdigest()
            except OSError:
                continue
        changed = [p for p, digest in current.items() if self._seen.get(p) != digest]
        changed += [p for p in self._seen if p not in current]
        infos = []
        for path in changed:
            try:
                info = self.host.reload_path(path, "user")
            except Exception:  # noqa: BLE001 - never let one file stop the watcher
                log.exception("plugin watcher: reloading %s failed", path)
                info = None
            if path in current:
                self._seen[path] = current[path]
            else:
                self._seen.pop(path, None)
            if info is not None:
                infos.append(info)
        if infos and self.on_change is not None:
            try:
                self.on_change(infos)
            except Exception:  # noqa: BLE001 - a bad callback must not stop the watcher
                log.exception("plugin on_change callback failed")
        return infos

    def _run(self) -> None:
        import watchfiles

        self.rescan()
        try:
            for _changes in watchfiles.watch(self.folder, stop_event=self.stop_event, debounce=200, step=30,
                                            rust_timeout=self.rescan_ms, yield_on_timeout=True, recursive=False):
                self.rescan()
        except Exception:  # noqa: BLE001 - e.g. the folder was removed: fall back to polling
            log.exception("plugin watcher: watchfiles failed, polling instead")
            while not self.stop_event.wait(self.rescan_ms / 1000):
                self.rescan()
