"""The agent end to end through RemoteEngine: the same run as test_agent_e2e.py, but the tiny
Qwen 3.5 model is served by llama-cpp-python's OpenAI-compatible server (started here on
127.0.0.1). Per-step GBNF grammars (the `grammar` request field) force what the random-weight
model writes; the server renders the template with our tools, the call comes back as Qwen XML
text and is parsed by our parser, the plugin tool runs after approval, and the result goes back
to the server. A second test drives native `tool_calls` (as vLLM/llama-server send them)
through the agent, from a scripted server."""

from __future__ import annotations

import json

import httpx
import pytest

from qwen_tui.agent.events import AgentFinished, StepFinished, ToolCallDecided, ToolCallRequested, ToolCallResult
from qwen_tui.agent.loop import Agent
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.remote import RemoteEngine
from qwen_tui.plugins import PluginHost
from qwen_tui.testing.llama_server import llama_server
from qwen_tui.testing.openai_stub import OpenAIStub, chunk
from qwen_tui.tools.approval import ApprovalPolicy
from qwen_tui.tools.registry import ToolRegistry

CALL = "<tool_call>\n<function=add_numbers>\n<parameter=a>\n2\n</parameter>\n<parameter=b>\n3\n</parameter>\n</function>\n</tool_call>"
PLUGIN = '''
from qwen_tui import hookimpl

def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

@hookimpl
def register_tools(register):
    register(add_numbers)
'''


def gbnf_literal(text: str) -> str:
    return 'root ::= "' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def forced(*replies: str):
    return lambda step, reasoning_open: Sampling(temperature=0, grammar=gbnf_literal(replies[step]))


class Recording(httpx.HTTPTransport):
    """The real transport, keeping the JSON body of each chat request the engine sends."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(request.read()))
        return super().handle_request(request)


@pytest.fixture(scope="module")
def server(tiny_qwen35_path, tmp_path_factory):
    with llama_server(tiny_qwen35_path, n_ctx=8192, log_path=tmp_path_factory.mktemp("srv") / "server.log") as url:
        yield url


@pytest.fixture
def setup(tmp_path):
    plugin = tmp_path / "arith.py"
    plugin.write_text(PLUGIN)
    host = PluginHost(plugin_paths=[plugin], builtin_dir=tmp_path / "none", user_dir=tmp_path / "none",
                      entry_points=False, disabled=set())
    host.load_all()
    assert host.problems() == []
    registry = ToolRegistry(host)
    policy = ApprovalPolicy(tmp_path, host=host, store_path=tmp_path / "approvals.json")  # interactive: asks
    return host, registry, policy


def test_model_on_a_server_calls_a_plugin_tool_with_approval_and_answers(server, setup):
    host, registry, policy = setup
    asked = []

    def ask(call, tool, decision):
        asked.append((call.name, dict(call.arguments), tool.plugin, decision.verdict))
        return "once"

    recording = Recording()
    engine = RemoteEngine(server, transport=recording)
    engine.load()
    agent = Agent(engine, registry, policy, host, ask=ask, sampling_for_step=forced(CALL, "The sum is 5."))
    events = list(agent.run([{"role": "user", "content": "What is 2 + 3?"}], thinking=False, max_tokens=160))
    engine.close()
    done = events[-1]
    assert isinstance(done, AgentFinished) and done.reason == "answered", done.error
    first, second = recording.bodies
    assert first["tools"][0]["function"]["name"] == "add_numbers"  # the server renders them into its template
    requested = [e for e in events if isinstance(e, ToolCallRequested)]
    assert len(requested) == 1 and requested[0].call.arguments == {"a": 2, "b": 3}
    assert all(type(v) is int for v in requested[0].call.arguments.values())
    assert asked == [("add_numbers", {"a": 2, "b": 3}, "arith", "ask")]
    assert [e.answer for e in events if isinstance(e, ToolCallDecided)] == ["once"]
    results = [e.result for e in events if isinstance(e, ToolCallResult)]
    assert len(results) == 1 and results[0].ok and results[0].content == "5"
    # llama-cpp-python's server takes calls back only as text: the call as the model wrote it, then the result.
    assert second["messages"][1] == {"role": "assistant", "content": CALL}
    assert second["messages"][2] == {"role": "tool", "content": "5", "tool_call_id": "call_0"}
    assert done.answer == "The sum is 5."
    steps = [e.finished for e in events if isinstance(e, StepFinished)]
    assert [s.reason for s in steps] == ["stop", "stop"]
    assert steps[1].usage.prompt_tokens > steps[0].usage.prompt_tokens  # the call and its result were counted
    assert done.messages[-1] == {"role": "assistant", "content": "The sum is 5."}


def test_user_denies_and_the_model_on_a_server_reads_why(server, setup):
    host, registry, policy = setup
    recording = Recording()
    engine = RemoteEngine(server, transport=recording)
    engine.load()
    agent = Agent(engine, registry, policy, host, ask=lambda call, tool, decision: ("deny", "do it in your head"),
                  sampling_for_step=forced(CALL, "Then 2 + 3 = 5."))
    events = list(agent.run([{"role": "user", "content": "What is 2 + 3?"}], thinking=False, max_tokens=160))
    engine.close()
    done = events[-1]
    assert done.reason == "answered" and done.answer == "Then 2 + 3 = 5."
    result = next(e.result for e in events if isinstance(e, ToolCallResult))
    assert result.denied and not result.ok
    assert recording.bodies[1]["messages"][2]["content"] == (
        "Error: the user denied this call to add_numbers; their reason: do it in your head")


def native_server():
    """Answers the first request with a native call to add_numbers, the second with text."""

    def chat(h, body):
        if not any(m["role"] == "tool" for m in body["messages"]):
            h.sse([
                chunk(tool_calls=[{"index": 0, "id": "call_xyz", "type": "function",
                                   "function": {"name": "add_numbers", "arguments": '{"a": 2,'}}]),
                chunk(tool_calls=[{"index": 0, "function": {"arguments": ' "b": 3}'}}]),
                chunk(finish="tool_calls"),
                chunk(usage={"prompt_tokens": 200, "completion_tokens": 12, "total_tokens": 212}),
                "[DONE]",
            ])
        else:
            h.sse([chunk("The sum "), chunk("is 5."), chunk(finish="stop"),
                   chunk(usage={"prompt_tokens": 230, "completion_tokens": 5, "total_tokens": 235}), "[DONE]"])

    return OpenAIStub(chat=chat)


def test_native_tool_calls_from_the_server_run_through_the_agent(setup):
    host, registry, policy = setup
    with native_server() as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        agent = Agent(engine, registry, policy, host, ask=lambda call, tool, decision: "once")
        events = list(agent.run([{"role": "user", "content": "What is 2 + 3?"}], thinking=False, max_tokens=160))
        bodies = stub.chat_bodies()
    done = events[-1]
    assert done.reason == "answered" and done.answer == "The sum is 5.", done.error
    result = next(e.result for e in events if isinstance(e, ToolCallResult))
    assert result.ok and result.content == "5"
    assert next(e.call for e in events if isinstance(e, ToolCallRequested)).arguments == {"a": 2, "b": 3}
    sent = bodies[1]["messages"]
    assert sent[1]["tool_calls"] == [{"id": "call_0", "type": "function",
                                      "function": {"name": "add_numbers", "arguments": '{"a": 2, "b": 3}'}}]
    assert sent[2] == {"role": "tool", "content": "5", "tool_call_id": "call_0"}
    steps = [e.finished for e in events if isinstance(e, StepFinished)]
    assert [s.usage.prompt_tokens for s in steps] == [200, 230]
    assert steps[0] and next(e for e in events if isinstance(e, StepFinished)).tool_calls == [
        {"type": "function", "function": {"name": "add_numbers", "arguments": {"a": 2, "b": 3}}}]


def test_a_broken_native_call_is_explained_to_the_model(setup):
    host, registry, policy = setup

    def chat(h, body):
        if len(body["messages"]) == 1:
            h.sse([chunk(tool_calls=[{"index": 0, "id": "c", "type": "function",
                                      "function": {"name": "add_numbers", "arguments": '{"a": 2, "b": '}}]),
                   chunk(finish="tool_calls"), "[DONE]"])
        else:
            h.sse([chunk("Sorry."), chunk(finish="stop"), "[DONE]"])

    with OpenAIStub(chat=chat) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        agent = Agent(engine, registry, policy, host, ask=lambda call, tool, decision: "once")
        events = list(agent.run([{"role": "user", "content": "2+3"}], thinking=False, max_tokens=50))
        second = stub.chat_bodies()[1]["messages"]
    assert events[-1].reason == "answered" and not any(isinstance(e, ToolCallResult) for e in events)
    assert second[-1]["role"] == "tool" and 'its "arguments" string is not valid JSON' in second[-1]["content"]
