"""The in-process engine on real llama.cpp: streaming, thinking, cancellation, crash containment."""

from __future__ import annotations

import json
import threading
import time

import pytest

from qwen_tui.engine.errors import EngineCrashed, ModelLoadError
from qwen_tui.engine.events import Finished, Notice, ReasoningDelta, TextDelta
from qwen_tui.engine.local import LocalEngine, remembered_extra_bufts
from qwen_tui.engine.params import Sampling

GREEDY = Sampling(temperature=0)
CHAT = [{"role": "user", "content": "Tell me a long story about a dragon."}]


@pytest.fixture(scope="module")
def demo(demo_model_path):
    engine = LocalEngine(demo_model_path, n_ctx=4096)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def qwen(tiny_qwen35_path):
    engine = LocalEngine(tiny_qwen35_path, n_ctx=8192)
    engine.load()
    yield engine
    engine.close()


def texts(events, kind=TextDelta):
    return "".join(e.text for e in events if isinstance(e, kind))


def test_demo_streams_a_real_answer(demo):
    events = list(demo.generate([{"role": "user", "content": "What is the capital of France? Answer in one word."}], max_tokens=40, sampling=GREEDY))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason in ("stop", "length")
    deltas = [e for e in events if isinstance(e, TextDelta)]
    # The worker batches text every 30 ms (engine/worker.py TextBatcher; a ~7-token answer at
    # ~100 tok/s is 2-3 pieces): still in pieces, the first at once, never all at the end.
    assert len(deltas) >= 2, "the answer must arrive in pieces, not at once"
    assert "Paris" in texts(events)
    assert finished.usage.completion_tokens >= len(deltas) - 1
    assert finished.timings.decode_ms > 0 and finished.timings.prompt_ms > 0
    assert all(isinstance(e, TextDelta) for e in events[:-1])


def test_same_seed_same_answer(demo):
    sampling = Sampling(temperature=0.8, seed=42)
    a = texts(demo.generate(CHAT, max_tokens=30, sampling=sampling))
    b = texts(demo.generate(CHAT, max_tokens=30, sampling=sampling))
    assert a == b and a


def test_info_describes_the_model(demo, demo_model_path):
    info = demo.info
    assert info.architecture == "llama" and info.n_ctx == 4096 and info.n_ctx_train == 8192
    assert info.threads.n_threads >= 1 and info.threads.reason
    assert info.path == demo_model_path


def test_qwen35_thinking_is_split_from_the_answer(qwen):
    grammar = 'root ::= "Let me think." "</think>" "\\n\\n" "Hi there!"'
    events = list(qwen.generate([{"role": "user", "content": "hello"}], thinking=True, max_tokens=40,
                                sampling=Sampling(temperature=0, grammar=grammar)))
    assert texts(events, ReasoningDelta) == "Let me think."
    assert texts(events) == "Hi there!"
    assert events[-1].reason == "stop"
    # reasoning strictly before the answer
    kinds = [type(e) for e in events[:-1]]
    assert kinds == sorted(kinds, key=lambda k: k is TextDelta)


def test_qwen35_thinking_off_puts_everything_in_the_answer(qwen):
    grammar = 'root ::= "Direct answer."'
    events = list(qwen.generate([{"role": "user", "content": "hello"}], thinking=False, max_tokens=20,
                                sampling=Sampling(temperature=0, grammar=grammar)))
    assert texts(events, ReasoningDelta) == ""
    assert texts(events) == "Direct answer."


def test_extending_the_conversation_reuses_the_cache(qwen):
    first = [{"role": "user", "content": "one two three " * 50}]
    a = list(qwen.generate(first, thinking=False, max_tokens=8, sampling=GREEDY))[-1]
    assert a.usage.prompt_tokens_evaluated == a.usage.prompt_tokens
    prompt_a = qwen.render(first, thinking=False)
    # A raw prompt that extends exactly what is in the model's memory: only the new tokens run.
    reply = texts(qwen.generate(prompt=prompt_a + "x", max_tokens=1, sampling=GREEDY))
    longer = prompt_a + "x" + " four five six"
    b = list(qwen.generate(prompt=longer, max_tokens=4, sampling=GREEDY))[-1]
    assert b.usage.prompt_tokens_evaluated < 10, (b.usage, reply)


def test_cancel_during_decode_returns_quickly_and_engine_stays_usable(demo):
    for _ in range(3):
        events = demo.generate(CHAT, max_tokens=2000, sampling=Sampling(temperature=0.8, seed=1))
        seen = 0
        for event in events:
            if isinstance(event, TextDelta):
                seen += 1
                if seen == 5:
                    t0 = time.perf_counter()
                    demo.cancel()
            if isinstance(event, Finished):
                latency = time.perf_counter() - t0
                break
        assert event.reason == "cancelled"
        assert latency < 0.25, f"cancel took {latency * 1000:.0f} ms"
    after = list(demo.generate([{"role": "user", "content": "Say hi"}], max_tokens=5, sampling=GREEDY))
    assert after[-1].reason in ("stop", "length") and texts(after)


def test_cancel_during_a_long_prompt(demo):
    long_prompt = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 100}]
    timer = threading.Timer(0.15, demo.cancel)
    t0 = time.perf_counter()
    timer.start()
    events = list(demo.generate(long_prompt, max_tokens=50, sampling=GREEDY))
    elapsed = time.perf_counter() - t0
    assert events[-1].reason == "cancelled"
    assert elapsed < 0.15 + 0.25, f"took {elapsed * 1000:.0f} ms"
    assert list(demo.generate(CHAT, max_tokens=3, sampling=GREEDY))[-1].reason == "length"


def test_abandoning_a_stream_leaves_the_engine_usable(demo):
    stream = demo.generate(CHAT, max_tokens=500, sampling=GREEDY)
    next(stream)
    stream.close()
    done = list(demo.generate(CHAT, max_tokens=3, sampling=GREEDY))
    assert done[-1].reason == "length"


@pytest.mark.parametrize("how, signal_name", [("assert", "SIGABRT"), ("segfault", "SIGSEGV")])
def test_a_crash_in_llama_cpp_is_survived(qwen, how, signal_name):
    with pytest.raises(EngineCrashed) as info:
        qwen.crash_for_test(how)
    assert info.value.signal_name == signal_name
    if how == "assert":
        assert "GGML_ASSERT" in str(info.value)
    events = list(qwen.generate([{"role": "user", "content": "still there?"}], thinking=False, max_tokens=4, sampling=GREEDY))
    assert events[-1].reason == "length"


def test_crash_in_batched_decode_retries_without_extra_buffer_types(tiny_qwen35_path, monkeypatch, tmp_path):
    """What llama.cpp's AMX kernels do on some Xeons, injected: the app recovers and remembers."""
    monkeypatch.setenv("QWEN_TUI_INJECT_FAULT", "batched-decode-with-extra-bufts")
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    assert remembered_extra_bufts() is True
    with LocalEngine(tiny_qwen35_path, n_ctx=4096) as engine:
        engine.load()
        assert engine.info.use_extra_bufts is True
        events = list(engine.generate([{"role": "user", "content": "hello there"}], thinking=False, max_tokens=4, sampling=GREEDY))
        notices = [e.text for e in events if isinstance(e, Notice)]
        assert len(notices) == 1 and "SIGABRT" in notices[0] and "extra buffer types" in notices[0]
        assert events[-1].reason == "length" and events[-1].usage.completion_tokens == 4
        assert engine.info.use_extra_bufts is False
    assert remembered_extra_bufts() is False
    machine = json.loads((tmp_path / "cache" / "machine.json").read_text())
    assert any("SIGABRT" in entry["reason"] for entry in machine.values())
    with LocalEngine(tiny_qwen35_path, n_ctx=4096) as engine:  # next start: no crash at all
        engine.load()
        assert engine.info.use_extra_bufts is False
        events = list(engine.generate([{"role": "user", "content": "hello"}], thinking=False, max_tokens=2, sampling=GREEDY))
        assert not [e for e in events if isinstance(e, Notice)]


def test_unknown_architecture_is_a_clear_load_error(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "notarealarch")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    engine = LocalEngine(path, n_ctx=128)
    with pytest.raises(ModelLoadError, match="unknown model architecture: 'notarealarch'"):
        engine.load()
    assert not engine.alive


def test_streamed_text_is_sent_in_batches_the_first_piece_at_once():
    # The worker sends text at most every TEXT_INTERVAL_S (a wake-up of the app per token took CPU
    # from llama.cpp's threads); nothing is lost, the first piece is not held back.
    from qwen_tui.engine.worker import TextBatcher

    sent = []
    batcher = TextBatcher(sent.append, interval=60.0)
    batcher("Hel")
    assert sent == [("text", "Hel")]  # the first token goes out at once (time to first token)
    for piece in ("lo", ", ", "world"):
        batcher(piece)
    assert sent == [("text", "Hel")]  # within the interval: held
    batcher.flush()
    assert sent == [("text", "Hel"), ("text", "lo, world")]
    batcher.flush()
    assert len(sent) == 2  # nothing left: no empty message
    every = TextBatcher(sent.append, interval=0.0)
    every("a")
    every("b")
    assert sent[-2:] == [("text", "a"), ("text", "b")]
