"""The full-screen app. It wires widgets, the engine and the conversation; it does not think.

Threads: model loading and generation run in thread workers; they reach the UI only through
post_message. The generation thread batches streamed text into about FLUSH_HZ messages a
second, so the UI repaints a dozen times a second, not once per token, and leaves the CPU to
the model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer

from qwen_tui.settings import Settings, load_settings
from qwen_tui.conversation import Conversation
from qwen_tui.conversation import Message as ConversationMessage
from qwen_tui.engine.errors import EngineError
from qwen_tui.session_log import SessionLog
from qwen_tui.agent import events as ev
from qwen_tui.agent.loop import Agent
from qwen_tui.ui.approval_bridge import ApprovalMixin
from qwen_tui.ui.commands import CommandsMixin
from qwen_tui.ui.context_commands import ContextMixin, display_messages
from qwen_tui.ui.screens.dialogs import ErrorDialog
from qwen_tui.ui.image_input import ImageInputMixin
from qwen_tui.ui.screens.models import ModelsMixin
from qwen_tui.ui.history import mount_history
from qwen_tui.ui.gc_pause import StreamingCollector
from qwen_tui.ui.pacing import FlushPacer
from qwen_tui.ui.session_actions import SessionActionsMixin
from qwen_tui.ui.themes import ThemesMixin
from qwen_tui.ui.turn import FINISH_REASON, TurnView
from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.messages import AssistantMessage
from qwen_tui.ui.widgets.prompt import PromptInput
from qwen_tui.ui.widgets.status import StatusBar, human_bytes
from qwen_tui.ui.widgets.transcript import Transcript

# Repaints per second while streaming. Each one re-lays out the transcript (~15 ms at 120x40,
# profiled), so on small machines fewer of them leave the CPU to the model; 10-15 Hz still reads
# as smooth streaming.
FLUSH_HZ = 10 if (os.cpu_count() or 1) <= 4 else 15
# A backlog (a burst bigger than a slice) is put on screen one slice per this many seconds.
DRAIN_INTERVAL = 1 / 15

@dataclass
class LoadProgress(Message):
    fraction: float


@dataclass
class ModelReady(Message):
    info: object


@dataclass
class ModelFailed(Message):
    error: str


@dataclass
class EngineEvents(Message):
    """A batch of engine events: the generation thread posts about FLUSH_HZ of these a second."""

    events: list


class QwenApp(CommandsMixin, ContextMixin, ThemesMixin, ModelsMixin, ImageInputMixin, SessionActionsMixin,
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
        self.collector = StreamingCollector()  # ui/gc_pause.py
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

    def _start_turn(self, text: str) -> None:
        images = self.take_pending_images()
        self.conversation.add_user(text, images=images)
        messages = self.conversation.for_template()
        reply = self.conversation.add_assistant()
        self.session_log.user(text, images=images)
        self.session_log.start_answer()
        live = AssistantMessage()
        self.transcript.mount(live)
        self.turn = TurnView(self.transcript, reply, self.session_log, live, on_state=self._set_state)
        self._sent = len(messages)
        self.generating = True
        self.status.state = "thinking" if self.thinking else "answering"
        self.pacer.turn_started()
        self.collector.turn_started()
        self.generate(messages, self.thinking)

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

    def _set_state(self, state: str) -> None:
        self.status.state = state

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def generate(self, messages: list[dict], thinking: bool) -> None:
        # Batch on this side: one message per 1/FLUSH_HZ s, not one per token. The first token
        # after a pause goes out at once; a burst waits at most one interval.
        toolset = self.toolset
        try:  # compaction before overflow (context/compaction.py): may summarise with the model
            messages = self.prepare_context(thinking)
        except Exception as exc:  # noqa: BLE001 - ContextOverflow and friends end the turn, said plainly
            self.post_message(EngineEvents([ev.AgentFinished("error", list(messages), error=str(exc))]))
            return
        self._sent = len(messages)
        self.agent = Agent(self.engine, toolset.registry if toolset else None, toolset.policy if toolset else None,
                           toolset.host if toolset else None, context=toolset.context if toolset else None,
                           ask=self._ask_from_thread, max_steps=self.max_steps,
                           sampling_for_step=lambda step, reasoning_open: self.sampling_for(thinking),
                           constrain_tool_calls=self.constrain_tool_calls,
                           fit=self.compactor.fit_request if self.compactor is not None else None)
        batch: list = []
        last_post = 0.0
        prerender = markdown_stream.AnswerPrerender(self)  # the answer's finished blocks, drawn here
        try:
            for event in self.agent.run(messages, thinking=thinking, max_tokens=self.max_tokens):
                batch.append(event)
                if isinstance(event, ev.AnswerDelta):
                    prerender.answer(event.text)
                elif isinstance(event, ev.StepFinished):
                    prerender.step_finished()
                now = time.monotonic()
                if not isinstance(event, (ev.AnswerDelta, ev.ReasoningDelta)) or now - last_post >= self.pacer.interval:
                    self.post_message(EngineEvents(batch))
                    batch, last_post = [], now
        except Exception as exc:  # never lose the turn: report it like any other failure
            batch.append(ev.AgentFinished("error", list(messages), error=f"{type(exc).__name__}: {exc}"))
        if batch:
            self.post_message(EngineEvents(batch))

    async def on_engine_events(self, message: EngineEvents) -> None:
        # One slice of the turn's backlog per message (ui/turn.py); an empty batch is the app
        # asking itself for the next slice, DRAIN_INTERVAL later. Slices applied back to back
        # starved the screen's update timer, so a typed key waited for several slices before a
        # frame showed it; and a key's frame is cheap (the prompt alone) only while the
        # transcript is not changing, so the transcript changes at a bounded rate.
        self.collector.batch_arrived()
        if message.events:
            self.pacer.handed_over()
        else:
            self.turn.drain_posted = False
        finished = await self.turn.apply(message.events)
        if finished is not None:
            await self._finish_turn(finished)
        elif self.turn.pending and not self.turn.drain_posted:
            self.turn.drain_posted = True
            self.set_timer(DRAIN_INTERVAL, lambda: self.post_message(EngineEvents([])))

    async def _finish_turn(self, finished) -> None:
        turn = self.turn
        self.conversation.messages[-1:] = turn.conversation_tail(finished, self._sent) or [
            ConversationMessage("assistant", turn.reply.content, turn.reply.reasoning, FINISH_REASON[finished.reason])]
        step = turn.last_step
        if step is not None and not turn.blocks:
            self.session_log.finish_answer(step.finished.reason, step.finished.usage, step.finished.timings)
        self.generating = False  # only now: the answer is on screen and in the conversation
        self.collector.turn_finished()
        self.status.state = "idle"
        if step is not None:
            n = step.finished.usage.completion_tokens
            if n and step.finished.timings.decode_ms > 0:
                self.status.speed = f"{step.finished.timings.tokens_per_s(n):.1f} tok/s"
            if self.engine is not None and getattr(self.engine, "info", None):
                self.measure_context()  # exact count with the model's tokenizer (ui/context_commands.py)
                self.status.settings = self.engine.info.short_settings  # threads / drafts may have changed
        if finished.reason == "error":
            self.push_screen(ErrorDialog("The model stopped with an error", finished.error or "unknown error"),
                             self._after_turn_error)

    def _after_turn_error(self, choice: str | None) -> None:
        if choice != "retry":
            return
        # Drop the failed answer and its prompt, then ask again.
        failed = self.conversation.messages.pop()
        prompt = self.conversation.messages.pop() if self.conversation.messages else None
        if failed.role == "assistant" and prompt is not None and prompt.role == "user":
            self._start_turn(prompt.content)

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

    async def on_unmount(self) -> None:
        self.collector.turn_finished()  # quitting mid-answer: the process's objects are collectable again
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
