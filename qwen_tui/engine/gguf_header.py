"""Read a GGUF file's header (metadata and tensor table) without loading any weights.

We check files here, in the UI's process and in pure Python, before llama.cpp ever sees them:
a truncated or foreign file gets a one-line explanation instead of a crash in C. Large arrays
(the 248K-entry vocabulary) are skipped, not decoded; only their length is kept.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_tui.engine.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
_SMALL_ARRAY = 64  # arrays up to this many elements are decoded; longer ones are skipped

# GGUF metadata value types -> struct format (scalars only)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types -> (elements per block, bytes per block), for the truncation check
GGML_TYPE_SIZES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K", 11: "Q3_K",
    12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0",
    35: "TQ2_0", 39: "MXFP4",
}


@dataclass(frozen=True)
class LongArray:
    """A metadata array too long to be worth decoding (e.g. the vocabulary)."""

    element_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int | None:
        size = GGML_TYPE_SIZES.get(self.ggml_type)
        if size is None:
            return None
        per_block, block_bytes = size
        return self.n_elements // per_block * block_bytes


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    file_size: int = 0

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_key(self, name: str, default: Any = None) -> Any:
        """`{arch}.{name}`, e.g. arch_key("context_length")."""
        return self.metadata.get(f"{self.architecture}.{name}", default)

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def vocab_size(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, LongArray):
            return tokens.length
        if isinstance(tokens, list):
            return len(tokens)
        return 0

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def file_type_name(self) -> str:
        """The dominant quantisation of the 2-D weights, e.g. "Q4_K"."""
        counts: dict[int, int] = {}
        for t in self.tensors:
            if len(t.shape) >= 2:
                counts[t.ggml_type] = counts.get(t.ggml_type, 0) + t.n_elements
        if not counts:
            return "unknown"
        best = max(counts, key=counts.__getitem__)
        return GGML_TYPE_NAMES.get(best, f"type{best}")


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise ModelFileError(
                f"{self.path} is truncated: its header ends early at byte {len(self.buf):,} "
                "(an interrupted download?)"
            )

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        self.need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        self.need(n)
        self.pos += n

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.unpack("<I")
            count = self.unpack("<Q")
            if count <= _SMALL_ARRAY:
                return [self.value(etype) for _ in range(count)]
            self.skip_array(etype, count)
            return LongArray(etype, count)
        raise ModelFileError(f"{self.path} has an unknown GGUF metadata type {vtype}: the file is corrupt")

    def skip_array(self, etype: int, count: int) -> None:
        if etype in _SCALAR:
            n = struct.calcsize(_SCALAR[etype]) * count
            self.need(n)
            self.pos += n
        elif etype == _STRING:
            for _ in range(count):
                self.skip_string()
        else:
            for _ in range(count):
                self.value(etype)


def read_header(path: str | Path) -> GGUFHeader:
    """Parse and sanity-check a GGUF file; raise ModelFileError with a one-line reason."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a GGUF model file")
    size = path.stat().st_size
    if size < 24:
        raise ModelFileError(f"{path} is not a GGUF model file (only {size} bytes)")
    with path.open("rb") as f:
        magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ModelFileError(
                f"{path} is not a GGUF model file (it starts with {magic!r}, a GGUF starts with b'GGUF')"
            )
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf, path), path, size)


def _parse(cur: _Cursor, path: Path, size: int) -> GGUFHeader:
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ModelFileError(f"{path} is GGUF version {version}; llama.cpp reads versions 2 and 3")
    n_tensors = cur.unpack("<Q")
    n_kv = cur.unpack("<Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ModelFileError(f"{path} has an implausible header ({n_tensors} tensors, {n_kv} keys): corrupt file")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack("<I"))
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.unpack("<I")
        if n_dims > 8:
            raise ModelFileError(f"{path}: tensor {name!r} has {n_dims} dimensions: corrupt file")
        shape = tuple(cur.unpack("<Q") for _ in range(n_dims))
        tensors.append(TensorInfo(name, shape, cur.unpack("<I"), cur.unpack("<Q")))
    alignment = int(metadata.get("general.alignment", 32) or 32)
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    header = GGUFHeader(path, version, metadata, tensors, data_offset, size)
    end = data_offset + max((t.offset + (t.n_bytes or 0) for t in tensors), default=0)
    if end > size:
        raise ModelFileError(
            f"{path} is truncated: its tensors need {end:,} bytes but the file has {size:,} "
            f"({size / end:.0%} present; an interrupted download?)"
        )
    return header
