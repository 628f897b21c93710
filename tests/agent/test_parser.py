"""The reply parser: Qwen 3.5 XML and Hermes JSON tool calls, reasoning, streaming, malformed input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

import qwen_tui
from qwen_tui.agent.parser import (
    CALL_OPEN,
    ContentDelta,
    ParsedReply,
    ReasoningDelta,
    StreamingReplyParser,
    ToolCallArgument,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallName,
    ToolCallStarted,
    parse_reply,
)

FORMAT_HINT = "<function=FUNCTION_NAME>"


def tool(name: str, **props: dict) -> dict:
    parameters = {"type": "object", "properties": props}
    return {"type": "function", "function": {"name": name, "description": "", "parameters": parameters}}


def fmt(value: object) -> str:
    """A value as Qwen 3.5's template writes it (`tojson` for mappings/sequences, else `string`)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def xml_call(name: str, args: dict) -> str:
    params = "".join(f"<parameter={k}>\n{fmt(v)}\n</parameter>\n" for k, v in args.items())
    return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


def wrap(body: str) -> str:
    return f"<tool_call>\n{body}\n</tool_call>"


def render(calls: list[tuple[str, dict]], content="", reasoning: str | None = None, prefilled=False) -> str:
    """An assistant reply laid out like the template does it; `prefilled`: the prompt holds `<think>\\n`."""
    out = "" if reasoning is None else ("" if prefilled else "<think>\n") + reasoning + "\n</think>\n\n"
    out += content
    for i, (name, args) in enumerate(calls):
        out += ("\n\n" if content.strip() else "") if i == 0 else "\n"
        out += xml_call(name, args)
    return out


def stream(text: str, cuts: list[int], tools=None, thinking=False) -> tuple[list, ParsedReply]:
    parser = StreamingReplyParser(tools, thinking)
    events, last = [], 0
    for cut in sorted(cuts) + [len(text)]:
        events += parser.feed(text[last:cut])
        last = cut
    events += parser.flush()
    return events, parser.finish()


def check_stream(text: str, cuts: list[int], tools=None, thinking=False) -> ParsedReply:
    """Streamed in these pieces, the reply parses exactly as a whole, and the events add up to it."""
    whole = parse_reply(text, tools, thinking)
    events, result = stream(text, cuts, tools, thinking)
    assert result == whole
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == whole.content
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == whole.reasoning
    assert [e.call for e in events if isinstance(e, ToolCallFinished)] == whole.tool_calls
    for event in events:
        if isinstance(event, (ContentDelta, ReasoningDelta)):
            assert event.text
    return whole


def calls_of(reply: ParsedReply) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for c in reply.tool_calls]


# --- well-formed replies ---------------------------------------------------------------------


def test_single_call():
    text = xml_call("read_file", {"path": "src/main.py"})
    reply = parse_reply(text)
    assert calls_of(reply) == [("read_file", {"path": "src/main.py"})]
    assert reply.tool_calls[0].raw == text
    assert (reply.content, reply.reasoning, reply.errors) == ("", "", [])


def test_several_calls_with_text_before():
    text = render([("ls", {"dir": "."}), ("cat", {"file": "a.txt"}), ("cat", {"file": "b.txt"})], "Let me look around.")
    reply = check_stream(text, [5, 40, 41, 90])
    assert calls_of(reply) == [("ls", {"dir": "."}), ("cat", {"file": "a.txt"}), ("cat", {"file": "b.txt"})]
    assert reply.content == "Let me look around."
    assert reply.errors == []


@pytest.mark.parametrize("prefilled", [True, False])
def test_reasoning_before_call(prefilled):
    thought = "The user wants\nthe directory."
    text = render([("run", {"cmd": "pwd"})], "Checking.", reasoning=thought, prefilled=prefilled)
    reply = parse_reply(text, thinking=prefilled)
    assert reply.reasoning == thought
    assert reply.content == "Checking."
    assert calls_of(reply) == [("run", {"cmd": "pwd"})]


def test_reasoning_only_answer_and_unclosed_reasoning():
    assert parse_reply("I'm\nthinking\n</think>\n\nHello, world!\nWhat's up?", thinking=True) == ParsedReply(
        "Hello, world!\nWhat's up?", "I'm\nthinking", [], []
    )
    assert parse_reply("  <think>\nhmm\n</think>\n\nHi", thinking=False).reasoning == "hmm"
    assert parse_reply("<think>\nhmm\n</think>\n\nHi", thinking=True).reasoning == "hmm"  # re-opened by the model
    assert parse_reply("cut off while thinking", thinking=True) == ParsedReply("", "cut off while thinking", [], [])
    # a <think> that does not open the reply is just text
    assert parse_reply("a <think>b</think>").content == "a <think>b</think>"


def test_tool_call_ends_prefilled_reasoning_like_llama_cpp():
    reply = parse_reply("Need pwd.\n" + xml_call("run", {"cmd": "pwd"}), thinking=True)
    assert reply.reasoning == "Need pwd."
    assert calls_of(reply) == [("run", {"cmd": "pwd"})]


def test_multiline_values_and_own_trailing_newline():
    code = 'def hello():\n    print("Hello, world!")\n\nhello()'
    args = {"file": "foo.c", "old": "#iclunde", "new": "#include\n", "code": code, "indented": "    x"}
    text = render([("edit", args)])
    assert "#include\n\n</parameter>" in text
    assert calls_of(parse_reply(text)) == [("edit", args)]
    # an empty value, written with or without the template's blank line
    empty = wrap("<function=f>\n<parameter=a>\n\n</parameter>\n<parameter=b>\n</parameter>\n</function>")
    assert calls_of(parse_reply(empty)) == [("f", {"a": "", "b": ""})]


TYPED = tool(
    "t",
    i={"type": "integer"},
    n={"type": "number"},
    b={"type": "boolean"},
    z={"type": "null"},
    o={"type": "object"},
    a={"type": "array"},
    s={"type": "string"},
    u={"type": ["integer", "string"]},
    any_of={"anyOf": [{"type": "boolean"}, {"type": "null"}]},
    e={"enum": [1, 2, 3]},
)


@pytest.mark.parametrize(
    "arg, written, value",
    [
        ("i", "42", 42),
        ("i", " -7 ", -7),
        ("i", "5.0", 5),
        ("n", "3.5", 3.5),
        ("n", "1e3", 1000.0),
        ("n", "2", 2),
        ("b", "true", True),
        ("b", "False", False),
        ("b", "TRUE", True),
        ("z", "null", None),
        ("z", "None", None),
        ("o", '{"a": {"b": [1, {"c": null}]}}', {"a": {"b": [1, {"c": None}]}}),
        ("a", '[1, "two", [3], {"four": 4}]', [1, "two", [3], {"four": 4}]),
        ("s", "42", "42"),
        ("s", "  spaced  ", "  spaced  "),
        ("u", "7", 7),
        ("u", "seven", "seven"),
        ("any_of", "true", True),
        ("any_of", "null", None),
        ("e", "2", 2),
        ("unknown_param", "42", "42"),
    ],
)
def test_coercion_to_schema_types(arg, written, value):
    reply = parse_reply(wrap(f"<function=t>\n<parameter={arg}>\n{written}\n</parameter>\n</function>"), [TYPED])
    assert reply.errors == []
    got = reply.tool_calls[0].arguments[arg]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "arg, written, expected",
    [
        ("i", "forty-two", "integer"),
        ("i", "4.5", "integer"),
        ("n", "NaN", "number"),
        ("b", "yes", "boolean"),
        ("z", "nothing", "null"),
        ("o", "{'a': 1}", "object"),
        ("o", "[1]", "object"),
        ("a", '{"a": 1}', "array"),
        ("a", "[1,", "array"),
        ("any_of", "maybe", "a boolean (e.g. true) or a null"),
    ],
)
def test_coercion_failure_keeps_call_with_string_and_reports(arg, written, expected):
    text = wrap(f"<function=t>\n<parameter={arg}>\n{written}\n</parameter>\n</function>")
    reply = parse_reply(text, [TYPED])
    assert calls_of(reply) == [("t", {arg: written})]
    [error] = reply.errors
    assert expected in error.message and repr(arg) in error.message and "'t'" in error.message
    assert error.raw == text


def test_no_tools_or_unknown_tool_keeps_strings():
    text = render([("nobody_knows", {"n": 5, "flag": True, "obj": {"a": 1}, "nothing": None})])
    expected = [("nobody_knows", {"n": "5", "flag": "True", "obj": '{"a": 1}', "nothing": "None"})]
    assert calls_of(parse_reply(text)) == expected
    reply = parse_reply(text, [TYPED])
    assert calls_of(reply) == expected and reply.errors == []


def test_hermes_json_form():
    obj = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'
    encoded = '<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}\n</tool_call>'
    reply = check_stream("Checking both.\n" + obj + "\n" + encoded, [20, 60])
    assert calls_of(reply) == [("get_weather", {"city": "Paris", "days": 3}), ("get_weather", {"city": "Oslo"})]
    assert reply.content == "Checking both." and reply.errors == []
    assert reply.tool_calls[1].raw == encoded


# --- malformed replies -----------------------------------------------------------------------

GOOD = xml_call("ls", {"dir": "."})


MALFORMED = {  # case: (reply, what the error message must say)
    "unclosed at end": ("Sure.\n<tool_call>\n<function=ls>\n<parameter=dir>\n.\n", "never closed with </tool_call>"),
    "function without >": (
        wrap("<function=ls\n<parameter=dir>\n.\n</parameter>\n</function>"),
        "<function= was never closed with '>'",
    ),
    "empty function name": (wrap("<function=>\n</function>"), "names no function"),
    "parameter without >": (
        wrap("<function=ls>\n<parameter=dir\n.\n</parameter>\n</function>"),
        "<parameter= in your call to 'ls' was never closed",
    ),
    "missing </parameter>": (
        wrap("<function=ls>\n<parameter=dir>\n.\n</function>"),
        "<parameter=dir> in your call to 'ls' was never closed with </parameter>",
    ),
    "missing </function>": (
        wrap("<function=ls>\n<parameter=dir>\n.\n</parameter>"),
        "<function=ls> was never closed with </function>",
    ),
    "junk inside function": (
        wrap("<function=ls>\ndir=.\n</function>"),
        "unexpected text 'dir=.\\n</function>\\n' inside <function=ls>",
    ),
    "junk after function": (wrap("<function=ls>\n</function>\noops"), "between </function> and </tool_call>"),
    "empty tool_call": (wrap(""), "was empty"),
    "no function at all": (wrap("ls ."), "must start with <function=NAME>"),
    "bad JSON": (wrap('{"name": "ls", "arguments": {"dir": .}}'), "not valid"),
    "JSON without name": (wrap('{"arguments": {}}'), 'no "name"'),
    "JSON arguments not an object": (wrap('{"name": "ls", "arguments": [1]}'), '"arguments" is not a JSON object'),
    "JSON arguments bad string": (wrap('{"name": "ls", "arguments": "{dir"}'), '"arguments" string is not valid JSON'),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_call_is_kept_as_content_with_helpful_error(case):
    text, why = MALFORMED[case]
    for reply in (check_stream(text, []), check_stream(text, list(range(len(text))))):
        assert reply.tool_calls == []
        assert text.strip() in reply.content
        [error] = reply.errors
        assert why in error.message, error.message
        assert "malformed" in error.message and "not run" in error.message
        assert FORMAT_HINT in error.message or '"arguments"' in error.message
        assert error.raw.strip() in reply.content


def test_malformed_call_between_good_ones():
    bad = "<tool_call>\n<function=ls>\n<parameter=dir>\n/tmp\n"  # never closed: the next <tool_call> starts
    reply = check_stream(GOOD + "\n" + bad + GOOD, [3, 30, 70])
    assert calls_of(reply) == [("ls", {"dir": "."}), ("ls", {"dir": "."})]
    assert reply.content == bad.strip()
    assert len(reply.errors) == 1 and "next <tool_call> began" in reply.errors[0].message


def test_text_after_last_call_is_content_plus_error():
    reply = check_stream("First.\n" + GOOD + "\nI will wait for the result.", [10])
    assert calls_of(reply) == [("ls", {"dir": "."})]
    assert reply.content == "First.\n\nI will wait for the result."
    [error] = reply.errors
    assert error.raw == "I will wait for the result." and "must come last" in error.message


# --- streaming -------------------------------------------------------------------------------


def test_partial_tags_are_never_shown_as_text():
    parser = StreamingReplyParser(thinking=True)
    shown = []
    pieces = ["plan", "ning </thi", "nk>\n\nHello <tool_", "call>\n<function=ls>\n<parameter=dir>\n/h", "ome\n</pa"]
    for piece in pieces:
        shown += parser.feed(piece)
    assert "".join(e.text for e in shown if isinstance(e, ReasoningDelta)) == "planning"
    assert [e.text for e in shown if isinstance(e, ContentDelta)] == ["Hello"]  # the space waits for more text
    assert [e for e in shown if isinstance(e, ToolCallArgument)][-1] == ToolCallArgument(0, "dir", "/home")
    shown += parser.feed("rameter>\n</function>\n</tool_call>")
    shown += parser.flush()
    kinds = [type(e).__name__ for e in shown if not isinstance(e, (ContentDelta, ReasoningDelta))]
    assert kinds[:2] == ["ToolCallStarted", "ToolCallName"] and kinds[-2:] == ["ToolCallArgument", "ToolCallFinished"]
    assert shown[-2] == ToolCallArgument(0, "dir", "/home", done=True)
    assert parser.finish() == parse_reply("planning </think>\n\nHello " + GOOD.replace(".", "/home"), thinking=True)


def test_stream_events_for_a_failed_call_then_a_good_one():
    text = "<tool_call>\n<function=oops\n</tool_call>\n" + GOOD
    events, reply = stream(text, list(range(0, len(text), 3)))
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    failed = [e for e in events if isinstance(e, ToolCallFailed)]
    assert [e.index for e in started] == [0, 0]  # the failed call's index is reused
    assert len(failed) == 1 and failed[0].error == reply.errors[0]
    assert [e.index for e in events if isinstance(e, ToolCallFinished)] == [0]
    assert [e.name for e in events if isinstance(e, ToolCallName)] == ["ls"]
    assert reply.content == "<tool_call>\n<function=oops\n</tool_call>"


def test_public_api_is_lazy():
    assert qwen_tui.parse_reply is parse_reply
    assert "parse_reply" in qwen_tui.__all__
    code = "import sys, qwen_tui; assert 'qwen_tui.agent.parser' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the real template -----------------------------------------------------------------------


def template_reply(template: str, calls: list, content: str, reasoning: str, tools: list[dict]) -> str:
    """The assistant part of a conversation rendered by Qwen 3.5's own chat template."""

    def raise_exception(message):
        raise RuntimeError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, *a, **k: json.dumps(x, ensure_ascii=False)
    env.globals["raise_exception"] = raise_exception
    messages = [
        {"role": "user", "content": "Please help."},
        {
            "role": "assistant",
            "content": content,
            "reasoning_content": reasoning,
            "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls],
        },
    ]
    prompt = env.from_string(template).render(messages=messages, tools=tools, add_generation_prompt=False)
    return prompt.split("<|im_start|>assistant\n", 1)[1].rsplit("<|im_end|>", 1)[0]


def test_round_trip_through_the_real_template(qwen35_template):
    calls = [
        ("write_file", {"path": "app.py", "content": "import os\n\nprint(os.getcwd())\n", "mode": 420, "force": False}),
        ("search", {"query": "TODO", "options": {"globs": ["*.py"]}, "paths": ["src"], "ratio": 0.5, "since": None}),
    ]
    string, integer, boolean = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
    tools = [
        tool("write_file", path=string, content=string, mode=integer, force=boolean),
        tool("search", query=string, options={"type": "object"}, paths={"type": "array"}, ratio={"type": "number"},
             since={"type": ["string", "null"]}),
    ]
    text = template_reply(qwen35_template, calls, "I'll write the file, then search.", "Two steps.", tools)
    assert text.startswith("<think>\nTwo steps.\n</think>\n\n") and "<function=write_file>" in text
    for reply in (parse_reply(text, tools), parse_reply(text.removeprefix("<think>\n"), tools, thinking=True)):
        assert calls_of(reply) == calls
        assert reply.content == "I'll write the file, then search."
        assert reply.reasoning == "Two steps."
        assert reply.errors == []


# --- properties ------------------------------------------------------------------------------

FORBIDDEN = ("</parameter>", "</tool_call>", "<tool_call>")
TAGS = ["<tool_call>", "</tool_call>", "<function=", "</function>", "<parameter=", "</parameter>", "<think>"]
TAGS += ["</think>", ">", "<", "\n", "{", '"name": ', "}"]
texty = st.lists(st.sampled_from(TAGS) | st.text(max_size=6), max_size=12).map("".join)
number = st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
json_leaf = st.none() | st.booleans() | number | st.text(max_size=8)
nested = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8
)
containers = st.dictionaries(st.text(max_size=5), nested, max_size=3) | st.lists(nested, max_size=3)
value = st.one_of(st.text(max_size=30), texty, json_leaf, containers).filter(
    lambda v: not any(tag in fmt(v) for tag in FORBIDDEN)
)
call = st.tuples(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True),
    st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), value, max_size=4),
)
calls_st = st.lists(call, max_size=3, unique_by=lambda c: c[0])


def json_type(v: object) -> str:
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}
    return names.get(type(v), "string")


def tools_for(calls) -> list[dict]:
    return [tool(name, **{k: {"type": json_type(v)} for k, v in args.items()}) for name, args in calls]


@st.composite
def valid_replies(draw):
    calls = draw(calls_st)
    thinking = draw(st.booleans())
    reasoning = draw(st.none() | texty | st.text(max_size=20)) if not thinking else draw(texty | st.text(max_size=20))
    if reasoning is not None and ("</think>" in reasoning or "<tool_call>" in reasoning or "<think>" in reasoning):
        reasoning = None if not thinking else ""
    content = draw(texty | st.text(max_size=20))
    while "<tool_call>" in content:
        content = content.replace("<tool_call>", "")
    if reasoning is None and content.lstrip().startswith("<think>"):
        content = ""
    return render(calls, content, reasoning, prefilled=thinking), calls, content, reasoning, thinking


def cuts_for(data, text: str) -> list[int]:
    return data.draw(st.lists(st.integers(0, len(text)), max_size=12), label="cuts")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(valid_replies(), st.data())
def test_valid_replies_parse_to_their_calls_under_any_chunking(reply, data):
    text, calls, content, reasoning, thinking = reply
    tools = tools_for(calls)
    parsed = check_stream(text, cuts_for(data, text), tools, thinking)
    assert calls_of(parsed) == calls
    assert parsed.content == content.strip()
    assert parsed.reasoning == (reasoning or "").strip()
    assert parsed.errors == []


OPS = ["insert", "delete", "duplicate", "truncate", "splice"]
mutation = st.tuples(st.sampled_from(OPS), st.integers(0, 10**6), st.integers(1, 12), st.sampled_from(TAGS))


def mutate(text: str, ops) -> str:
    for op, pos, size, tag in ops:
        pos %= len(text) + 1
        if op == "insert":
            text = text[:pos] + tag[: size % len(tag) + 1] + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + size :]
        elif op == "duplicate":
            text = text[:pos] + text[pos : pos + size] * 2 + text[pos + size :]
        elif op == "truncate":
            text = text[:pos]
        else:
            text = text[:pos] + tag + text[pos:]
    return text


def nonspace(text: str) -> Counter:
    return Counter(ch for ch in text if not ch.isspace())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(valid_replies(), st.lists(mutation, max_size=4), st.booleans(), st.data())
def test_mutated_replies_never_raise_and_lose_nothing(reply, ops, thinking, data):
    text, calls = mutate(reply[0], ops), reply[1]
    parsed = check_stream(text, cuts_for(data, text), tools_for(calls), thinking)
    # every character lands in the reasoning, the content or a call, except the <think> tags
    rest, pos = text, 0
    for c in parsed.tool_calls:
        pos = rest.index(c.raw, pos)
        rest = rest[:pos] + rest[pos + len(c.raw) :]
    kept = nonspace(parsed.reasoning) + nonspace(parsed.content)
    assert not kept - nonspace(rest)
    assert not nonspace(rest) - kept - Counter("<think></think>")
    raws = {c.raw for c in parsed.tool_calls}
    for error in parsed.errors:
        assert error.message and (error.raw in raws or error.raw.strip() in parsed.content)


@settings(max_examples=200, deadline=None)
@given(st.text() | texty, st.booleans(), st.data())
def test_random_text_never_raises(text, thinking, data):
    check_stream(text, cuts_for(data, text), [TYPED], thinking)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(calls=calls_st.filter(bool), content=st.text(max_size=20).map(str.strip).filter(lambda s: CALL_OPEN not in s))
def test_python_layout_matches_the_real_template(qwen35_template, calls, content):
    text = template_reply(qwen35_template, calls, content, "", tools_for(calls))
    assert text == "<think>\n\n</think>\n\n" + render(calls, content)
    assert calls_of(parse_reply(text, tools_for(calls))) == calls
