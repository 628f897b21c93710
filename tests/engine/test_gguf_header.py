"""Reading GGUF headers, and the one-line errors for files llama.cpp must never see."""

from __future__ import annotations

import os
import struct

import pytest

from qwen_tui.engine.errors import ModelFileError
from qwen_tui.engine.gguf_header import read_header


def test_reads_the_tiny_qwen35_header(tiny_qwen35_path):
    header = read_header(tiny_qwen35_path)
    assert header.architecture == "qwen35"
    assert header.vocab_size == 248_320
    assert header.arch_key("context_length") == 262_144
    assert header.arch_key("full_attention_interval") == 4
    assert "<tool_call>" in header.chat_template
    assert header.file_type_name == "Q8_0"  # the tied 248K-token embedding dominates
    assert any(t.name == "blk.0.ssm_a" for t in header.tensors)


def test_reads_the_demo_header(demo_model_path):
    header = read_header(demo_model_path)
    assert header.architecture == "llama"
    assert header.vocab_size == 49_152
    assert header.file_type_name == "Q4_1"
    assert 130e6 < header.n_params < 140e6


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="model file not found"):
        read_header(tmp_path / "nope.gguf")


def test_directory(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        read_header(tmp_path)


def test_not_a_gguf(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("these are my notes, not a model\n" * 10)
    with pytest.raises(ModelFileError, match="is not a GGUF model file"):
        read_header(path)


@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.5, 0.999])
def test_truncated(tmp_path, demo_model_path, fraction):
    data = demo_model_path.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFileError, match="truncated"):
        read_header(path)


def test_corrupt_header(tmp_path):
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 2**40) + os.urandom(64))
    with pytest.raises(ModelFileError, match="corrupt"):
        read_header(path)


def test_wrong_version(tmp_path):
    path = tmp_path / "v9.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0) + bytes(64))
    with pytest.raises(ModelFileError, match="version 9"):
        read_header(path)
