"""qwen-tui: a terminal assistant for Qwen 3.5 GGUF models, running llama.cpp in-process."""

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "parse_reply", "tool"]


def __getattr__(name: str):
    """Lazy public API: `import qwen_tui` stays cheap until something is used."""
    if name == "parse_reply":
        from qwen_tui.agent.parser import parse_reply

        return parse_reply
    if name == "hookimpl":  # imports pluggy only now
        from qwen_tui.hookspecs import hookimpl

        return hookimpl
    if name == "tool":
        from qwen_tui.tools.tool import tool

        return tool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
