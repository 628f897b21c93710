"""Context checkpoints inside the runner: memory bounds, what they cost, and bad restores.

These drive `LlamaRunner` (the worker's side) directly, in the test process, on the real tiny
qwen35 model, because they reach into the checkpoint store (to bound it, or to corrupt it).
"""

from __future__ import annotations

import ctypes

import pytest

from qwen_tui.engine import checkpoints
from qwen_tui.engine.gguf_header import read_header
from qwen_tui.engine.llama_backend import LlamaRunner
from qwen_tui.engine.params import LoadParams, Sampling
from qwen_tui.engine.state_size import QWEN35_0_8B, QWEN35_9B, header_state_cost, state_cost
from qwen_tui.engine.template import render_chat

GREEDY = Sampling(temperature=0, ignore_eos=True)


def make_runner(path, **kw) -> LlamaRunner:
    return LlamaRunner(LoadParams(path=str(path), n_ctx=4096, n_threads=2, n_threads_batch=2, use_extra_bufts=False, **kw))


@pytest.fixture(scope="module")
def runner(tiny_qwen35_path):
    r = make_runner(tiny_qwen35_path)
    yield r
    r.close()


def ask(runner, template, messages, n=12):
    out: list[str] = []
    prompt = runner.tokenize(render_chat(template, messages, thinking=False))
    finished = runner.generate(prompt, max_tokens=n, sampling=GREEDY, emit_text=out.append, cancelled=lambda: False)
    return "".join(out), finished


def chat(runner, template, turns):
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Turn {i}: what about the number {i * 7}?"})
        text, _ = ask(runner, template, messages)
        messages.append({"role": "assistant", "content": text})
    return messages


def test_checkpoint_count_is_bounded_and_the_oldest_go(tiny_qwen35_path, qwen35_template):
    r = make_runner(tiny_qwen35_path, max_checkpoints=4)
    try:
        messages = chat(r, qwen35_template, 8)
        store = r.checkpoints
        assert len(store.items) == 4 and store.evicted > 0
        positions = store.positions()
        assert positions[0] < 40, "the first checkpoint (end of the system prompt) is kept"
        assert positions[-1] > len(r.cached) - 40, "the newest are kept"
        # Still cheap: the next turn restores one of the kept checkpoints.
        messages.append({"role": "user", "content": "One more."})
        _, finished = ask(r, qwen35_template, messages)
        assert finished.extra["restored_checkpoint_at"] in positions
        assert finished.usage.prompt_tokens_evaluated < 40
    finally:
        r.close()


def test_checkpoint_bytes_are_bounded(runner, qwen35_template):
    chat(runner, qwen35_template, 2)
    size = runner.checkpoints.items[-1].size
    store = checkpoints.CheckpointStore(max_count=100, max_bytes=3 * size)
    for n in range(1, 8):
        assert store.add(checkpoints.Checkpoint(n, 0, (ctypes.c_uint8 * size)()))
    assert store.total_bytes <= 3 * size and store.positions() == [1, 6, 7]
    assert not store.add(checkpoints.Checkpoint(9, 0, (ctypes.c_uint8 * (4 * size))())), "bigger than the cap"


def test_checkpoint_size_matches_the_formula_from_the_gguf(runner, tiny_qwen35_path, qwen35_template):
    chat(runner, qwen35_template, 1)
    cost = header_state_cost(read_header(tiny_qwen35_path))
    measured = runner.checkpoints.items[0].size
    assert cost.checkpoint_bytes <= measured <= cost.checkpoint_bytes + 1024  # + llama.cpp's headers
    assert cost.recurrent_layers == 3 and cost.attention_layers == 1
    # The published shapes (docs/context.md).
    assert round(state_cost(QWEN35_0_8B).checkpoint_bytes / 2**20, 1) == 19.3
    assert round(state_cost(QWEN35_9B).checkpoint_bytes / 2**20, 1) == 50.2
    assert state_cost(QWEN35_0_8B).kv_bytes_per_token == 12 * 1024
    assert state_cost(QWEN35_9B).kv_bytes_per_token == 32 * 1024


@pytest.mark.parametrize("damage", ["corrupt", "mismatched"])
def test_a_bad_restore_falls_back_to_a_full_evaluation(tiny_qwen35_path, qwen35_template, damage):
    r = make_runner(tiny_qwen35_path)
    clean = make_runner(tiny_qwen35_path)
    try:
        messages = chat(r, qwen35_template, 3)
        messages.append({"role": "user", "content": "And now?"})
        items = r.checkpoints.items
        if damage == "corrupt":
            for cp in items:
                ctypes.memset(cp.data, 0xFF, 16)  # the magic and the headers
        else:  # every checkpoint holds another position's state
            datas = [cp.data for cp in items]
            for cp, data in zip(items, datas[1:] + datas[:1]):
                cp.data = data
        text, finished = ask(r, qwen35_template, messages, n=20)
        assert finished.usage.prompt_tokens_evaluated == finished.usage.prompt_tokens
        expected, _ = ask(clean, qwen35_template, messages, n=20)
        assert text == expected
        # And the runner is healthy afterwards: the next turn restores a fresh checkpoint.
        messages += [{"role": "assistant", "content": text}, {"role": "user", "content": "Fine."}]
        _, finished = ask(r, qwen35_template, messages)
        assert finished.extra["restored_checkpoint_at"] is not None
    finally:
        r.close()
        clean.close()


def test_a_checkpoint_of_another_prefix_is_never_used(runner, qwen35_template):
    messages = chat(runner, qwen35_template, 2)
    target = runner.checkpoints.items[-1]
    target.key ^= 1  # as if it had been taken over different tokens
    messages[-1] = {"role": "assistant", "content": "rewritten"}
    messages.append({"role": "user", "content": "next"})
    _, finished = ask(runner, qwen35_template, messages)
    assert finished.extra["restored_checkpoint_at"] != target.n_tokens
    assert target not in runner.checkpoints.items


def test_cancel_inside_a_long_prompt_keeps_the_history(tiny_qwen35_path, qwen35_template):
    r = make_runner(tiny_qwen35_path)
    try:
        messages = chat(r, qwen35_template, 2)
        history = len(r.cached)
        messages.append({"role": "user", "content": "a long paste " * 700})  # ~2.1K tokens: 5 chunks
        prompt = r.tokenize(render_chat(qwen35_template, messages, thinking=False))
        inside = [False]
        decode = r._decode

        def tracking_decode(tokens, start_pos, logits_last=True):
            inside[0] = True
            try:
                return decode(tokens, start_pos, logits_last)
            finally:
                inside[0] = False

        r._decode = tracking_decode
        # True only from llama.cpp's abort callback, inside the third chunk: an aborted batch.
        finished = r.generate(prompt, max_tokens=4, sampling=GREEDY, emit_text=lambda _: None,
                              cancelled=lambda: inside[0] and len(r.cached) > history + 1000)
        r._decode = decode
        assert finished.reason == "cancelled"
        kept = len(r.cached)
        assert history - 64 <= kept < len(prompt), "the memory still holds the history"
        # Sent again: only what was not kept is evaluated, and the answer is a fresh run's.
        out: list[str] = []
        finished = r.generate(prompt, max_tokens=12, sampling=GREEDY, emit_text=out.append, cancelled=lambda: False)
        assert finished.usage.prompt_tokens_evaluated == len(prompt) - kept
        clean = make_runner(tiny_qwen35_path)
        try:
            expected: list[str] = []
            clean.generate(prompt, max_tokens=12, sampling=GREEDY, emit_text=expected.append, cancelled=lambda: False)
        finally:
            clean.close()
        assert out == expected
    finally:
        r.close()
