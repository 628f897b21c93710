"""Turn latency must not grow with the session: tokens evaluated per turn, counted (not timed).

The tiny qwen35 fixture is a real hybrid model (DeltaNet + attention) run by real llama.cpp:
its recurrent state cannot roll back, and Qwen 3.5's template drops earlier turns' `<think>`
blocks, so every new user message diverges inside the cache. Checkpoints make that cheap.
"""

from __future__ import annotations

import pytest

from qwen_tui.engine.events import Finished, ReasoningDelta, TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.state_size import checkpoint_settings

# Forced replies: a reasoning block, then an answer (the template drops the reasoning later).
REPLY = 'root ::= "I should answer about " [a-z]{2,6} "." "</think>" "\\n\\n" "Here is the answer about " [a-z]{2,6} " for you."'
GREEDY = Sampling(temperature=0)


@pytest.fixture(scope="module")
def qwen(tiny_qwen35_path):
    with LocalEngine(tiny_qwen35_path, n_ctx=8192) as engine:
        engine.load()
        yield engine


@pytest.fixture(scope="module")
def fresh(tiny_qwen35_path):
    """A second engine: what a run from token 0 produces (its cache is cleared before each use)."""
    with LocalEngine(tiny_qwen35_path, n_ctx=8192) as engine:
        engine.load()
        yield engine


def run(engine, messages, **kw) -> tuple[str, str, Finished]:
    events = list(engine.generate(messages, thinking=True, **kw))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, text, events[-1]


def from_scratch(engine, messages, **kw) -> str:
    # A prompt that shares no prefix with what the engine holds forces a full evaluation.
    list(engine.generate(prompt="<|im_start|>system\nreset<|im_end|>\n", max_tokens=1, sampling=GREEDY))
    reasoning, text, finished = run(engine, messages, **kw)
    assert finished.usage.prompt_tokens_evaluated == finished.usage.prompt_tokens
    return reasoning + "|" + text


def user(i: int) -> dict:
    return {"role": "user", "content": f"Question number {i}: " + "tell me about the river and the boats " * 6}


def conversation(engine, turns: int, reply=REPLY):
    messages = [{"role": "system", "content": "You are a helpful assistant. " * 10}]
    stats = []
    for i in range(turns):
        messages.append(user(i))
        prompt_len = len(engine.tokenize(engine.render(messages, thinking=True)))
        reasoning, text, finished = run(engine, messages, max_tokens=60, sampling=Sampling(temperature=0, grammar=reply))
        assert finished.reason == "stop" and "</think>" not in text and reasoning
        answer = {"role": "assistant", "content": text, "reasoning_content": reasoning}
        stats.append((prompt_len, finished, engine.tokenize(text), answer))
        messages.append(answer)
    return messages, stats


def test_each_turn_evaluates_only_what_is_new(qwen):
    messages, stats = conversation(qwen, 6)
    first = stats[0][1]
    assert first.usage.prompt_tokens_evaluated == first.usage.prompt_tokens  # a cold start
    new_tokens = len(qwen.tokenize(f"<|im_start|>user\n{user(5)['content'].strip()}<|im_end|>\n<|im_start|>assistant\n<think>\n"))
    for (prev_len, _, prev_answer, _), (prompt_len, finished, _, _) in zip(stats, stats[1:]):
        usage = finished.usage
        assert usage.prompt_tokens == prompt_len
        # The template rewrote the previous reply (its <think> is gone), so evaluation restarts at
        # that reply's header: the new user message + the last answer + a few template tokens.
        assert usage.prompt_tokens_evaluated <= new_tokens + len(prev_answer) + 8, usage
        assert usage.prompt_tokens_evaluated <= prompt_len - prev_len + 8, (usage, prompt_len, prev_len)
        assert finished.extra["restored_checkpoint_at"] is not None
    last = stats[-1][1].usage
    assert last.prompt_tokens > 4 * last.prompt_tokens_evaluated  # the history was reused, not re-run


def test_output_after_a_restore_is_what_a_fresh_run_gives(qwen, fresh):
    messages, _ = conversation(qwen, 3)
    messages.append(user(3))
    for sampling in (GREEDY, Sampling(temperature=0.9, seed=1234, top_k=50, top_p=0.95)):
        reasoning, text, finished = run(qwen, messages, max_tokens=40, sampling=sampling)
        assert finished.extra["restored_checkpoint_at"] is not None
        assert finished.usage.prompt_tokens_evaluated < finished.usage.prompt_tokens / 3
        assert reasoning + "|" + text == from_scratch(fresh, messages, max_tokens=40, sampling=sampling)


def test_regenerate_and_edit_restore_a_checkpoint(qwen, fresh):
    messages, stats = conversation(qwen, 3)
    sampling = Sampling(temperature=0.9, seed=7)
    # Regenerate: the same history without the last answer, i.e. the identical prompt again
    # (llama-cpp-python would re-run it all: it needs a 1-token rollback).
    history = messages[:-1]
    a = run(qwen, history, max_tokens=30, sampling=sampling)
    b = run(qwen, history, max_tokens=30, sampling=sampling)
    for _, _, finished in (a, b):
        assert finished.usage.prompt_tokens_evaluated == 1, finished.usage
    assert a[:2] == b[:2]
    assert a[0] + "|" + a[1] == from_scratch(fresh, history, max_tokens=30, sampling=sampling)
    # Edit the last user message: evaluation restarts at that message.
    edited = messages[:-2] + [{"role": "user", "content": "A different question about mountains."}]
    reasoning, text, finished = run(qwen, edited, max_tokens=30, sampling=GREEDY)
    edit_tokens = len(qwen.tokenize(edited[-1]["content"]))
    assert finished.usage.prompt_tokens_evaluated <= edit_tokens + 12, finished.usage
    assert reasoning + "|" + text == from_scratch(fresh, edited, max_tokens=30, sampling=GREEDY)
    # Undo the last exchange altogether and ask something else: same cost.
    undone = messages[:-4] + [{"role": "user", "content": "Something else entirely."}]
    finished = run(qwen, undone, max_tokens=5, sampling=GREEDY)[2]
    assert finished.usage.prompt_tokens_evaluated <= len(qwen.tokenize("Something else entirely.")) + 12


def test_attention_only_model_reuses_its_cache_without_checkpoints(demo_model_path):
    with LocalEngine(demo_model_path, n_ctx=4096) as demo:
        demo.load()
        messages = [{"role": "system", "content": "You are concise."}]
        for i in range(3):
            messages.append({"role": "user", "content": f"Say a word about number {i}."})
            events = list(demo.generate(messages, max_tokens=12, sampling=GREEDY))
            finished = events[-1]
            text = "".join(e.text for e in events if isinstance(e, TextDelta))
            messages.append({"role": "assistant", "content": text})
            assert finished.extra["checkpoints"] == 0
            if i:
                assert finished.usage.prompt_tokens_evaluated <= 40, finished.usage
        again = list(demo.generate(messages[:-1], max_tokens=3, sampling=GREEDY))[-1]
        assert again.usage.prompt_tokens_evaluated == 1


def test_checkpoint_settings_from_config():
    assert checkpoint_settings({}) == ({"max_checkpoints": 32, "checkpoint_mib": 1024}, [])
    settings, problems = checkpoint_settings({"max_checkpoints": 4, "checkpoint_mib": "lots"})
    assert settings == {"max_checkpoints": 4, "checkpoint_mib": 1024}
    assert problems == ["[context] checkpoint_mib must be a whole number >= 0, not 'lots'; using 1024"]


def test_a_turn_tokenizes_only_its_new_messages(qwen):
    messages, _ = conversation(qwen, 2)
    pieces = qwen._pieces
    for extra in ([], [user(7)], [{"role": "assistant", "content": "An answer."}, user(8)]):
        messages += extra
        prompt = qwen.render(messages, thinking=True)
        before = pieces.calls
        assert qwen._tokenize_prompt(prompt) == qwen.tokenize(prompt)  # the same tokens as whole
        if extra:
            assert pieces.calls - before <= len(extra) + 2  # new messages, the re-rendered answer, the header
    assert pieces.trusted is True


def test_piece_tokenizer_falls_back_when_pieces_do_not_add_up():
    from qwen_tui.engine.prompt_tokens import PieceTokenizer

    whole_only = PieceTokenizer(lambda text: [len(text)])  # a tokenizer whose pieces don't concatenate
    text = "<|im_start|>system\nhi<|im_end|>\n<|im_start|>user\nyo"
    assert whole_only(text) == [len(text)] and whole_only.trusted is False
    assert whole_only(text + "!") == [len(text) + 1]
