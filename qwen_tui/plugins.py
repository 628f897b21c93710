"""Find, load, isolate and hot-reload plugins (the hooks are in `hookspecs.py`).

    host = PluginHost(plugin_paths=[...]); host.load_all()       # discover + load + check_pending()
    host.tools() / host.commands() / host.extra_system_prompts(SessionInfo(ws, model))
    host.approve_tool_call(call, tool) -> "allow" | "deny" | None;  host.tool_call_finished(call, result)
    watcher = PluginWatcher(host, on_change=lambda infos: ...); watcher.start(); ...; watcher.stop()

Sources, loaded in this order (a later plugin with an already-used name is refused):
``builtin`` (the repository's top-level ``plugins/*.py``), ``entry point`` (group
``qwen_tui``), ``user`` (``paths.config_dir()/plugins/*.py``), ``path`` (``--plugin PATH``).
Files whose name starts with ``_`` or ``.`` are skipped. Names listed in config.toml's
``[plugins] disabled = [...]`` are listed but not loaded.

Isolation: each file runs as its own module (unique name, no bytecode cache, so an edit is
always seen) in its own try/except, and each hook is called per plugin (never one pluggy call
over all), so a plugin whose import fails, whose hook raises or that implements an unknown
hook is reported in `PluginInfo.error` and disabled; the others carry on.

Where things are: finding and loading files in `plugin_files.py`; `PluginInfo`, `SessionInfo`,
`Command` and the `register` callables in `plugin_info.py` (all re-exported here).
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import threading
from pathlib import Path
from typing import Any, Iterable

import pluggy

from qwen_tui import hookspecs
from qwen_tui.plugin_files import (
    ENTRY_POINT_GROUP,
    builtin_plugins_dir,
    describe_error,
    disabled_from_config,
    load_module_from_file,
    plugin_files,
    user_plugins_dir,
)
from qwen_tui.plugin_info import (
    Command,
    PluginHookError,
    PluginInfo,
    SessionInfo,
    command_registrar,
    tool_registrar,
)
from qwen_tui.tools.tool import Tool

log = logging.getLogger(__name__)

HOOK_NAMES = tuple(n for n, f in vars(hookspecs).items() if hasattr(f, f"{hookspecs.PROJECT}_spec"))


class PluginHost:
    def __init__(
        self,
        *,
        plugin_paths: Iterable[str | Path] = (),
        disabled: Iterable[str] | None = None,
        builtin_dir: Path | None = None,
        user_dir: Path | None = None,
        entry_points: bool = True,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugin_paths = [Path(p) for p in plugin_paths]
        self.disabled = set(disabled_from_config() if disabled is None else disabled)
        self.builtin_dir = builtin_dir if builtin_dir is not None else builtin_plugins_dir()
        self.user_dir = user_dir if user_dir is not None else user_plugins_dir()
        self.use_entry_points = entry_points
        self.plugins: list[PluginInfo] = []
        self.generation = 0  # bumped on every change: registries rebuild when it moves
        self._lock = threading.RLock()

    @staticmethod
    def plugin_files(folder: Path) -> list[Path]:
        return plugin_files(folder)

    def load_all(self) -> list[PluginInfo]:
        for path in self.plugin_files(self.builtin_dir):
            self._load_file(path, "builtin")
        if self.use_entry_points:
            seen = set()
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                if (ep.name, ep.value) not in seen:  # a dist found twice on sys.path
                    seen.add((ep.name, ep.value))
                    self._load_entry_point(ep)
        for path in self.plugin_files(self.user_dir):
            self._load_file(path, "user")
        for given in self.plugin_paths:
            files = self.plugin_files(given) if given.is_dir() else [given.resolve()]
            for path in files:
                self._load_file(path, "path")
        self.check_pending()
        return list(self.plugins)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> PluginInfo:
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
        info = PluginInfo(ep.name, "entry point", origin=origin)
        if self._refuse(info):
            return info
        try:
            info.module = ep.load()
        except BaseException as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal
            return self._fail(info, f"cannot import {ep.value}: {describe_error(exc, None)}")
        self._activate(info)
        return info

    def _load_file(self, path: Path, source: str) -> PluginInfo:
        info = PluginInfo(path.stem, source, path=path, origin=str(path))
        if self._refuse(info):
            return info
        if not path.is_file():
            return self._fail(info, f"no such file: {path}")
        try:
            info.module = load_module_from_file(path, source)
        except BaseException as exc:  # noqa: BLE001
            return self._fail(info, f"cannot import {path.name}: {describe_error(exc, path)}")
        self._activate(info)
        return info

    def _refuse(self, info: PluginInfo) -> bool:
        """Add `info` to the list; True when it must not be loaded (disabled, name taken)."""
        with self._lock:
            taken = next((p for p in self.plugins if p.name == info.name), None)
            self.plugins.append(info)
            if info.name in self.disabled:
                info.disabled = True
                return True
            if taken is not None:
                info.error = f"a plugin named {info.name!r} is already loaded ({taken.source}: {taken.origin}); rename one or disable it"
                return True
        return False

    def _fail(self, info: PluginInfo, message: str) -> PluginInfo:
        message = "; ".join(line.strip() for line in message.splitlines() if line.strip())  # one line
        log.info("plugin %s disabled: %s", info.name, message)
        with self._lock:
            was_active = info.active
            info.error, info.active = message, False
            if info.module is not None and self.pm.is_registered(info.module):
                self.pm.unregister(info.module)
            self.generation += 1
        if was_active:
            self._unloading(info)
        return info

    def _unloading(self, info: PluginInfo) -> None:
        """Call the plugin's own `plugin_unloading` (it may already be unregistered)."""
        module = info.module
        if module is None or self.pm.parse_hookimpl_opts(module, "plugin_unloading") is None:
            return
        try:
            module.plugin_unloading()
        except BaseException as exc:  # noqa: BLE001 - a plugin's cleanup never stops ours
            log.warning("plugin %s: plugin_unloading raised %s", info.name, describe_error(exc, info.path))

    def close(self) -> None:
        """qwen-tui is exiting: every active plugin releases what it holds."""
        for info in self.active_plugins():
            self._unloading(info)

    def _unknown_hooks(self, module: Any) -> str | None:
        """A message naming the hook implementations that match no hook spec (typos), or None."""
        opts = {a: self.pm.parse_hookimpl_opts(module, a) for a in dir(module) if a not in HOOK_NAMES}
        unknown = [a for a, o in opts.items() if o is not None and not o.get("optionalhook")]
        return f"unknown hook {', '.join(unknown)} (hooks are: {', '.join(HOOK_NAMES)})" if unknown else None

    def _activate(self, info: PluginInfo) -> bool:
        """Register with pluggy and collect tools and commands; on any failure, disable."""
        try:
            unknown = self._unknown_hooks(info.module)
            if unknown:
                raise pluggy.PluginValidationError(info.module, unknown)
            with self._lock:
                self.pm.register(info.module, name=info.name)
            info.tools, info.commands, info.problems = [], [], []
            self._call(info, "register_tools", register=tool_registrar(info), raising=True)
            self._call(info, "register_commands", register=command_registrar(info), raising=True)
        except BaseException as exc:  # noqa: BLE001
            message = str(exc) if isinstance(exc, (pluggy.PluginValidationError, PluginHookError)) else describe_error(exc, info.path)
            self._fail(info, message)
            return False
        with self._lock:
            info.active = True
            self.generation += 1
        return True

    def check_pending(self) -> None:
        """Disable plugins with hooks that have no spec (typos), then let pluggy confirm."""
        for info in self.active_plugins():
            unknown = self._unknown_hooks(info.module)
            if unknown:
                self._fail(info, unknown)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:  # blame the plugin, never fail start-up
            culprit = next((p for p in self.active_plugins() if p.module is exc.plugin), None)
            if culprit is None:
                raise
            self._fail(culprit, str(exc))
            self.check_pending()

    def find(self, *, name: str | None = None, path: Path | None = None) -> PluginInfo | None:
        with self._lock:
            for info in self.plugins:
                if (name is not None and info.name == name) or (path is not None and info.path == path):
                    return info
        return None

    def reload_path(self, path: Path, source: str = "user") -> PluginInfo | None:
        """Load, reload or (file gone) unload the plugin file `path`. A broken edit keeps the
        previous version active and sets its `error`. Returns the plugin's info."""
        path = Path(path).resolve()
        old = self.find(path=path)
        if not path.exists():
            if old is None:
                return None
            with self._lock:
                if old.module is not None and self.pm.is_registered(old.module):
                    self.pm.unregister(old.module)
                self.plugins.remove(old)
                was_active = old.active
                old.active, old.removed, old.tools = False, True, []
                self.generation += 1
            if was_active:
                self._unloading(old)
            return old
        if old is None or not old.active:
            if old is not None:
                with self._lock:
                    self.plugins.remove(old)
            info = self._load_file(path, source)
            self.check_pending()
            return info
        try:
            module = load_module_from_file(path, source)
        except BaseException as exc:  # noqa: BLE001
            return self._keep_old(old, f"cannot import {path.name}: {describe_error(exc, path)}")
        new = PluginInfo(old.name, source, module=module, path=path, origin=str(path))
        with self._lock:
            self.pm.unregister(old.module)
            if not self._activate(new):
                sys.modules.pop(module.__name__, None)
                self.pm.register(old.module, name=old.name)
                return self._keep_old(old, new.error or "failed")
            self.plugins[self.plugins.index(old)] = new
            sys.modules.pop(getattr(old.module, "__name__", ""), None)
        self._unloading(old)
        return new

    def _keep_old(self, old: PluginInfo, message: str) -> PluginInfo:
        log.info("plugin %s: reload failed, previous version kept: %s", old.name, message)
        with self._lock:
            old.error = f"reload failed, previous version still active: {message}"
            self.generation += 1
        return old

    def active_plugins(self) -> list[PluginInfo]:
        with self._lock:
            return [p for p in self.plugins if p.active]

    def _call(self, info: PluginInfo, hook: str, *, raising: bool = False, **kwargs: Any) -> list[Any]:
        results = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin is not info.module or impl.hookwrapper or getattr(impl, "wrapper", False):
                continue
            try:
                results.append(impl.function(*[kwargs[arg] for arg in impl.argnames]))
            except BaseException as exc:  # noqa: BLE001
                message = f"hook {hook} raised {describe_error(exc, info.path)}"
                if raising:
                    raise PluginHookError(message) from exc
                self._fail(info, message)
        return results

    def tools(self) -> list[Tool]:
        return [t for info in self.active_plugins() for t in info.tools]

    def commands(self) -> list[Command]:
        return [c for info in self.active_plugins() for c in info.commands]

    def extra_system_prompts(self, session: SessionInfo) -> list[str]:
        found = []
        for info in self.active_plugins():
            found += [r for r in self._call(info, "extra_system_prompt", session=session) if isinstance(r, str) and r.strip()]
        return found

    def approve_tool_call(self, call: Any, tool: Tool) -> str | None:
        for info in reversed(self.active_plugins()):  # later plugins first, like pluggy
            for answer in self._call(info, "approve_tool_call", call=call, tool=tool):
                if answer in ("allow", "deny"):
                    return answer
        return None

    def tool_call_finished(self, call: Any, result: Any) -> None:
        for info in self.active_plugins():
            self._call(info, "tool_call_finished", call=call, result=result)

    def problems(self) -> list[str]:
        """Every error and problem, one line each, for the UI's status/log."""
        with self._lock:
            out = [f"plugin {p.name} ({p.source}): {p.error}" for p in self.plugins if p.error]
            out += [f"plugin {p.name}: {msg}" for p in self.plugins for msg in p.problems]
        return out


from qwen_tui.tools.watcher import PluginWatcher  # noqa: E402

__all__ = ["PluginHost", "PluginInfo", "PluginWatcher", "SessionInfo", "Command", "PluginHookError", "ENTRY_POINT_GROUP",
           "builtin_plugins_dir", "user_plugins_dir", "disabled_from_config", "load_module_from_file"]
