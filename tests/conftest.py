"""Shared fixtures. Tests never touch the user's real config/data dirs, nor the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qwen_tui.testing import fixtures


@pytest.fixture(autouse=True, scope="session")
def isolated_home(tmp_path_factory) -> Path:
    """Point QWEN_TUI_HOME at a throw-away folder (subprocesses inherit it)."""
    home = tmp_path_factory.mktemp("qwen-tui-home")
    old = os.environ.get("QWEN_TUI_HOME")
    os.environ["QWEN_TUI_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("QWEN_TUI_HOME", None)
    else:
        os.environ["QWEN_TUI_HOME"] = old


def _fixture(getter):
    try:
        return getter()
    except fixtures.FixtureMissing as exc:  # a missing model is a setup error, never a silent skip
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def demo_model_path() -> Path:
    return _fixture(fixtures.demo_model)


@pytest.fixture(scope="session")
def tiny_qwen35_path() -> Path:
    return _fixture(fixtures.tiny_qwen35)


@pytest.fixture(scope="session")
def tiny_qwen35_nextn_path() -> Path:
    """The tiny qwen35 model with one NextN (MTP) block: random weights, real llama.cpp MTP graph."""
    return _fixture(lambda: fixtures.tiny_qwen35(nextn=True))


@pytest.fixture(scope="session")
def qwen35_template() -> str:
    return _fixture(fixtures.qwen35_template)
