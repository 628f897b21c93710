"""A turn in the app: started from a prompt, generated in a thread worker that batches the
agent's events (and renders the answer's finished blocks ahead), put on screen slice by slice
(turn.py), and finished into the conversation and the session log.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from textual import work
from textual.message import Message

from qwen_tui.agent import events as ev
from qwen_tui.agent.loop import Agent
from qwen_tui.conversation import Message as ConversationMessage
from qwen_tui.ui.screens.dialogs import ErrorDialog
from qwen_tui.ui.turn import FINISH_REASON, TurnView
from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.messages import AssistantMessage

# Repaints per second while streaming. Each one re-lays out the transcript (~15 ms at 120x40,
# profiled), so on small machines fewer of them leave the CPU to the model; 10-15 Hz still reads
# as smooth streaming.
FLUSH_HZ = 10 if (os.cpu_count() or 1) <= 4 else 15
# A backlog (a burst bigger than a slice) is put on screen one slice per this many seconds.
DRAIN_INTERVAL = 1 / 15


@dataclass
class EngineEvents(Message):
    """A batch of engine events: the generation thread posts about FLUSH_HZ of these a second."""

    events: list


class TurnRunnerMixin:
    """The app's part in a turn (QwenApp holds the conversation, engine, pacer and widgets)."""

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
        self.collector.settle()
        self.generate(messages, self.thinking)

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
        self.collector.settle()  # the collector stays off old objects while it streams (ui/gc_pause.py)
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

