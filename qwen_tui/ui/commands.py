"""Slash commands, plugin commands, the command palette's entries, help and export.

A mixin of QwenApp: these are the app's verbs as a user names them; app.py keeps the wiring.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import SystemCommand
from textual.screen import Screen

from qwen_tui.ui.screens.dialogs import HelpScreen
from qwen_tui.ui.widgets.prompt import PromptInput

SLASH_COMMANDS = [
    ("/new", "start a new conversation"),
    ("/clear", "clear the transcript (same as /new)"),
    ("/think [on|off]", "toggle Qwen 3.5 thinking for the next turns"),
    ("/export [md|json] [PATH]", "write this session to a file"),
    ("/sessions", "open, search, rename or delete saved sessions"),
    ("/copy [N]", "copy the last answer, or its Nth code block, to the clipboard (OSC 52)"),
    ("/model PATH|NAME", "load another GGUF model (the conversation stays)"),
    ("/models", "local models, the recommendation for this machine, pull (F3)"),
    ("/image PATH", "attach an image to the next message (or paste its path); /image clear drops"),
    ("/help", "show keys and commands"),
    ("/quit", "quit"),
]


class CommandsMixin:
    def _plugin_command(self, name: str, arg: str) -> bool:
        """Slash commands that plugins registered (register_commands hook)."""
        if self.toolset is None or self.toolset.host is None:
            return False
        for command in self.toolset.host.commands():
            if f"/{command.name}" == name:
                try:
                    shown = command.fn(arg)
                except Exception as exc:  # a plugin's bug is reported, not fatal
                    self.notify(f"/{command.name} failed: {type(exc).__name__}: {exc}", severity="error")
                    return True
                if shown:
                    self.notify(str(shown), timeout=15)
                return True
        return False

    def action_help(self) -> None:
        keys = []
        for binding in [*self.BINDINGS, *PromptInput.BINDINGS]:
            active = self.active_bindings.get(binding.key)
            keys.append((self.get_key_display(binding), binding.description, binding.id or ""))
            del active
        from qwen_tui.ui.context_commands import CONTEXT_COMMANDS

        self.push_screen(HelpScreen(keys, [*SLASH_COMMANDS[:-2], *CONTEXT_COMMANDS, *SLASH_COMMANDS[-2:]]))

    def run_slash_command(self, text: str) -> bool:
        """Handle a /command; return False if it is not one (then it is sent as a prompt)."""
        name, _, arg = text.strip().partition(" ")
        if name in ("/new", "/clear"):
            self.run_worker(self.action_new_chat(), exclusive=False)
        elif name == "/think":
            arg = arg.strip().lower()
            if arg in ("on", "off"):
                self.thinking = arg == "off"  # toggled back below
            self.action_toggle_thinking()
        elif name == "/copy":
            self.copy_code_block(arg.strip())
        elif name == "/model":
            self.switch_model(arg.strip())
        elif name == "/models":
            self.action_models()
        elif name == "/image":
            self.attach_image(arg.strip())
        elif name == "/sessions":
            self.action_sessions()
        elif name == "/export":
            self.export_session(*arg.split())
        elif name == "/help":
            self.action_help()
        elif name in ("/quit", "/exit"):
            self.exit()
        elif self.context_command(name, arg):  # /compact /undo /edit /regenerate /retry /pin
            pass
        else:
            return self._plugin_command(name, arg.strip())
        return True

    def copy_code_block(self, which: str = "") -> None:
        """`/copy` copies the last answer; `/copy N` its Nth fenced code block (1 = first)."""
        import re

        last = self.conversation.last_answer
        if last is None:
            self.notify("Nothing to copy yet")
            return
        if not which:
            self.action_copy_last()
            return
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", last.content, flags=re.S | re.M)
        if not which.isdigit() or not 1 <= int(which) <= len(blocks):
            self.notify(f"The last answer has {len(blocks)} code block(s): /copy 1..{len(blocks)}", severity="warning")
            return
        self.copy_to_clipboard(blocks[int(which) - 1])
        self.notify(f"Copied code block {which}")

    def switch_model(self, path: str) -> None:
        """`/model PATH`: load another model; the conversation carries over."""
        if not path:
            name = self.engine.info.name if self.engine is not None and self.engine.info else "none"
            self.notify(f"Current model: {name}. Use /model PATH to load another GGUF.")
            return
        if self.generating:
            self.notify("Stop the current answer first (Esc)", severity="warning")
            return
        if self.model_factory is None:
            self.notify("This app was started without a model factory", severity="error")
            return
        from qwen_tui.engine.errors import EngineError
        from qwen_tui.models.first_run import resolve_name

        try:
            path = resolve_name(path)  # a path, or a local model's name (qwen3.5:4b)
        except EngineError as exc:
            self.notify(str(exc), severity="warning")
            return
        old, self.engine = self.engine, None
        if old is not None:
            old.close()
        self.engine_factory = lambda: self.model_factory(path)
        self.load_model()

    def export_session(self, fmt: str = "md", path: str | None = None) -> None:
        log = self.session_log
        if log.store is None or log.session_id is None:
            self.notify("Nothing saved to export yet (or --no-save)", severity="warning")
            return
        import json

        from qwen_tui.store.export import export_json, export_markdown

        log.flush()
        record = log.store.load(log.session_id)
        fmt = "json" if fmt == "json" else "md"
        target = path or f"qwen-tui-{log.session_id}.{fmt}"
        text = json.dumps(export_json(record), indent=2, ensure_ascii=False) if fmt == "json" else export_markdown(record)
        try:
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.notify(f"Exported to {target}")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New chat", "Start a new conversation", self.action_new_chat)
        yield SystemCommand("Toggle thinking", "Qwen 3.5 reasoning on/off for the next turn", self.action_toggle_thinking)
        yield SystemCommand("Copy last answer", "Copy to the clipboard (OSC 52, works over SSH)", self.action_copy_last)
        yield SystemCommand("Stop answering", "Cancel the running generation", self.action_cancel)
        yield SystemCommand("Toggle last reasoning", "Expand or collapse the last reasoning block", self.action_toggle_reasoning)
        yield SystemCommand("Sessions", "Open, search, rename or delete saved sessions", self.action_sessions)
        yield SystemCommand("Models", "Local models, what fits this machine, pull from the Hub", self.action_models)
        yield SystemCommand("Export session (Markdown)", "Write this session to a .md file", self.export_session)
        yield SystemCommand("Compact the context", "Summarise older turns now (/compact)", lambda: self.context_command("/compact", ""))
        yield SystemCommand("Undo last exchange", "Remove your last message and its answer (/undo)", lambda: self.context_command("/undo", ""))
        yield SystemCommand("Edit last message", "Put it back in the prompt; sending replaces it (/edit)", self.edit_last)
        yield SystemCommand("Regenerate answer", "Drop the last answer and ask again (/regenerate)", lambda: self.context_command("/regenerate", ""))
        yield SystemCommand("Help", "Keys and slash commands", self.action_help)
