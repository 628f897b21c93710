"""The context window in the app: the meter, compaction (automatic and /compact), and the
commands that rewrite the end of the conversation: /undo, /edit, /regenerate (/retry), /pin.

A mixin of QwenApp. Definitions a user can rely on:

- `/undo` removes the last exchange: your last message and everything answered to it (tool calls
  included), from the screen, the conversation the model sees, and the saved session.
- `/edit` puts your last message back in the prompt; sending it replaces that message and drops
  its answer (until you send, nothing changes).
- `/regenerate` (or `/retry`) drops the last answer and asks again with the same message.
- `/compact` compacts now; `/compact show` shows what the compactions in effect replaced;
  `/compact undo` brings back what the latest compaction replaced.
- `/pin` keeps your last message verbatim through every compaction (`/pin off` undoes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.message import Message

from qwen_tui.context.budget import Budget, ContextSettings
from qwen_tui.context.compaction import CompactionReport, Compactor, ContextOverflow
from qwen_tui.context import persist
from qwen_tui.conversation import Conversation
from qwen_tui.conversation import Message as ConversationMessage

CONTEXT_COMMANDS = [
    ("/compact [show|undo]", "compact the conversation now; show or undo the latest compaction"),
    ("/undo", "remove your last message and its answer"),
    ("/edit", "edit your last message (sending it replaces the message and its answer)"),
    ("/regenerate, /retry", "drop the last answer and ask again"),
    ("/pin [off]", "keep your last message verbatim through compactions"),
]


@dataclass
class ContextCompacted(Message):
    report: CompactionReport
    problem: str | None = None


@dataclass
class ContextMeasured(Message):
    used: int
    budget: Budget


@dataclass
class ContextFailed(Message):
    error: str


@dataclass
class ContextProgress(Message):
    text: str


def display_messages(conversation: Conversation) -> list[ConversationMessage]:
    """What the user has seen: summaries opened up, elided texts in full."""
    out: list[ConversationMessage] = []
    for m in conversation.messages:
        if m.kind == "summary":
            out.extend(display_messages(Conversation(messages=list(m.replaced))))
        elif m.original is not None:
            out.append(ConversationMessage(m.role, m.original, m.reasoning, m.finish_reason, tool_calls=m.tool_calls))
        else:
            out.append(m)
    return out


class ContextMixin:
    editing: bool = False  # the prompt holds the last message, put back by /edit
    _compacting: bool = False  # /compact is running (it counts as generating: one engine user at a time)
    _compactor: Compactor | None = None

    # -- set-up --------------------------------------------------------------------------------

    def context_setup(self) -> list[str]:
        """Read `[context]`; returns problems to show."""
        self.context_settings, problems = ContextSettings.from_config()
        return problems

    @property
    def compactor(self) -> Compactor | None:
        engine = getattr(self, "engine", None)
        if engine is None or getattr(engine, "info", None) is None or not hasattr(engine, "tokenize"):
            return None
        if self._compactor is None or self._compactor.engine is not engine:
            settings = getattr(self, "context_settings", None) or ContextSettings()
            self._compactor = Compactor(engine, settings)
        return self._compactor

    def _tool_schemas(self) -> list[dict] | None:
        toolset = getattr(self, "toolset", None)
        if toolset is None or toolset.registry is None:
            return None
        return toolset.registry.openai_schemas() or None

    # -- in the generation thread ----------------------------------------------------------------

    def prepare_context(self, thinking: bool | None) -> list[dict]:
        """Before a turn (generation thread): compact if the conversation is past the threshold,
        and return the messages to send. Raises ContextOverflow."""
        compactor = self.compactor
        if compactor is not None:
            log = self.session_log
            if log.store is not None and log.session_id is not None:
                try:
                    log.flush()
                    persist.assign_store_ids(log.store, log.session_id, self.conversation)
                except Exception:  # noqa: BLE001 - the store is best effort; the turn goes on
                    pass
            try:
                report = compactor.ensure_fits(self.conversation, tools=self._tool_schemas(), thinking=thinking,
                                               max_tokens=self.max_tokens, progress=self._compaction_progress)
            except ContextOverflow:
                raise
            except Exception as exc:  # noqa: BLE001 - counting failed (a server without tokenize...): go on
                self.post_message(ContextFailed(f"{type(exc).__name__}: {exc}"))
                report = None
            if report is not None and report.changed:
                problem = persist.save_compaction(log, self.conversation, report.number)
                self.post_message(ContextCompacted(report, problem))
        return self.conversation.for_template()

    def _compaction_progress(self, text: str) -> None:  # in the generation thread
        self.post_message(ContextProgress(text))

    def on_context_progress(self, message: ContextProgress) -> None:
        self.status.state = f"compacting: {message.text}"

    def _measure(self) -> None:
        compactor = self.compactor
        if compactor is None:
            return
        try:
            used = compactor.measure(self.conversation.for_template(), tools=self._tool_schemas(),
                                     thinking=getattr(self, "thinking", None))
        except Exception:  # noqa: BLE001 - a meter must never take the app down
            return
        self.post_message(ContextMeasured(used, compactor.budget(self.max_tokens)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="context")
    def measure_context(self) -> None:
        """Update the meter with the exact count of what the next request will send."""
        self._measure()

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def compact_now(self) -> None:
        compactor = self.compactor
        if compactor is None:
            self.post_message(ContextFailed("this engine cannot count tokens"))
            return
        try:
            log = self.session_log
            if log.store is not None and log.session_id is not None:
                log.flush()
                persist.assign_store_ids(log.store, log.session_id, self.conversation)
            report = compactor.ensure_fits(self.conversation, tools=self._tool_schemas(), thinking=self.thinking,
                                           max_tokens=self.max_tokens, force=True, progress=self._compaction_progress)
        except ContextOverflow as exc:
            self.post_message(ContextFailed(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            self.post_message(ContextFailed(f"{type(exc).__name__}: {exc}"))
            return
        problem = persist.save_compaction(self.session_log, self.conversation, report.number) if report.changed else None
        self.post_message(ContextCompacted(report, problem))
        self._measure()

    # -- messages --------------------------------------------------------------------------------

    async def on_context_compacted(self, message: ContextCompacted) -> None:
        from qwen_tui.ui.widgets.messages import NoticeMessage

        report = message.report
        self._end_compacting()
        if not self.generating:
            self.status.state = "idle"
        elif self.status.state.startswith("compacting"):
            self.status.state = "thinking" if self.thinking else "answering"
        if not report.changed:
            self.notify("Nothing to compact yet: the recent turns are kept as they are.")
            return
        text = report.describe() + ". /compact show shows it, /compact undo undoes it."
        if report.summary_error:
            text += f" (The model could not summarise: {report.summary_error}; a plain list stands in.)"
        await self._add_notice(NoticeMessage(text))
        if message.problem:
            self.notify(message.problem, severity="warning")
        if self.compactor is not None:
            budget = self.compactor.budget(self.max_tokens)
            self.status.set_context(report.tokens_after, budget.n_ctx, budget.level(report.tokens_after),
                                    estimated=self._counts_estimated())

    def on_context_measured(self, message: ContextMeasured) -> None:
        self.status.set_context(message.used, message.budget.n_ctx, message.budget.level(message.used),
                                estimated=self._counts_estimated())

    def _counts_estimated(self) -> bool:
        """The engine guesses token counts (RemoteEngine without a tokenize endpoint)."""
        return getattr(getattr(self, "engine", None), "token_counts", None) == "estimated"

    def _end_compacting(self) -> None:
        if self._compacting:
            self._compacting = self.generating = False

    def on_context_failed(self, message: ContextFailed) -> None:
        self._end_compacting()
        if not self.generating:
            self.status.state = "idle"
        self.notify(f"Compaction failed: {message.error}", severity="error", timeout=10)

    async def _add_notice(self, widget) -> None:
        transcript = self.transcript
        if self.generating and self.turn is not None and self.turn.live is not None:
            await transcript.mount(widget, before=self.turn.live)  # above the answer being written
        else:
            await transcript.mount(widget)

    # -- commands --------------------------------------------------------------------------------

    def _refuse_while_busy(self) -> bool:
        if self.generating:
            self.notify("Stop the current answer first (Esc)", severity="warning")
            return True
        if self.engine is None:
            self.notify("The model is still loading", severity="warning")
            return True
        return False

    def context_command(self, name: str, arg: str) -> bool:
        """The context slash commands; False if `name` is not one of them."""
        if name == "/compact":
            arg = arg.strip().lower()
            if arg == "show":
                self.run_worker(self.show_compactions(), exclusive=False)
            elif arg == "undo":
                self.run_worker(self.undo_compaction(), exclusive=False)
            elif arg:
                self.notify("Usage: /compact, /compact show, /compact undo", severity="warning")
            elif not self._refuse_while_busy():
                self.status.state = "compacting"
                self._compacting = self.generating = True
                self.compact_now()
        elif name == "/undo":
            self.run_worker(self.undo_exchange(), exclusive=False)
        elif name == "/edit":
            self.edit_last()
        elif name in ("/regenerate", "/retry"):
            self.run_worker(self.regenerate(), exclusive=False)
        elif name == "/pin":
            self.pin_last(arg.strip().lower() != "off")
        else:
            return False
        return True

    async def show_compactions(self) -> None:
        from qwen_tui.ui.widgets.messages import NoticeMessage

        numbers = self.conversation.compaction_numbers()
        if not numbers:
            self.notify("No compaction is in effect.")
            return
        count = self.compactor.counter if self.compactor else None
        lines = []
        for number in numbers:
            for m in self.conversation.compacted(number):
                if m.kind == "summary":
                    lines.append(f"Summary of {len(m.replaced)} messages (undo restores them):\n{m.content}")
                elif m.original is not None:
                    now = f"{count.count_text(m.content):,} tokens" if count else f"{len(m.content):,} characters"
                    was = f"{count.count_text(m.original):,} tokens" if count else f"{len(m.original):,} characters"
                    lines.append(f"A {m.role} message cut from {was} to {now}.")
        await self._add_notice(NoticeMessage("\n\n".join(lines)))

    async def undo_compaction(self) -> None:
        if self.generating:
            self.notify("Stop the current answer first (Esc)", severity="warning")
            return
        changed = self.conversation.undo_compaction()
        if not changed:
            self.notify("No compaction to undo.")
            return
        problem = persist.undo_saved_compaction(self.session_log, changed)
        self.notify("The latest compaction was undone: the model sees those messages in full again."
                    + (f" ({problem})" if problem else ""))
        self.measure_context()

    async def _drop_last_exchange(self) -> ConversationMessage | None:
        dropped = self.conversation.drop_last_exchange()
        if not dropped:
            self.notify("There is no message to take back.")
            return None
        problem = persist.drop_saved_exchange(self.session_log, self.conversation, dropped[0])
        if problem:
            self.notify(problem, severity="warning")
        await self.redraw_transcript()
        return dropped[0]

    async def redraw_transcript(self) -> None:
        from qwen_tui.ui.history import mount_history

        await self.transcript.remove_children()
        await mount_history(self.transcript, display_messages(self.conversation))

    async def undo_exchange(self) -> None:
        if self.generating:
            self.notify("Stop the current answer first (Esc)", severity="warning")
            return
        first = await self._drop_last_exchange()
        if first is not None:
            self.notify("Removed your last message and its answer.")
            self.measure_context()

    def edit_last(self) -> None:
        from qwen_tui.ui.widgets.prompt import PromptInput

        if self.generating:
            self.notify("Stop the current answer first (Esc)", severity="warning")
            return
        i = self.conversation.last_user_index()
        if i is None:
            self.notify("There is no message to edit.")
            return
        m = self.conversation.messages[i]
        prompt = self.query_one(PromptInput)
        prompt.load_text(m.original if m.original is not None else m.content)
        prompt.focus()
        self.editing = True
        self.notify("Editing your last message: Enter replaces it and its answer.")

    async def send_edited(self, text: str) -> None:
        """The prompt put back by /edit was sent: replace the last exchange with it."""
        self.editing = False
        first = await self._drop_last_exchange() if self.conversation.last_user_index() is not None else None
        await self._resend(text, first)

    async def _resend(self, text: str, first: ConversationMessage | None) -> None:
        """Start a turn with `text`, keeping the images `first` (the dropped message) carried."""
        from qwen_tui.ui.widgets.messages import UserMessage

        pending = getattr(self, "_pending", None)
        if first is not None and first.images and pending is not None:
            pending().extend(p for p in first.images if p not in pending())
        mount = getattr(self, "mount_user_message", None)
        if mount is not None:
            mount(text)  # with a chip per attached image
        else:
            await self.transcript.mount(UserMessage(text))
        if self.engine is None:
            self.waiting = text
        else:
            self._start_turn(text)

    async def regenerate(self) -> None:
        if self._refuse_while_busy():
            return
        first = await self._drop_last_exchange()
        if first is None:
            return
        await self._resend(first.original if first.original is not None else first.content, first)

    def pin_last(self, pinned: bool = True) -> None:
        i = self.conversation.last_user_index()
        if i is None:
            self.notify("There is no message to pin.")
            return
        m = self.conversation.messages[i]
        m.pinned = pinned
        problem = persist.save_pin(self.session_log, self.conversation, m)
        self.notify(("Pinned: compaction keeps your last message verbatim." if pinned else "Unpinned your last message.")
                    + (f" ({problem})" if problem else ""))
