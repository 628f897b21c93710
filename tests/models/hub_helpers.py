"""Helpers for the models tests: a fake Hub serving the tiny qwen35 GGUF, and running the CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from qwen_tui.testing.fake_hub import FakeHub

REPO = "unsloth/Qwen3.5-0.8B-GGUF"
MODEL_FILE = "Qwen3.5-0.8B-Q4_K_M.gguf"
MMPROJ_FILE = "mmproj-F16.gguf"


def mmproj_bytes() -> bytes:
    """A header-only vision projector GGUF (clip, has_vision_encoder)."""
    import tempfile

    from qwen_tui.testing.tiny_mmproj import header_only_mmproj

    with tempfile.TemporaryDirectory() as tmp:
        return header_only_mmproj(Path(tmp) / MMPROJ_FILE).read_bytes()


MMPROJ_BYTES = mmproj_bytes()


def make_hub(tiny: Path) -> FakeHub:
    hub = FakeHub()
    hub.add(REPO, MODEL_FILE, tiny)
    hub.add(REPO, "Qwen3.5-0.8B-Q8_0.gguf", tiny.read_bytes()[:-7] + b"q8-copy")
    hub.add(REPO, MMPROJ_FILE, MMPROJ_BYTES)
    hub.add(REPO, "mmproj-BF16.gguf", MMPROJ_BYTES)
    hub.add(REPO, "README.md", b"# a model card\n")
    return hub


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_env(home: Path, hub: FakeHub | None = None, endpoint: str | None = None) -> dict:
    env = dict(os.environ)
    env["QWEN_TUI_HOME"] = str(home)
    env["HF_HOME"] = str(home / "hf")
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.pop("HF_TOKEN", None)
    env.pop("HF_HUB_OFFLINE", None)
    env["HF_ENDPOINT"] = endpoint or (hub.url if hub else "http://127.0.0.1:9")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(env: dict, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qwen_tui", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def start_cli(env: dict, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qwen_tui", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, **kw)


def model_path(home: Path) -> Path:
    return home / "data" / "models" / REPO / MODEL_FILE


def part_files(models_dir: Path) -> list[Path]:
    return sorted((models_dir / ".incomplete").glob("*.part"))
