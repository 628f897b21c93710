"""qwen-tui: a terminal assistant for Qwen 3.5 GGUF models, running llama.cpp in-process."""

__version__ = "0.1.0"
