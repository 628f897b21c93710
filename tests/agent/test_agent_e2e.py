"""The agent end to end: the tiny Qwen 3.5 model through the real LocalEngine, a tool from a real
plugin file, the real approval policy. Per-step GBNF grammars force what the (random-weight)
model writes, so everything else (template, parsing, approval, running, feeding back) is real."""

from __future__ import annotations

import time

import pytest

from qwen_tui.agent.events import AgentFinished, StepFinished, ToolCallDecided, ToolCallRequested, ToolCallResult
from qwen_tui.agent.loop import Agent
from qwen_tui.engine.events import Finished, TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.plugins import PluginHost
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


@pytest.fixture(scope="module")
def qwen(tiny_qwen35_path):
    engine = LocalEngine(tiny_qwen35_path, n_ctx=8192, n_threads=1, n_threads_batch=1)
    engine.load()
    yield engine
    engine.close()


class PromptRecorder:
    """The real engine, keeping the exact prompt of each request (rendered as generate renders it)."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine, self.prompts = engine, []

    def generate(self, messages, *, tools=None, thinking=None, **kw):
        self.prompts.append(self.engine.render(messages, tools=tools, thinking=thinking))
        return self.engine.generate(messages, tools=tools, thinking=thinking, **kw)

    def __getattr__(self, name):
        return getattr(self.engine, name)


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


def forced(*replies: str):
    return lambda step, reasoning_open: Sampling(temperature=0, grammar=gbnf_literal(replies[step]))


def test_model_calls_a_plugin_tool_with_approval_and_answers(qwen, setup):
    host, registry, policy = setup
    asked = []

    def ask(call, tool, decision):
        asked.append((call.name, dict(call.arguments), tool.plugin, decision.verdict))
        return "once"

    engine = PromptRecorder(qwen)
    agent = Agent(engine, registry, policy, host, ask=ask, sampling_for_step=forced(CALL, "The sum is 5."))
    events = list(agent.run([{"role": "user", "content": "What is 2 + 3?"}], thinking=False, max_tokens=160))
    done = events[-1]
    assert isinstance(done, AgentFinished) and done.reason == "answered", done.error
    assert "<tools>" in engine.prompts[0] and '"name": "add_numbers"' in engine.prompts[0]
    requested = [e for e in events if isinstance(e, ToolCallRequested)]
    assert len(requested) == 1 and requested[0].call.arguments == {"a": 2, "b": 3}
    assert all(type(v) is int for v in requested[0].call.arguments.values())
    assert asked == [("add_numbers", {"a": 2, "b": 3}, "arith", "ask")]
    assert [e.answer for e in events if isinstance(e, ToolCallDecided)] == ["once"]
    results = [e.result for e in events if isinstance(e, ToolCallResult)]
    assert len(results) == 1 and results[0].ok and results[0].content == "5"
    assert len(engine.prompts) == 2 and "<tool_response>\n5\n</tool_response>" in engine.prompts[1]
    assert CALL in engine.prompts[1]  # the call is shown back to the model as it wrote it
    assert done.answer == "The sum is 5."
    steps = [e.finished for e in events if isinstance(e, StepFinished)]
    print(f"\n[e2e] forced call: {steps[0].usage.completion_tokens} tokens, {steps[0].timings.decode_ms:.0f} ms; "
          f"answer: {steps[1].usage.completion_tokens} tokens, {steps[1].timings.decode_ms:.0f} ms; "
          f"step-1 prompt {steps[1].usage.prompt_tokens} tokens ({steps[1].usage.prompt_tokens_evaluated} evaluated)")


def test_user_denies_and_the_model_reads_why(qwen, setup):
    host, registry, policy = setup
    engine = PromptRecorder(qwen)
    agent = Agent(engine, registry, policy, host, ask=lambda call, tool, decision: ("deny", "do it in your head"),
                  sampling_for_step=forced(CALL, "Then 2 + 3 = 5."))
    events = list(agent.run([{"role": "user", "content": "What is 2 + 3?"}], thinking=False, max_tokens=160))
    done = events[-1]
    assert done.reason == "answered" and done.answer == "Then 2 + 3 = 5."
    result = next(e.result for e in events if isinstance(e, ToolCallResult))
    assert result.denied and not result.ok
    assert ("<tool_response>\nError: the user denied this call to add_numbers; their reason: do it in your head\n"
            "</tool_response>") in engine.prompts[1]


def test_grammar_cost_on_the_tiny_model(qwen):
    """Measured for the report, not asserted: grammar-constrained vs free decoding, per token."""
    text = "The quick brown fox jumps over the lazy dog, again and again, until the very end of the day."
    chat = [{"role": "user", "content": "hi"}]
    n = 48

    def timed(sampling: Sampling) -> tuple[Finished, str, float]:
        start = time.monotonic()
        events = list(qwen.generate(chat, thinking=False, max_tokens=n, sampling=sampling))
        wall = (time.monotonic() - start) * 1000
        assert isinstance(events[-1], Finished)
        return events[-1], "".join(e.text for e in events if isinstance(e, TextDelta)), wall

    timed(Sampling(temperature=0))  # warm-up
    free, _, wall_free = timed(Sampling(temperature=0, ignore_eos=True))
    gram, out, wall_gram = timed(Sampling(temperature=0, grammar=gbnf_literal(text)))
    assert out and text.startswith(out)
    per = lambda f: f.timings.decode_ms / max(f.usage.completion_tokens, 1)  # noqa: E731
    print(f"\n[grammar cost] {n} tokens: free {per(free):.1f} ms/tok (wall {wall_free:.0f} ms), "
          f"grammar {per(gram):.1f} ms/tok (wall {wall_gram:.0f} ms, sampling {gram.extra.get('sample_ms', 0):.0f} ms); "
          f"the grammar spelled {len(out)} chars in {gram.usage.completion_tokens} tokens "
          f"(the tokenizer needs {len(qwen.tokenize(out, parse_special=False))})")
