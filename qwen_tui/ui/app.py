"""The full-screen app. It wires widgets, the engine and the conversation; it does not think.

Threads: model loading and generation run in thread workers; they reach the UI only through
post_message. The generation thread batches streamed text into about FLUSH_HZ messages a
second, so the UI repaints a dozen times a second, not once per token, and leaves the CPU to
the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer

from qwen_tui.settings import Settings, load_settings
from qwen_tui.conversation import Conversation
from qwen_tui.engine.errors import EngineError
from qwen_tui.session_log import SessionLog
from qwen_tui.agent.loop import Agent
from qwen_tui.ui.approval_bridge import ApprovalMixin
from qwen_tui.ui.commands import CommandsMixin
from qwen_tui.ui.context_commands import ContextMixin, display_messages
from qwen_tui.ui.screens.dialogs import ErrorDialog
from qwen_tui.ui.image_input import ImageInputMixin
from qwen_tui.ui.screens.models import ModelsMixin
from qwen_tui.ui.history import mount_history
from qwen_tui.ui.gc_pause import TICK_S, QuietCollector
from qwen_tui.ui.pacing import FlushPacer
from qwen_tui.ui.session_actions import SessionActionsMixin
from qwen_tui.ui.themes import ThemesMixin
from qwen_tui.ui.turn import TurnView
from qwen_tui.ui.turn_runner import FLUSH_HZ, TurnRunnerMixin
from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.messages import AssistantMessage
from qwen_tui.ui.widgets.prompt import PromptInput
from qwen_tui.ui.widgets.status import StatusBar, human_bytes
from qwen_tui.ui.widgets.transcript import Transcript

@dataclass
class LoadProgress(Message):
    fraction: float


@dataclass
class ModelReady(Message):
    info: object


@dataclass
class ModelFailed(Message):
    error: str


class QwenApp(TurnRunnerMixin, CommandsMixin, ContextMixin, ThemesMixin, ModelsMixin, ImageInputMixin, SessionActionsMixin,
              ApprovalMixin, App):
    CSS_PATH = "app.tcss"
    TITLE = "qwen-tui"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("escape", "cancel", "Stop", id="chat.cancel"),
        Binding("ctrl+t", "toggle_thinking", "Think on/off", id="chat.toggle_thinking"),
        Binding("ctrl+n", "new_chat", "New chat", id="chat.new"),
        Binding("ctrl+o", "sessions", "Sessions", id="app.sessions"),
        Binding("f3", "models", "Models", id="app.models", show=False),  # in F1 help and the palette
        # priority: the prompt's text area would otherwise take Ctrl+Y as "redo".
        Binding("ctrl+y", "copy_last", "Copy answer", id="chat.copy_last", priority=True),
        Binding("ctrl+r", "toggle_reasoning", "Reasoning", id="chat.toggle_reasoning", show=False),
        Binding("f1", "help", "Help", id="app.help"),
    ]

    def __init__(self, engine_factory: Callable[[], object], *, thinking: bool = True, system_prompt: str | None = None,
                 max_tokens: int = 4096, sampling_for: Callable[[bool], object] | None = None,
                 session_log: SessionLog | None = None, history: list | None = None, toolset=None,
                 max_steps: int = 8, model_factory: Callable[[str], object] | None = None,
                 constrain_tool_calls: bool = False, settings: Settings | None = None) -> None:
        super().__init__()
        self.session_log = session_log or SessionLog(None, workspace=".", model="")
        self._history = history or []
        self.engine_factory = engine_factory
        self.model_factory = model_factory  # path -> engine, for /model
        self.constrain_tool_calls = constrain_tool_calls
        self.engine = None
        self.thinking = thinking
        self.max_tokens = max_tokens
        self.sampling_for = sampling_for or (lambda thinking: None)
        self.conversation = Conversation(system_prompt=system_prompt)
        self.generating = False
        self.waiting: str | None = None  # a prompt sent while the model was still loading
        self.toolset = toolset
        self.max_steps = max_steps
        self.agent: Agent | None = None
        self.turn: TurnView | None = None
        self._sent = 0
        self._pending_ask = None
        self.pacer = FlushPacer(max_hz=FLUSH_HZ)
        self.collector = QuietCollector(busy=lambda: self.generating)  # ui/gc_pause.py
        # Config: defaults < config.toml < QWEN_TUI_* < flags (launch.py passes the merged settings).
        self.settings = settings or load_settings()
        self.config_problems = list(self.settings.problems)
        if self.settings.keymap:
            from qwen_tui.ui.keymap import keymap_problems

            self.set_keymap(self.settings.keymap)
            self.config_problems += keymap_problems(self.settings.keymap, type(self))
        self.config_problems += self.setup_themes(self.settings.value("ui", "theme"))
        self.config_problems += self.context_setup()  # [context] (ui/context_commands.py)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Transcript(id="transcript")
        yield PromptInput(id="prompt")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def transcript(self) -> Transcript:
        return self.query_one("#transcript", Transcript)

    @property
    def status(self) -> StatusBar:
        # Messages from worker threads (model ready, context measured) can arrive while the app
        # is closing and its widgets are gone: they then update a detached bar, never crash.
        found = self.query(StatusBar)
        return found.first() if found else StatusBar()

    def on_mount(self) -> None:
        self.transcript.anchor()
        self.status.thinking = self.thinking
        self.query_one(PromptInput).focus()
        toolset_problems = self.toolset.problems if self.toolset else []
        if self.toolset is not None and self.toolset.policy.yolo:
            self.status.settings_suffix = "YOLO: tools run without asking"
        for problem in [*self.config_problems, self.session_log.problem, *toolset_problems]:
            if problem:
                self.notify(problem, severity="warning", timeout=10)
        self.session_log.start_autoflush()
        self._start_plugin_watcher()
        if self.settings.value("ui", "watch_themes"):
            self.start_theme_watcher()
        if self._history:
            self.run_worker(self.show_history(self._history), group="history")
        self.run_worker(lambda: markdown_stream.warm_up(self), thread=True, group="warm-up", exit_on_error=False)
        self.set_interval(TICK_S, self.collector.tick)
        self.load_model()

    # -- model loading -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="engine")
    def load_model(self) -> None:
        self.post_message(LoadProgress(0.0))
        try:
            engine = self.engine_factory()
            info = engine.load(progress=lambda f: self.post_message(LoadProgress(f)))
        except EngineError as exc:
            self.post_message(ModelFailed(str(exc)))
            return
        except Exception as exc:  # anything else is still reported, never fatal
            self.post_message(ModelFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.engine = engine
        self.post_message(ModelReady(info))

    def on_load_progress(self, message: LoadProgress) -> None:
        self.status.state = f"loading {message.fraction:.0%}"

    def on_model_ready(self, message: ModelReady) -> None:
        info = message.info
        self.status.model = f"{info.name} ({human_bytes(info.file_size)})" if info.file_size else info.name  # 0: a server
        self.status.settings = info.short_settings
        self.status.set_context(0, info.n_ctx)
        if self.conversation.messages:
            self.measure_context()  # a resumed session: its exact size (ui/context_commands.py)
        self.status.state = "idle"
        if self.waiting is not None:
            text, self.waiting = self.waiting, None
            self._start_turn(text)

    def on_model_failed(self, message: ModelFailed) -> None:
        self.status.state = "load failed"
        self.push_screen(ErrorDialog("The model could not be loaded", message.error), self._after_load_dialog)

    def _after_load_dialog(self, choice: str | None) -> None:
        if choice == "retry":
            self.load_model()

    # -- sending -----------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    def on_prompt_submitted(self, message: PromptInput.Submitted) -> None:
        text = message.text
        if text.startswith("/") and self.run_slash_command(text):
            return
        text = self.collect_images(text)  # pasted image paths become attachments (ui/image_input.py)
        if self.editing and not self.generating:  # /edit put the last message back: replace it
            self.run_worker(self.send_edited(text), exclusive=False)
            return
        if self.generating:
            self.notify("Still answering: press Esc to stop it first.", severity="warning")
            self.query_one(PromptInput).load_text(text)
            return
        if self.engine is None:
            self.waiting = text
            self.mount_user_message(text)  # with a chip per attached image
            self.notify("The model is still loading; your message will be sent when it is ready.")
            return
        self.mount_user_message(text)  # with a chip per attached image
        self._start_turn(text)

    def _start_plugin_watcher(self) -> None:
        """Hot reload: an edited plugin in the user plugins folder is live within a second."""
        self._watcher = None
        if self.toolset is None or self.toolset.host is None:
            return
        from qwen_tui.plugins import PluginWatcher

        def changed(infos) -> None:  # in the watcher thread
            for info in infos:
                text = f"plugin {info.name}: {info.error}" if info.error else f"plugin {info.name} reloaded"
                self.call_from_thread(self.notify, text, severity="error" if info.error else "information")

        try:
            self._watcher = PluginWatcher(self.toolset.host, on_change=changed).start()
        except Exception as exc:  # no hot reload is a nuisance, never a reason not to start
            self.notify(f"plugin hot reload is off: {exc}", severity="warning")

    async def show_history(self, messages: list) -> None:
        """Put earlier messages (a resumed session) into the conversation and on screen."""
        self.conversation.messages[:0] = messages
        await mount_history(self.transcript, display_messages(Conversation(messages=list(messages))))

    # -- actions -----------------------------------------------------------------------------

    def action_cancel(self) -> None:
        if self.generating and self.agent is not None:
            self.agent.cancel()
            if self._pending_ask is not None:  # a dialog waits for an answer: the call won't run
                self.pop_screen()
                self._pending_ask(("deny", "cancelled"))
            self.status.state = "stopping"

    def action_transcript_page(self, direction: str) -> None:
        if direction == "up":
            self.transcript.scroll_page_up(animate=False)
        else:
            self.transcript.scroll_page_down(animate=False)

    def action_toggle_thinking(self) -> None:
        self.thinking = not self.thinking
        self.status.thinking = self.thinking
        self.notify(f"Thinking {'on' if self.thinking else 'off'} for the next turn")

    def action_copy_last(self) -> None:
        last = self.conversation.last_answer
        if last is None:
            self.notify("Nothing to copy yet")
            return
        self.copy_to_clipboard(last.content)  # OSC 52: works over SSH and inside tmux
        self.notify("Copied the last answer")

    def action_toggle_reasoning(self) -> None:
        blocks = [m.reasoning for m in self.transcript.query(AssistantMessage) if m.reasoning is not None]
        if blocks:
            blocks[-1].action_toggle()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown, events.MouseScrollUp, events.MouseScrollDown)):
            self.collector.activity()  # in use: the collector stays off old objects (ui/gc_pause.py)
        await super().on_event(event)

    async def on_unmount(self) -> None:
        self.collector.release()  # quitting: the process's objects are collectable again
        if getattr(self, "_watcher", None) is not None:
            self._watcher.stop()
        if self.toolset is not None and self.toolset.host is not None:
            self.toolset.host.close()  # plugins release their servers and threads
        self.stop_theme_watcher()
        if self.agent is not None:
            self.agent.cancel()
        if self._pending_ask is not None:  # the generation thread waits on a dialog: release it
            self._pending_ask(("deny", "the app is closing"))
        self.session_log.close()
        if self.engine is not None:
            self.engine.cancel()
            self.engine.close()
