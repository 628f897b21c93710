"""Put one turn of the agent on screen: each step's answer and reasoning, and each tool call as it
forms, is decided and returns. Also keeps the turn's reply and the session log in step."""

from __future__ import annotations

from collections import deque

from qwen_tui.agent import events as ev
from qwen_tui.conversation import Message
from qwen_tui.session_log import SessionLog
from qwen_tui.ui.widgets.messages import AssistantMessage, NoticeMessage, ToolCallBlock

# Work per UI message while an answer streams: at most this much text and this many events are
# put on screen before queued keys get their turn (a whole burst of 2,800 characters once held
# keys for 0.8 s, when Markdown was rendered in the frame).
SLICE_CHARS = 400
SLICE_EVENTS = 200
# A bigger backlog is shown in bigger slices, so any burst is on screen within about this many
# slices (the app applies one per DRAIN_INTERVAL): a slice's cost hardly grows with its text now
# (finished blocks are rendered ahead, the live tail stays short).
DRAIN_SLICES = 8

FINISH_REASON = {"answered": "stop", "cancelled": "cancelled", "error": "error", "step_limit": "length"}


class TurnView:
    def __init__(self, transcript, reply: Message, log: SessionLog, live: AssistantMessage,
                 on_state=lambda state: None) -> None:
        self.transcript = transcript
        self.reply = reply  # the assistant message being written (the conversation's last)
        self.log = log
        self.on_state = on_state
        self.live: AssistantMessage | None = live  # mounted by the caller, before any event arrives
        self.blocks: dict[int, ToolCallBlock] = {}  # this step's tool calls, by index
        self.blocks_by_call: dict[int, ToolCallBlock] = {}  # id(call) -> block
        self.step_started = False
        self.last_step: ev.StepFinished | None = None
        self.backlog: deque = deque()  # events received and not yet on screen, in order
        self.backlog_chars = 0  # text in the backlog
        self.drain_posted = False  # the app has asked itself to apply the next slice

    async def _ensure_live(self) -> AssistantMessage:
        if self.live is None:  # a new step after tool calls
            self.live = AssistantMessage()
            await self.transcript.mount(self.live)
            self.log.start_answer()
            self.blocks = {}
        return self.live

    async def apply(self, events: list = ()) -> ev.AgentFinished | None:
        """Queue `events`, then put at most one slice of the queue on screen (SLICE_CHARS of text,
        SLICE_EVENTS events): a burst (a fast model, a remote server's big chunks) is shown over
        several UI messages, so keys typed meanwhile are handled between slices, not after all
        of it. What is left stays in `backlog`, in order; `pending` says whether any is."""
        self.backlog.extend(events)
        self.backlog_chars += sum(len(e.text) for e in events if isinstance(e, (ev.ReasoningDelta, ev.AnswerDelta)))
        finished = await self._apply_slice()
        return finished

    @property
    def pending(self) -> bool:
        return bool(self.backlog)

    async def _apply_slice(self) -> ev.AgentFinished | None:
        budget, count = max(SLICE_CHARS, self.backlog_chars // DRAIN_SLICES), 0
        max_events = max(SLICE_EVENTS, len(self.backlog) // DRAIN_SLICES)
        kind, parts = None, []  # consecutive deltas of one kind are applied together
        while self.backlog and budget > 0 and count < max_events:
            event = self.backlog.popleft()
            count += 1
            if isinstance(event, (ev.ReasoningDelta, ev.AnswerDelta)):
                text = event.text
                if len(text) > budget:  # a big delta is split; the rest waits for the next slice
                    self.backlog.appendleft(type(event)(text[budget:]))
                    text = text[:budget]
                budget -= len(text)
                self.backlog_chars -= len(text)
                if kind is not type(event) and parts:
                    await self._deltas(kind, "".join(parts))
                    parts = []
                kind = type(event)
                parts.append(text)
                continue
            if parts:
                await self._deltas(kind, "".join(parts))
                kind, parts = None, []
            finished = await self._other(event)
            if finished is not None:
                return finished
        if parts:
            await self._deltas(kind, "".join(parts))
        return None

    async def _deltas(self, kind, text: str) -> None:
        live = await self._ensure_live()
        if kind is ev.ReasoningDelta:
            live.append_reasoning(text)
            self.reply.reasoning += text
            self.log.answer_delta(reasoning=text)
            self.on_state("thinking")
        else:
            await self._answer(text)

    async def _answer(self, chunk: str) -> None:
        self.reply.content += chunk
        self.log.answer_delta(content=chunk)
        self.on_state("answering")
        await self.live.append_answer(chunk)

    async def _other(self, event) -> ev.AgentFinished | None:
        if isinstance(event, ev.ToolCallForming):
            await self._ensure_live()
            block = self.blocks.get(event.index)
            if block is None:
                block = self.blocks[event.index] = ToolCallBlock(event.name or "…")
                await self.transcript.mount(block)
            block.forming(event.name or "", event.arguments_so_far)
            self.on_state("calling a tool")
        elif isinstance(event, ev.StepFinished):
            self.last_step = event
            if self.blocks:  # the step called tools: its text is done, the next step starts anew
                self.log.finish_answer(event.finished.reason, event.finished.usage, event.finished.timings,
                                       tool_calls=event.tool_calls or None)
                await self._freeze("stop")
        elif isinstance(event, ev.ToolCallRequested):
            block = self._block_for(event.call)
            block.forming(event.call.name, event.call.arguments)
            if event.tool is None:
                block.decided("unknown tool")
        elif isinstance(event, ev.ToolCallDecided):
            how = {"once": "allowed once", "session": "allowed for this session", "project": "always allowed here"}
            label = how.get(event.answer or "", "allowed") if event.verdict == "allow" else f"denied: {event.reason}"
            self._block_for(event.call).decided(label)
        elif isinstance(event, ev.ToolCallResult):
            result = event.result
            self._block_for(event.call).finished(result.ok, result.content if result.ok else (result.error or ""))
            self.log.tool_result(event.call.name, result.for_model())
        elif isinstance(event, ev.Notice):
            await self.transcript.mount(NoticeMessage(event.text, error=True))
        elif isinstance(event, ev.AgentFinished):
            await self._freeze(FINISH_REASON[event.reason], event.error)
            return event
        return None

    def _block_for(self, call) -> ToolCallBlock:
        block = self.blocks_by_call.get(id(call))
        if block is None:
            # calls arrive in the order they were formed; take the first block not yet bound
            free = [b for i, b in sorted(self.blocks.items()) if b not in self.blocks_by_call.values()]
            block = free[0] if free else ToolCallBlock(call.name)
            if not free:
                self.transcript.mount(block)
            self.blocks_by_call[id(call)] = block
        return block

    async def _freeze(self, reason: str, error: str | None = None) -> None:
        live, self.live = self.live, None
        if live is None:
            return
        if not live.text and live.reasoning is None and reason == "stop":
            await live.remove()  # a step that only called tools: nothing to show but the calls
            return
        await live.finish(reason, error)

    def conversation_tail(self, finished: ev.AgentFinished, sent: int) -> list[Message]:
        """The turn's messages as the conversation keeps them (assistant steps and tool results)."""
        tail = [Message.from_template(m) for m in finished.messages[sent:]]
        for m in tail:
            if m.role == "assistant":
                m.finish_reason = "stop"
        if tail and tail[-1].role == "assistant":
            tail[-1].finish_reason = FINISH_REASON[finished.reason]
        return tail
