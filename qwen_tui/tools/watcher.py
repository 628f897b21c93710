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

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from qwen_tui.file_watch import FolderWatcher, content_hashes

if TYPE_CHECKING:  # pragma: no cover
    from qwen_tui.plugins import PluginHost, PluginInfo

log = logging.getLogger("qwen_tui.plugins")

__all__ = ["PluginWatcher"]


class PluginWatcher(FolderWatcher):
    """Reload user plugins when their files change (watchfiles, in a daemon thread).

    Every filesystem event, and every `rescan_s` regardless, the folder's files are compared
    with what was last loaded (by content hash): added/edited files are (re)loaded, deleted
    ones unloaded; `on_change(infos)` is then called from the watcher thread.
    """

    thread_name = "qwen-tui plugin watcher"

    def __init__(self, host: "PluginHost", on_change: Callable[[list["PluginInfo"]], Any] | None = None, *,
                 folder: Path | None = None, rescan_s: float = 0.5) -> None:
        self.host, self.on_change = host, on_change
        self.folder = Path(folder or host.user_dir)
        super().__init__([self.folder], rescan_s=rescan_s, debounce_ms=200)
        self._seen: dict[Path, str] = content_hashes(
            info.path for info in host.plugins if info.source == "user" and info.path is not None)

    def start(self) -> "PluginWatcher":
        self.folder.mkdir(parents=True, exist_ok=True)
        return super().start()

    def rescan(self) -> list["PluginInfo"]:
        current = content_hashes(self.host.plugin_files(self.folder))
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
