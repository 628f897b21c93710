"""Facts remembered about this machine across runs (cache/machine.json), keyed by CPU model.

Today: whether llama.cpp's extra (repacked/AMX) buffer types crashed batched decode here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from qwen_tui import paths


def _machine_file() -> Path:
    return paths.cache_dir() / "machine.json"


def cpu_model() -> str:
    """The CPU's model name (what machine-specific choices are remembered by)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def remembered_extra_bufts() -> bool:
    """False when extra buffer types crashed llama.cpp on this CPU before."""
    try:
        data = json.loads(_machine_file().read_text())
        return bool(data.get(cpu_model(), {}).get("use_extra_bufts", True))
    except (OSError, ValueError, AttributeError):
        return True


def remember_extra_bufts_crash(reason: str) -> None:
    path = _machine_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        data = {}
    data[cpu_model()] = {"use_extra_bufts": False, "reason": reason, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
