"""Token accounting: the counts equal what the model's own tokenizer gives for the prompt the
engine really sends, on both real test models, and a turn only tokenizes what is new."""

from __future__ import annotations

import pytest

from qwen_tui.context.budget import Budget, ContextSettings, TokenCounter, split_at_marks
from qwen_tui.engine.local import LocalEngine


@pytest.fixture(scope="module")
def demo_engine(demo_model_path):
    engine = LocalEngine(demo_model_path, n_ctx=2048, n_threads=1, n_threads_batch=1)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def qwen_engine(tiny_qwen35_path):
    engine = LocalEngine(tiny_qwen35_path, n_ctx=4096, n_threads=1, n_threads_batch=1)
    engine.load()
    yield engine
    engine.close()


def conversation() -> list[dict]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is Gated DeltaNet? Explain with an example: 日本語 and émigré."},
        {"role": "assistant", "content": "A linear-attention layer with a gated delta rule.", "reasoning_content": "hm"},
        {"role": "user", "content": "Write `def f(x):\n    return x ** 2` in Rust.\n\n  Indented   spaces\t\ttabs"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "read_file", "arguments": {"path": "src/lib.rs"}}}]},
        {"role": "tool", "content": "fn f(x: i64) -> i64 { x * x }\n" * 20},
        {"role": "assistant", "content": "Here: `fn f(x: i64) -> i64 { x * x }`"},
        {"role": "user", "content": "Thanks <|im_end|> literal marker text, and more."},
    ]


def engine_prompt_tokens(engine, messages, **kw) -> int:
    """What LocalEngine.generate sends: its own render + tokenize + BOS rule."""
    return len(engine._tokenize_prompt(engine.render(messages, **kw)))


@pytest.mark.parametrize("which", ["demo_engine", "qwen_engine"])
def test_prompt_tokens_equal_the_engines_own_tokenization(request, which):
    engine = request.getfixturevalue(which)
    counter = TokenCounter(engine)
    messages = conversation()
    tools = [{"type": "function", "function": {"name": "read_file", "description": "Read a file",
                                                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    for n in range(2, len(messages) + 1):
        for kw in ({}, {"thinking": False}, {"tools": tools}):
            assert counter.prompt_tokens(messages[:n], **kw) == engine_prompt_tokens(engine, messages[:n], **kw), (n, kw)
    assert counter._additive is True  # the cheap per-piece sum was exact, not the fallback


def test_a_new_turn_only_tokenizes_the_new_messages(qwen_engine):
    counter = TokenCounter(qwen_engine)
    history = conversation()
    big = {"role": "tool", "content": "line of a long tool output\n" * 2000}
    counter.prompt_tokens([*history[:5], big, *history[6:]])
    seen = counter.tokenized_chars
    turn = [*history[:5], big, *history[6:], {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next?"}]
    n = counter.prompt_tokens(turn)
    assert n == engine_prompt_tokens(qwen_engine, turn)
    # Only the changed tail went through the tokenizer again, not the 54,000-character tool output.
    assert counter.tokenized_chars - seen < 2000


def test_message_tokens_is_exact_for_a_plain_chatml_message(demo_engine):
    counter = TokenCounter(demo_engine)
    one = [{"role": "user", "content": "Hello there, how are you today?"}]
    two = one + [{"role": "assistant", "content": "Fine, thanks. And you?"}]
    prompt1 = demo_engine.render(one)
    prompt2 = demo_engine.render(two)
    # the assistant block is exactly what the second render adds
    assert counter.message_tokens(two[1]) == len(demo_engine.tokenize(prompt2)) - len(demo_engine.tokenize(prompt1))


def test_split_at_marks_joins_back():
    text = "<|im_start|>system\nx<|im_end|>\n<|im_start|>user\ny<|im_end|>\n<|im_start|>assistant\n"
    assert "".join(split_at_marks(text)) == text
    assert len(split_at_marks(text)) == 3
    assert split_at_marks("no marks") == ["no marks"]


def test_budget_is_n_ctx_minus_the_reply_reserve():
    settings = ContextSettings(reply_reserve=1000, compact_at=0.8, compact_to=0.5)

    class Info:
        n_ctx = 32768

    class Engine:
        info = Info()

    budget = Budget.for_engine(Engine(), settings, max_tokens=4096)
    assert (budget.limit, budget.threshold, budget.target) == (31768, 25414, 15884)
    assert Budget.for_engine(Engine(), settings, max_tokens=300).reserve == 300  # never more than an answer can use
    Info.n_ctx = 2048
    assert Budget.for_engine(Engine(), settings).reserve == 512  # at most a quarter of a small window
    assert budget.level(100) == "ok" and budget.level(24000) == "near" and budget.level(25414) == "full"


def test_config_values_are_checked_with_one_line_each():
    settings, problems = ContextSettings.from_config({"reply_reserve": 2048, "compact_at": 0.7, "keep_recent_turns": -1,
                                                      "compact_to": "half", "max_checkpoints": 8})
    assert settings.reply_reserve == 2048 and settings.compact_at == 0.7
    assert settings.keep_recent_turns == ContextSettings.keep_recent_turns
    assert settings.compact_to == ContextSettings.compact_to
    assert len(problems) == 2 and all("\n" not in p for p in problems)  # max_checkpoints: not ours, not a problem
    assert any("keep_recent_turns" in p for p in problems) and any("compact_to" in p for p in problems)
    settings, problems = ContextSettings.from_config({"compact_at": 0.4, "compact_to": 0.6})
    assert settings.compact_to < settings.compact_at and problems
