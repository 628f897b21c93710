"""Lazy grammar-constrained tool calls on the real tiny qwen35: free text until `<tool_call>`,
then only well-formed calls with typed arguments."""

from __future__ import annotations

import pytest

from qwen_tui.agent.grammar import TRIGGER, tool_call_grammar
from qwen_tui.agent.parser import parse_reply
from qwen_tui.engine.events import TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling

TOOLS = [
    {"type": "function", "function": {"name": "add_numbers", "description": "Add.", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
    {"type": "function", "function": {"name": "set_flag", "description": "Flag.", "parameters": {
        "type": "object", "properties": {"on": {"type": "boolean"}, "mode": {"type": "string", "enum": ["fast", "slow"]}},
        "required": ["on", "mode"]}}},
]


@pytest.fixture(scope="module")
def qwen(tiny_qwen35_path):
    engine = LocalEngine(tiny_qwen35_path, n_ctx=4096)
    engine.load()
    yield engine
    engine.close()


def test_the_grammar_parses_in_llama_cpp(qwen):
    # An eager run must start with the trigger: the grammar itself is valid GBNF and forces a call.
    grammar = tool_call_grammar(TOOLS)
    events = list(qwen.generate([{"role": "user", "content": "x"}], thinking=False, max_tokens=400,
                                sampling=Sampling(temperature=0.8, seed=7, grammar=grammar)))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reply = parse_reply(text, TOOLS)
    assert reply.tool_calls, text
    check_calls(reply.tool_calls)
    assert not reply.errors or (events[-1].reason == "length" and len(reply.errors) == 1), reply.errors


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lazy_grammar_free_text_then_a_valid_call(qwen, seed):
    trigger_id = qwen.tokenize(TRIGGER)
    assert len(trigger_id) == 1  # Qwen 3.5 has <tool_call> as one token
    # Random weights never open a call by themselves: nudge the trigger token after a few free
    # tokens with a logit bias; the lazy grammar must take over from there.
    sampling = Sampling(temperature=0.8, seed=seed, grammar=tool_call_grammar(TOOLS), grammar_trigger=TRIGGER,
                        logit_bias=((trigger_id[0], 1000.0),))
    events = list(qwen.generate([{"role": "user", "content": "x"}], thinking=False, max_tokens=300, sampling=sampling))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.startswith(TRIGGER + "\n<function="), text  # the trigger, then the grammar's call
    reply = parse_reply(text, TOOLS)
    assert reply.tool_calls, text
    check_calls(reply.tool_calls)
    # The bias keeps pushing the trigger, so calls repeat until max_tokens; only the last one may
    # be cut off by that limit, never malformed by the model.
    assert not reply.errors or (events[-1].reason == "length" and len(reply.errors) == 1), reply.errors


def check_calls(calls):
    for call in calls:
        assert call.name in ("add_numbers", "set_flag")
        if call.name == "add_numbers":
            assert isinstance(call.arguments["a"], int) and isinstance(call.arguments["b"], int)
        else:
            assert isinstance(call.arguments["on"], bool) and call.arguments["mode"] in ("fast", "slow")


def test_agent_arms_the_lazy_grammar_only_when_asked():
    from qwen_tui.agent.loop import Agent
    from qwen_tui.testing.fake_engine import FakeEngine
    from qwen_tui.tools.registry import ToolRegistry
    from qwen_tui.tools.tool import Tool

    def add_numbers(a: int, b: int) -> int:
        """Add."""
        return a + b

    registry = ToolRegistry(tools=[Tool.from_function(add_numbers)])
    for constrain in (False, True):
        engine = FakeEngine(["plain answer"])
        list(Agent(engine, registry, constrain_tool_calls=constrain).run([{"role": "user", "content": "hi"}]))
        sampling = engine.requests[0]["sampling"]
        if constrain:
            assert sampling.grammar_trigger == TRIGGER and "call-0-add-numbers" in sampling.grammar
        else:
            assert sampling is None or not sampling.grammar
