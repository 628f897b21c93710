"""The agent loop's logic, with a scripted engine: calls, approvals, errors fed back, limits, cancel."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from qwen_tui.agent.events import (
    AgentFinished,
    AnswerDelta,
    Notice,
    ReasoningDelta,
    StepFinished,
    ToolCallDecided,
    ToolCallForming,
    ToolCallRequested,
    ToolCallResult,
)
from qwen_tui.agent.loop import Agent
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.template import render_chat
from qwen_tui.plugins import PluginHost
from qwen_tui.testing.fake_engine import FakeEngine
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry
from qwen_tui.tools.tool import Tool, tool

USER = [{"role": "user", "content": "What is 2 + 3?"}]


def xml_call(name: str, **args) -> str:
    params = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in args.items())
    return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


@tool(read_only=True)
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


NOTES: list[str] = []


def write_note(text: str) -> str:
    """Save a note (has side effects: needs approval)."""
    NOTES.append(text)
    return "saved"


def explode(x: int) -> int:
    """Always fails."""
    raise ValueError(f"boom {x}")


RELEASE = threading.Event()


def hang() -> str:
    """Never answers in time."""
    RELEASE.wait(10)
    return "late"


@pytest.fixture(autouse=True)
def _reset():
    NOTES.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


@pytest.fixture
def registry():
    return ToolRegistry(tools=[Tool.from_function(f) for f in (add_numbers, write_note, explode, hang)])


@pytest.fixture
def policy(tmp_path):
    return ApprovalPolicy(tmp_path / "ws", store_path=tmp_path / "approvals.json")


def run(agent: Agent, messages=USER, **kw) -> tuple[list, AgentFinished]:
    events = list(agent.run(messages, thinking=kw.pop("thinking", False), max_tokens=kw.pop("max_tokens", 200)))
    assert isinstance(events[-1], AgentFinished) and not any(isinstance(e, AgentFinished) for e in events[:-1])
    return events, events[-1]


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_one_call_then_answer(registry, policy, qwen35_template):
    engine = FakeEngine([f"Let me add.\n\n{xml_call('add_numbers', a=2, b=3)}", "The sum is 5."])
    events, done = run(Agent(engine, registry, policy))
    assert done.reason == "answered" and done.answer == "The sum is 5." and done.error is None
    assert done.messages == [
        USER[0],
        {"role": "assistant", "content": "Let me add.",
         "tool_calls": [{"type": "function", "function": {"name": "add_numbers", "arguments": {"a": 2, "b": 3}}}]},
        {"role": "tool", "content": "5"},
        {"role": "assistant", "content": "The sum is 5."},
    ]
    # the model got the tool schemas, and the tool result on the second request
    assert engine.requests[0]["tools"] == registry.openai_schemas()
    assert engine.requests[1]["messages"] == done.messages[:3]
    # a UI sees the call form, then the request, the decision and the result, in that order
    forming = of(events, ToolCallForming)
    assert forming[0] == ToolCallForming(0, None, {}) and forming[-1] == ToolCallForming(0, "add_numbers", {"a": 2, "b": 3})
    kinds = [type(e) for e in events if not isinstance(e, (AnswerDelta, ToolCallForming))]
    assert kinds == [StepFinished, ToolCallRequested, ToolCallDecided, ToolCallResult, StepFinished, AgentFinished]
    assert "".join(e.text for e in of(events, AnswerDelta)) == "Let me add.The sum is 5."
    assert of(events, ToolCallDecided)[0].verdict == "allow" and of(events, ToolCallResult)[0].result.content == "5"
    # the list renders with Qwen 3.5's own template as the model wrote and expects it
    prompt = render_chat(qwen35_template, done.messages, tools=registry.openai_schemas())
    assert ("Let me add.\n\n<tool_call>\n<function=add_numbers>\n<parameter=a>\n2\n</parameter>\n"
            "<parameter=b>\n3\n</parameter>\n</function>\n</tool_call><|im_end|>") in prompt
    assert "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>" in prompt


def test_several_calls_in_one_reply(registry, policy, qwen35_template):
    reply = xml_call("add_numbers", a=2, b=3) + "\n" + xml_call("add_numbers", a=10, b=-3)
    engine = FakeEngine([reply, "5 and 7."])
    events, done = run(Agent(engine, registry, policy))
    assert [r.result.content for r in of(events, ToolCallResult)] == ["5", "7"]
    assert [m["role"] for m in done.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert len(done.messages[1]["tool_calls"]) == 2
    prompt = render_chat(qwen35_template, done.messages[:4])
    assert "<|im_start|>user\n<tool_response>\n5\n</tool_response>\n<tool_response>\n7\n</tool_response><|im_end|>" in prompt


@pytest.mark.parametrize("answer", ["once", "session", "project"])
def test_user_allows(registry, policy, tmp_path, answer):
    asked = []

    def ask(call, tool, decision):
        asked.append((call.name, tool.name, decision.verdict))
        return answer

    script = [xml_call("write_note", text="a"), "saved.", xml_call("write_note", text="b"), "saved again."]
    agent = Agent(FakeEngine(script), registry, policy, ask=ask)
    events, done = run(agent)
    assert done.reason == "answered" and NOTES == ["a"] and asked == [("write_note", "write_note", "ask")]
    decided = of(events, ToolCallDecided)[0]
    assert decided.verdict == "allow" and decided.answer == answer
    run(agent, done.messages + [{"role": "user", "content": "again"}])
    assert NOTES == ["a", "b"]
    assert len(asked) == (2 if answer == "once" else 1)  # "once" remembers nothing
    # "project" survives a new session in the same workspace (saved on disk), "session" does not
    fresh = ApprovalPolicy(tmp_path / "ws", store_path=tmp_path / "approvals.json")
    later = []
    run(Agent(FakeEngine([xml_call("write_note", text="c"), "ok"]), registry, fresh, ask=lambda *a: later.append(a) or "deny"))
    assert (NOTES[-1] == "c") == (answer == "project") and bool(later) == (answer != "project")


@pytest.mark.parametrize("answer, reason", [("deny", None), (("deny", "not in this folder"), "not in this folder")])
def test_user_denies_and_the_model_is_told(registry, policy, answer, reason):
    engine = FakeEngine([xml_call("write_note", text="a"), "Understood, I did not save it."])
    events, done = run(Agent(engine, registry, policy, ask=lambda *a: answer))
    assert NOTES == [] and done.reason == "answered"
    result = of(events, ToolCallResult)[0].result
    assert result.denied and not result.ok
    told = engine.requests[1]["messages"][-1]
    assert told["role"] == "tool" and "the user denied this call to write_note" in told["content"]
    if reason:
        assert f"their reason: {reason}" in told["content"]
    else:
        assert "their reason" not in told["content"]


def test_headless_refuses_and_says_how_to_allow(registry, tmp_path):
    headless = ApprovalPolicy(tmp_path, interactive=False, store_path=tmp_path / "a.json")
    engine = FakeEngine([xml_call("write_note", text="a"), "I could not."])
    events, done = run(Agent(engine, registry, headless))
    assert NOTES == [] and "--allow write_note" in engine.requests[1]["messages"][-1]["content"]


def test_malformed_call_is_explained_and_the_model_retries(registry, policy):
    broken = "<tool_call>\n<function=add_numbers>\n<parameter=a>\n2\n</function>\n</tool_call>"
    engine = FakeEngine([broken, xml_call("add_numbers", a=2, b=3), "The sum is 5."])
    events, done = run(Agent(engine, registry, policy))
    assert done.reason == "answered" and done.answer == "The sum is 5." and len(engine.requests) == 3
    feedback = engine.requests[1]["messages"][-1]
    assert feedback["role"] == "tool" and "malformed" in feedback["content"]
    assert "was never closed with </parameter>" in feedback["content"] and "<function=FUNCTION_NAME>" in feedback["content"]
    assert engine.requests[1]["messages"][-2] == {"role": "assistant", "content": broken}  # it sees what it wrote
    assert [r.result.content for r in of(events, ToolCallResult)] == ["5"]
    assert any("malformed" in n.text for n in of(events, Notice))


def test_unknown_tool_error_is_fed_back(registry, policy):
    engine = FakeEngine([xml_call("multiply", a=2, b=3), "I cannot multiply."])
    events, done = run(Agent(engine, registry, policy))
    assert of(events, ToolCallRequested)[0].tool is None
    told = engine.requests[1]["messages"][-1]["content"]
    assert told.startswith("Error: unknown tool 'multiply'") and "add_numbers" in told
    assert done.reason == "answered"


def test_tool_that_raises_gives_an_error_result(registry, tmp_path):
    yolo = ApprovalPolicy(tmp_path, yolo=True, store_path=tmp_path / "a.json")
    engine = FakeEngine([xml_call("explode", x=4), "It failed."])
    events, done = run(Agent(engine, registry, yolo))
    assert engine.requests[1]["messages"][-1]["content"] == "Error: ValueError: boom 4"
    assert done.reason == "answered"


def test_hanging_tool_times_out(registry, tmp_path):
    yolo = ApprovalPolicy(tmp_path, yolo=True, store_path=tmp_path / "a.json")
    engine = FakeEngine([xml_call("hang"), "It hung."])
    start = time.monotonic()
    events, done = run(Agent(engine, registry, yolo, tool_timeout=0.2))
    assert time.monotonic() - start < 3
    assert "timed out after 0.2 s" in engine.requests[1]["messages"][-1]["content"] and done.reason == "answered"


def test_step_limit(registry, policy):
    engine = FakeEngine([xml_call("add_numbers", a=1, b=1)])  # it never stops calling
    events, done = run(Agent(engine, registry, policy, max_steps=3))
    assert done.reason == "step_limit" and len(engine.requests) == 3
    results = [r.result for r in of(events, ToolCallResult)]
    assert [r.ok for r in results] == [True, True, False] and "step limit" in results[-1].error
    assert any("Stopped after 3 steps" in n.text for n in of(events, Notice))
    roles = [m["role"] for m in done.messages]
    assert roles == ["user"] + ["assistant", "tool"] * 3  # every call has its response: the list can be continued


def test_cancel_during_generation_keeps_the_partial_answer(registry, policy):
    engine = FakeEngine(["word " * 200], tokens_per_s=200, chunk=5)
    agent = Agent(engine, registry, policy)
    timer = threading.Timer(0.15, agent.cancel)
    timer.start()
    start = time.monotonic()
    events, done = run(agent)
    assert time.monotonic() - start < 0.8
    assert done.reason == "cancelled" and of(events, StepFinished)[0].finished.reason == "cancelled"
    partial = done.messages[-1]
    assert partial["role"] == "assistant" and partial["content"].startswith("word word") and len(partial["content"]) < 900


def test_cancel_between_tools_runs_no_further_tool(registry, tmp_path):
    yolo = ApprovalPolicy(tmp_path, yolo=True, store_path=tmp_path / "a.json")
    holder = {}

    def stop_after(text: str) -> str:
        """Note, then cancel the run."""
        NOTES.append(text)
        holder["agent"].cancel()
        return "ok"

    reg = ToolRegistry(tools=[Tool.from_function(stop_after), Tool.from_function(write_note)])
    engine = FakeEngine([xml_call("stop_after", text="1") + "\n" + xml_call("write_note", text="2"), "never"])
    holder["agent"] = agent = Agent(engine, reg, yolo)
    events, done = run(agent)
    assert done.reason == "cancelled" and NOTES == ["1"] and len(engine.requests) == 1
    assert [m["role"] for m in done.messages] == ["user", "assistant", "tool", "tool"]
    assert "cancelled" in done.messages[-1]["content"]


def test_cancel_while_a_tool_runs_does_not_wait_for_it(registry, tmp_path):
    yolo = ApprovalPolicy(tmp_path, yolo=True, store_path=tmp_path / "a.json")
    agent = Agent(FakeEngine([xml_call("hang"), "never"]), registry, yolo, tool_timeout=10)
    threading.Timer(0.2, agent.cancel).start()
    start = time.monotonic()
    events, done = run(agent)
    assert time.monotonic() - start < 2 and done.reason == "cancelled"
    assert "cancelled while it ran" in of(events, ToolCallResult)[0].result.error


def test_engine_error_ends_the_run(registry, policy):
    events, done = run(Agent(FakeEngine(["x"], crash_on_turn=0), registry, policy))
    assert done.reason == "error" and "SIGSEGV" in done.error
    assert any("restarted" in n.text for n in of(events, Notice))


def test_reasoning_streams_and_is_kept_for_the_template(registry, policy):
    engine = FakeEngine([xml_call("add_numbers", a=2, b=3), "5."], reasoning="I should add.")
    events, done = run(Agent(engine, registry, policy), thinking=True)
    assert "".join(e.text for e in of(events, ReasoningDelta)) == "I should add.I should add."
    assert done.messages[1]["reasoning_content"] == "I should add." and done.messages[1]["content"] == ""
    assert done.messages[-1] == {"role": "assistant", "content": "5.", "reasoning_content": "I should add."}


def test_a_call_written_inside_unclosed_reasoning_still_runs(registry, policy):
    # Qwen models sometimes write the call before closing </think>: it must run, not be shown as thoughts
    engine = FakeEngine([("I need to add. " + xml_call("add_numbers", a=2, b=3), ""), ("", "5.")])
    events, done = run(Agent(engine, registry, policy), thinking=True)
    assert [r.result.content for r in of(events, ToolCallResult)] == ["5"]
    assert "".join(e.text for e in of(events, ReasoningDelta)) == "I need to add."
    assert done.messages[1]["reasoning_content"] == "I need to add." and done.answer == "5."


def test_plugin_system_prompt_is_merged_once_and_sampling_is_per_step(registry, policy, tmp_path):
    plugin = tmp_path / "house_rules.py"
    plugin.write_text("from qwen_tui import hookimpl\n\n@hookimpl\ndef extra_system_prompt(session):\n"
                      "    return 'Always answer in French.'\n")
    host = PluginHost(plugin_paths=[plugin], builtin_dir=tmp_path / "none", user_dir=tmp_path / "none",
                      entry_points=False, disabled=set())
    host.load_all()
    seen = []

    def sampling(step, reasoning_open):
        seen.append((step, reasoning_open))
        return Sampling(temperature=0, seed=step)

    engine = FakeEngine([xml_call("add_numbers", a=2, b=3), "Cinq."])
    start = [{"role": "system", "content": "You are helpful."}, *USER]
    events, done = run(Agent(engine, registry, policy, host, sampling_for_step=sampling), start)
    for request in engine.requests:
        assert request["messages"][0] == {"role": "system", "content": "You are helpful.\n\nAlways answer in French."}
    assert done.messages[0] == start[0]  # the stored conversation keeps no plugin text
    next_turn = FakeEngine(["Oui."])
    run(Agent(next_turn, registry, policy, host), done.messages + [{"role": "user", "content": "Et 3 + 4?"}])
    assert next_turn.requests[0]["messages"][0]["content"].count("Always answer in French.") == 1
    assert seen == [(0, False), (1, False)] and [r["sampling"].seed for r in engine.requests] == [0, 1]


def test_the_agent_imports_no_ui_and_no_llama():
    code = ("import sys, qwen_tui.agent.loop; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'llama_cpp', 'jinja2')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("vision, sees", [
    (None, False),
    ({"enabled": True, "mmproj": "mmproj.gguf"}, True),
    ({"enabled": False, "mmproj": "broken.gguf", "error": "bad projector"}, False),  # it failed to load
])
def test_tools_attach_images_only_for_a_model_whose_projector_works(vision, sees):
    engine = FakeEngine(["ok"])
    engine.load()
    if vision is not None:
        engine.info.extra["vision"] = vision
    assert Agent(engine).context.model_has_vision is sees
