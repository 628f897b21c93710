"""Where theme files are: shipped ones (source checkout or installed wheel) and the user's own."""

from __future__ import annotations

import site
import sys
import sysconfig
from pathlib import Path

from qwen_tui import paths

# The wheel installs top-level themes/*.toml here (pyproject: [tool.setuptools.data-files]).
DATA_SUBDIR = Path("share") / "qwen-tui" / "themes"


def shipped_themes_dir() -> Path | None:
    """`themes/` next to the package in a source checkout (and `pip install -e .`), else the
    installed copy under `<prefix>/share/qwen-tui/themes`; None if neither exists."""
    checkout = Path(__file__).resolve().parents[2] / "themes"
    candidates = [checkout, Path(sysconfig.get_path("data")) / DATA_SUBDIR, Path(sys.prefix) / DATA_SUBDIR]
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        candidates.append(Path(user_base) / DATA_SUBDIR)
    return next((c for c in candidates if c.is_dir() and any(c.glob("*.toml"))), None)


def user_themes_dir() -> Path:
    return paths.config_dir() / "themes"
