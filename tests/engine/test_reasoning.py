"""Splitting a streamed reply into reasoning and answer, whatever the chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_tui.engine.events import ReasoningDelta, TextDelta
from qwen_tui.engine.reasoning import ReasoningSplitter


def split(chunks, in_reasoning):
    splitter = ReasoningSplitter(in_reasoning)
    events = [e for c in chunks for e in splitter.feed(c)] + splitter.flush()
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer, events


def test_prompt_opened_reasoning():
    assert split(["I should greet.\n</think>\n\nHello!"], True)[:2] == ("I should greet.\n", "Hello!")


def test_model_opens_reasoning_itself():
    assert split(["<think>\nhmm\n</think>\n\nAnswer"], False)[:2] == ("hmm\n", "Answer")


def test_no_reasoning():
    assert split(["Just an answer with a </think> in it"], False)[:2] == ("", "Just an answer with a </think> in it")


def test_think_tag_mid_answer_is_text():
    assert split(["Use the <think> tag like this"], False)[:2] == ("", "Use the <think> tag like this")


def test_tag_split_across_chunks_never_leaks():
    reasoning, answer, events = split(["plan", "</th", "ink", ">\n\nok"], True)
    assert (reasoning, answer) == ("plan", "ok")
    assert all("<" not in e.text for e in events)


def test_unclosed_reasoning_is_kept():
    assert split(["thinking until the budget ran out"], True)[:2] == ("thinking until the budget ran out", "")


@settings(max_examples=300, deadline=None)
@given(
    reasoning=st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40),
    answer=st.text(max_size=40).filter(lambda s: "</think>" not in s),
    cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=8),
    opened=st.booleans(),
)
def test_any_chunking_gives_the_same_split(reasoning, answer, cuts, opened):
    text = ("" if opened else "<think>") + reasoning + "</think>" + answer
    whole = split([text], opened)[:2]
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    assert split(chunks, opened)[:2] == whole
    assert whole[0] == reasoning.lstrip("\n")
