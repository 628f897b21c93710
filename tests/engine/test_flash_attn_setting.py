"""`[speed] flash_attn` reaches llama.cpp: the context llama.cpp creates logs the type it was given
(llama.log, written by the worker process), and a bad value is a one-line problem."""

from __future__ import annotations

import re

import pytest

from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import CPU_FLASH_ATTN, flash_attn_type
from qwen_tui.engine.speed_settings import flash_attn_setting

LLAMA_NAMES = {-1: "auto", 0: "disabled", 1: "enabled"}  # llama_flash_attn_type_name()


def _logged_type(log_path) -> str:
    found = re.findall(r"llama_context: flash_attn\s+= (\w+)", log_path.read_text(errors="replace"))
    assert found, "llama.cpp did not log its flash_attn setting"
    return found[-1]


def test_values_and_problems():
    assert flash_attn_setting({}) == (-1, [])
    assert flash_attn_setting({"flash_attn": "on"}) == (1, [])
    assert flash_attn_setting({"flash_attn": "off"}) == (0, [])
    for bad in ("sometimes", True, 1):
        value, problems = flash_attn_setting({"flash_attn": bad})
        assert value == -1 and len(problems) == 1 and "\n" not in problems[0]
        assert problems[0].startswith("[speed] flash_attn must be one of auto, on, off")
    # auto: llama.cpp's own choice when layers are on a GPU, the measured default on CPU
    assert flash_attn_type(-1, 99) == -1 and flash_attn_type(-1, 0) == CPU_FLASH_ATTN
    assert flash_attn_type(1, 0) == 1 and flash_attn_type(0, 99) == 0


@pytest.mark.parametrize("setting,expected", [("on", "enabled"), ("off", "disabled")])
def test_the_config_setting_reaches_llama_cpp(tiny_qwen35_path, tmp_path, monkeypatch, setting, expected):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(f'[speed]\nflash_attn = "{setting}"\n')
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    log = tmp_path / "llama.log"
    with LocalEngine(tiny_qwen35_path, n_ctx=1024, n_threads=1, n_threads_batch=1, log_path=log) as engine:
        info = engine.load()
        assert info.extra["flash_attn"] == setting and engine.problems == []
    assert _logged_type(log) == expected


def test_a_bad_config_value_is_one_problem_and_loads_with_auto(tiny_qwen35_path, tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[speed]\nflash_attn = "fast"\n')
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    log = tmp_path / "llama.log"
    with LocalEngine(tiny_qwen35_path, n_ctx=1024, n_threads=1, n_threads_batch=1, log_path=log) as engine:
        gpu_layers = engine.load().extra["gpu_layers"]
        assert engine.problems == ["[speed] flash_attn must be one of auto, on, off, not 'fast'; using auto"]
    # auto: on CPU only our measured default; with layers on a GPU llama.cpp's own auto
    assert _logged_type(log) == (LLAMA_NAMES[CPU_FLASH_ATTN] if gpu_layers == 0 else "auto")


def test_the_engine_argument_overrides_the_config(tiny_qwen35_path, tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[speed]\nflash_attn = "on"\n')
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    log = tmp_path / "llama.log"
    with LocalEngine(tiny_qwen35_path, n_ctx=1024, n_threads=1, n_threads_batch=1, log_path=log,
                     flash_attn="off") as engine:
        assert engine.load().extra["flash_attn"] == "off"
    assert _logged_type(log) == "disabled"
