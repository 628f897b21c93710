"""Where qwen-tui keeps its files (platformdirs), overridable for tests and portable installs.

`QWEN_TUI_HOME` puts config, data, cache and logs under one folder: tests use it so that
they never touch a user's real directories.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "qwen-tui"


def _home() -> Path | None:
    home = os.environ.get("QWEN_TUI_HOME")
    return Path(home) if home else None


def _dir(kind: str) -> Path:
    home = _home()
    if home is not None:
        path = home / kind
    else:
        getter = {
            "config": platformdirs.user_config_dir,
            "data": platformdirs.user_data_dir,
            "cache": platformdirs.user_cache_dir,
            "logs": platformdirs.user_log_dir,
        }[kind]
        path = Path(getter(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _dir("config")


def data_dir() -> Path:
    return _dir("data")


def cache_dir() -> Path:
    return _dir("cache")


def log_dir() -> Path:
    return _dir("logs")
