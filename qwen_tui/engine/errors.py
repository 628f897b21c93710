"""Errors the engine reports. Each carries a one-line message fit to show a user as is."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: something went wrong loading or running a model."""


class ModelFileError(EngineError):
    """The file is missing, not a GGUF, truncated or corrupt."""


class ModelLoadError(EngineError):
    """llama.cpp refused the model (e.g. an architecture this build does not know)."""


class InsufficientMemoryError(EngineError):
    """The requested context (plus the weights) does not fit in the memory available."""


class EngineCrashed(EngineError):
    """The inference process died (llama.cpp abort or segfault). The caller survives it."""

    def __init__(self, message: str, *, signal_name: str | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.signal_name = signal_name
        self.log_tail = log_tail
