"""The agent loop: model -> tool calls -> approval -> run -> results back to the model -> ... -> answer.

    agent = Agent(engine, registry, policy, host, ask=ask_user, max_steps=8)
    for event in agent.run(messages, thinking=None, max_tokens=4096):   # see agent/events.py
        ...
    # from any other thread: agent.cancel()

Run `run()` in a worker thread. `ask(call, tool, decision)` is called *in that thread* when the
approval policy says "ask" and may block until the user answers (from the UI thread); it
returns "once" | "session" | "project" | "deny" or ("deny", reason). Without `ask`, such calls
are refused (headless).

Per step the engine streams the reply; `StepReader` (agent/step_reader.py) feeds it to the reply
parser and turns what it finds into agent events. When the reply ends:

- calls: the assistant message (Qwen 3.5's shape: `content`, `reasoning_content`, `tool_calls`
  with `arguments` as a dict) is appended, then for each call one `{"role": "tool"}` message
  with its result (`ToolResult.for_model()`; denials say the user refused, with their reason);
  malformed calls (`ParsedReply.errors`) add one more tool message telling the model what was
  wrong and the right format. Then the next step.
- no calls and no errors: the answer is appended and the run ends "answered".

The returned messages hold the conversation only: the plugins' `extra_system_prompt` text is
merged into the system message of each request (computed once per run, never stored), so a
later run with the same list neither duplicates it nor keeps stale plugin text. The messages
themselves are built in agent/messages.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from qwen_tui.agent import events as ev
from qwen_tui.agent import messages as msg
from qwen_tui.agent.reply import ToolCall
from qwen_tui.agent.step_reader import StepReader
from qwen_tui.engine.events import Finished, Timings, Usage
from qwen_tui.engine.params import Sampling
from qwen_tui.tools.runner import DEFAULT_MAX_OUTPUT, ToolResult, run_tool
from qwen_tui.tools.tool import ToolContext

__all__ = ["Agent"]

ANSWERS = ("once", "session", "project")
CANCEL_SETTLE_S = 0.75  # after cancel(), how long a running tool may take to stop and report it


def _failure(message: str, *, denied: bool = False, start: float | None = None) -> ToolResult:
    elapsed = (time.monotonic() - start) * 1000 if start is not None else 0.0
    return ToolResult(ok=False, content="", error=message, elapsed_ms=elapsed, denied=denied)


class Agent:
    def __init__(
        self,
        engine: Any,
        registry: Any = None,
        policy: Any = None,
        host: Any = None,
        *,
        max_steps: int = 8,
        context: ToolContext | None = None,
        ask: Callable[..., Any] | None = None,
        tool_timeout: float = 30.0,
        max_output_chars: int = DEFAULT_MAX_OUTPUT,
        sampling_for_step: Callable[[int, bool], Sampling | None] | None = None,
        constrain_tool_calls: bool = False,
        fit: Callable[..., tuple[list[dict], list[str]]] | None = None,
    ) -> None:
        """`engine`: LocalEngine (or FakeEngine); `registry`: ToolRegistry (None: no tools);
        `policy`: ApprovalPolicy (None: one for `context.workspace`, interactive when `ask` is
        given); `host`: PluginHost for `extra_system_prompt` and `tool_call_finished`;
        `sampling_for_step(step, reasoning_open)`: the Sampling for that step (None: default);
        `fit(messages, tools=, thinking=, max_tokens=, request=) -> (messages, notes)`: run before
        every model call so the prompt fits the context window (`Compactor.fit_request`); it may
        raise (ContextOverflow), which ends the run with an error before the engine is asked."""
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.engine = engine
        self.registry = registry
        self.host = host
        self.ask = ask
        self.max_steps = max_steps
        self.tool_timeout = tool_timeout
        self.max_output_chars = max_output_chars
        self.sampling_for_step = sampling_for_step
        self.constrain_tool_calls = constrain_tool_calls  # lazy GBNF once <tool_call> starts (agent/grammar.py)
        self.fit = fit
        if policy is None:
            from qwen_tui.tools.approval import ApprovalPolicy

            workspace = context.workspace if context is not None else Path.cwd()
            policy = ApprovalPolicy(workspace, interactive=ask is not None, host=host)
        self.policy = policy
        self.context = context if context is not None else ToolContext(workspace=Path(policy.workspace))
        info = getattr(engine, "info", None)
        vision = (getattr(info, "extra", None) or {}).get("vision") if info is not None else None
        if vision and vision.get("enabled", True):  # {"enabled": False}: the projector failed to load
            # tools (screen capture) attach images only for a model that can see them
            self.context = dataclasses.replace(self.context, model_has_vision=True)
        self._cancelled = threading.Event()
        self._tool_cancel: threading.Event | None = None  # the running tool's ctx.cancelled
        self._extra_system = ""

    # -- control -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the run (any thread): the generation stops, no further tool runs, a running
        tool's `ctx.cancelled` is set (run_command stops its process group) and the tool is
        abandoned if it does not return within CANCEL_SETTLE_S. The run then ends "cancelled"."""
        self._cancelled.set()
        tool_cancel = self._tool_cancel
        if tool_cancel is not None:
            tool_cancel.set()
        self.engine.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # -- the loop ----------------------------------------------------------------------------

    def request_messages(self, messages: list[dict]) -> list[dict]:
        """What is sent to the model for `messages`: the plugins' system prompt text merged in."""
        return msg.request_messages(messages, self._extra_system)

    def _plugin_system_prompt(self) -> str:
        if self.host is None:
            return ""
        from qwen_tui.plugins import SessionInfo

        info = getattr(self.engine, "info", None)
        session = SessionInfo(Path(self.context.workspace), getattr(info, "name", None) or self.context.model)
        try:
            return "\n\n".join(p.strip() for p in self.host.extra_system_prompts(session))
        except Exception:  # noqa: BLE001 - the host isolates plugins; never let it stop a run
            return ""

    def run(self, messages: list[dict], *, thinking: bool | None = None, max_tokens: int = 4096) -> Iterator[ev.AgentEvent]:
        """Drive the conversation until the model answers; the last event is AgentFinished.
        `messages` is not modified: AgentFinished.messages is a new list."""
        self._cancelled.clear()
        messages = list(messages)
        self._extra_system = self._plugin_system_prompt()
        tools = self.registry.openai_schemas() if self.registry is not None else []
        tools = tools or None
        for step in range(self.max_steps):
            if self.cancelled:
                yield ev.AgentFinished("cancelled", messages)
                return
            if self.fit is not None:
                try:
                    messages, notes = self.fit(messages, tools=tools, thinking=thinking, max_tokens=max_tokens,
                                               request=self.request_messages)
                except Exception as exc:  # noqa: BLE001 - ContextOverflow: said before llama.cpp is asked
                    yield ev.AgentFinished("error", messages, error=str(exc))
                    return
                for note in notes:
                    yield ev.Notice(note)
            finished, reply = yield from self._generate(step, messages, tools, thinking, max_tokens)
            if finished.reason == "error":
                self._keep_partial(messages, reply)
                yield ev.AgentFinished("error", messages, error=finished.error or "generation failed")
                return
            if finished.reason == "cancelled":
                self._keep_partial(messages, reply)
                yield ev.AgentFinished("cancelled", messages)
                return
            if not reply.tool_calls and not reply.errors:
                if finished.reason == "length":
                    yield ev.Notice(f"The answer was cut off at the token limit ({max_tokens}).")
                messages.append(msg.assistant_message(reply))
                yield ev.AgentFinished("answered", messages)
                return
            messages.append(msg.assistant_message(reply))
            last = step == self.max_steps - 1
            for call in reply.tool_calls:
                if self.cancelled:
                    result = _failure("not run: the user cancelled before it ran")
                    yield ev.ToolCallResult(call, result)
                elif last:
                    result = _failure(f"not run: the step limit ({self.max_steps} model calls) was reached")
                    yield ev.ToolCallResult(call, result)
                else:
                    result = yield from self._handle_call(call)
                messages.append(msg.tool_message(result))
            if reply.errors:
                yield ev.Notice("The model wrote a malformed tool call; it was told what was wrong.")
                messages.append(msg.errors_message(reply))
            if self.cancelled:
                yield ev.AgentFinished("cancelled", messages)
                return
        yield ev.Notice(
            f"Stopped after {self.max_steps} steps: the model kept calling tools. "
            "Its last calls were not run; send a message to let it continue."
        )
        yield ev.AgentFinished("step_limit", messages)

    def _generate(self, step, messages, tools, thinking, max_tokens):
        """One generation: stream mapped events; return (Finished, ParsedReply)."""
        request = self.request_messages(messages)
        sampling = None
        if self.sampling_for_step is not None:
            sampling = self.sampling_for_step(step, self._reasoning_open(request, tools, thinking))
        if tools and self.constrain_tool_calls and not (sampling and sampling.grammar):
            from dataclasses import replace

            from qwen_tui.agent.grammar import TRIGGER, tool_call_grammar
            from qwen_tui.engine.params import Sampling

            sampling = replace(sampling or Sampling(), grammar=tool_call_grammar(tools), grammar_trigger=TRIGGER)
        reader = StepReader(tools)
        finished: Finished | None = None
        recancelled = False
        try:
            for event in self.engine.generate(request, tools=tools, thinking=thinking, max_tokens=max_tokens, sampling=sampling):
                if self.cancelled and not recancelled:
                    self.engine.cancel()  # a cancel() that came before the engine reset its flag
                    recancelled = True
                if isinstance(event, Finished):  # the last event: let the stream end by itself
                    finished = event
                    continue
                yield from reader.feed(event)
        except Exception as exc:  # noqa: BLE001 - EngineError, template errors: end the run, don't raise
            finished = Finished("error", Usage(0, 0, 0), Timings(0, 0, 0), error=f"{type(exc).__name__}: {exc}")
        if finished is None:
            finished = Finished("error", Usage(0, 0, 0), Timings(0, 0, 0), error="the engine stopped without finishing")
        yield from reader.flush()
        reply = reader.reply()
        yield ev.StepFinished(step, finished, msg.assistant_message(reply).get("tool_calls", []))
        return finished, reply

    def _reasoning_open(self, request, tools, thinking) -> bool:
        from qwen_tui.engine.template import prompt_opens_reasoning  # jinja2: only when asked

        render = getattr(self.engine, "render", None)
        if render is not None and getattr(getattr(self.engine, "info", None), "chat_template", None):
            try:
                return prompt_opens_reasoning(render(request, tools=tools, thinking=thinking))
            except Exception:  # noqa: BLE001 - the generation will report a template error itself
                pass
        return thinking is not False

    # -- one call ----------------------------------------------------------------------------

    def _handle_call(self, call: ToolCall):
        """Look up, decide, maybe ask, run; yield the events and return the ToolResult."""
        start = time.monotonic()
        tool = self.registry.get(call.name) if self.registry is not None else None
        yield ev.ToolCallRequested(call, tool)
        if tool is None:
            names = ", ".join(self.registry.names()) if self.registry is not None else ""
            result = _failure(f"unknown tool {call.name!r}; available tools: {names or 'none'}", start=start)
        else:
            verdict, reason, answer = self._decide(call, tool)
            yield ev.ToolCallDecided(call, verdict, reason, answer)
            if verdict != "allow":
                result = _failure(reason, denied=True, start=start)
            elif self.cancelled:
                result = _failure("not run: the user cancelled before it ran", start=start)
            else:
                result = self._run(tool, call)
        if self.host is not None:
            try:
                self.host.tool_call_finished(call, result)
            except Exception:  # noqa: BLE001 - the host isolates plugins already
                pass
        yield ev.ToolCallResult(call, result)
        return result

    def _decide(self, call: ToolCall, tool: Any) -> tuple[str, str, str | None]:
        decision = self.policy.decide(call, tool)
        if decision.verdict == "allow":
            return "allow", decision.reason, None
        if decision.verdict == "deny":
            return "deny", f"not allowed: {decision.reason}", None
        if self.ask is None:
            return "deny", f"not allowed: {decision.reason} and needs approval, but no one can be asked", None
        try:
            answer = self.ask(call, tool, decision)
        except Exception as exc:  # noqa: BLE001 - a failing prompt refuses, never allows
            return "deny", f"not allowed: asking the user failed ({type(exc).__name__}: {exc})", None
        why = None
        if isinstance(answer, (tuple, list)):
            answer, why = (answer[0], answer[1]) if len(answer) > 1 else (answer[0], None)
        if answer in ANSWERS:
            try:
                self.policy.remember(tool.name, answer)
            except OSError:  # approvals.json not writable: the user still said yes to this call
                pass
            scope = {"once": "this once", "session": "for this session", "project": "always in this project"}[answer]
            return "allow", f"the user allowed {tool.name} {scope}", answer
        reason = f"the user denied this call to {tool.name}"
        if why:
            reason += f"; their reason: {why}"
        return "deny", reason, "deny"

    def _run(self, tool: Any, call: ToolCall) -> ToolResult:
        """run_tool in a helper thread, so cancel() need not wait for a slow tool."""
        box: dict[str, ToolResult] = {}
        done = threading.Event()
        context = dataclasses.replace(self.context, cancelled=threading.Event())  # one signal per call
        self._tool_cancel = context.cancelled
        if self.cancelled:  # a cancel() that read _tool_cancel before it was set
            context.cancelled.set()

        def work() -> None:
            box["result"] = run_tool(tool, call.arguments, timeout=self.tool_timeout,
                                     max_output_chars=self.max_output_chars, context=context)
            done.set()

        start = time.monotonic()
        threading.Thread(target=work, name=f"agent-tool:{tool.name}", daemon=True).start()
        try:
            while not done.wait(0.05):
                if self.cancelled:  # a tool watching ctx.cancelled reports how it stopped
                    if done.wait(CANCEL_SETTLE_S):
                        return box["result"]
                    return _failure("stopped: the user cancelled while it ran (it may finish in the background)", start=start)
            return box["result"]
        finally:
            self._tool_cancel = None

    # -- messages ----------------------------------------------------------------------------

    @staticmethod
    def _keep_partial(messages: list[dict], reply) -> None:
        """A stopped reply: keep what was said (not its calls, which never ran)."""
        partial = msg.partial_message(reply)
        if partial is not None:
            messages.append(partial)
