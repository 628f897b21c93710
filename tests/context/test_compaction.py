"""Compaction with the real demo model in a small (2,048-token) window: long conversations
complete without a llama.cpp context error, summaries are marked and undoable, nothing is lost,
and oversized inputs are cut with a marker before they are sent."""

from __future__ import annotations

import pytest

from qwen_tui.agent.events import AgentFinished, Notice
from qwen_tui.agent.loop import Agent
from qwen_tui.context.budget import ContextSettings
from qwen_tui.context.compaction import Compactor, ContextOverflow, elide
from qwen_tui.context.persist import assign_store_ids, messages_from_record, save_compaction, undo_saved_compaction
from qwen_tui.conversation import SUMMARY_HEADER, Conversation, Message
from qwen_tui.engine.local import LocalEngine
from qwen_tui.session_log import SessionLog
from qwen_tui.store import SessionStore

N_CTX = 2048
TURNS = 7
SETTINGS = ContextSettings(reply_reserve=256, summary_max_tokens=48, keep_recent_turns=1)
TOPICS = ["gardening", "volcanoes", "chess openings", "sourdough", "tides", "jazz chords", "glaciers", "beekeeping",
          "lighthouses", "origami", "comets", "violins"]


@pytest.fixture(scope="module")
def engine(tiny_qwen35_path):
    """The tiny random-weight qwen35 (Qwen 3.5's tokenizer, template and hybrid layout): fast."""
    engine = LocalEngine(tiny_qwen35_path, n_ctx=N_CTX, n_threads=1, n_threads_batch=1)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def demo_engine(demo_model_path):
    """The demo model (SmolLM2-135M, a real instruct model), in a 1,024-token window."""
    engine = LocalEngine(demo_model_path, n_ctx=1024, n_threads=1, n_threads_batch=1)
    engine.load()
    yield engine
    engine.close()


def long_question(i: int, facts: int = 50) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return f"Question {i} about {topic}: " + " ".join(f"Tell me fact {k} about {topic}." for k in range(facts))


def everything(conversation: Conversation) -> list[Message]:
    """The conversation with every compaction undone in place (originals, in order)."""
    out = []
    for m in conversation.messages:
        if m.kind == "summary":
            out.extend(everything(Conversation(messages=list(m.replaced))))
        else:
            out.append(m)
    return out


def original_text(m: Message) -> str:
    return m.original if m.original is not None else m.content


@pytest.mark.parametrize("model", ["engine", "demo_engine"])
def test_a_conversation_pushed_past_n_ctx_completes_with_compactions(request, model):
    engine = request.getfixturevalue(model)
    n_ctx = engine.info.n_ctx
    facts = 50 if n_ctx >= 2048 else 22

    def long_question(i: int) -> str:
        return globals()["long_question"](i, facts)

    compactor = Compactor(engine, SETTINGS)
    conversation = Conversation(system_prompt="You are a helpful assistant.")
    conversation.messages.append(Message("user", "My name is Ada; remember it.", pinned=True))
    conversation.messages.append(Message("assistant", "Hello Ada.", finish_reason="stop"))
    reports, sent_total = [], 0
    for i in range(TURNS):
        conversation.add_user(long_question(i))
        report = compactor.ensure_fits(conversation, max_tokens=64)
        if report is not None:
            reports.append(report)
            assert report.tokens_after <= compactor.budget(64).limit
        agent = Agent(engine, fit=compactor.fit_request)
        finished = [e for e in agent.run(conversation.for_template(), max_tokens=24)][-1]
        assert isinstance(finished, AgentFinished)
        assert finished.reason == "answered", finished.error  # never "the prompt has N tokens; the context holds M"
        conversation.messages.append(Message.from_template(finished.messages[-1]))
        sent_total += compactor.last_measure[0]
    assert sent_total > 2 * n_ctx  # the session really went well past the window
    summaries = [r for r in reports if r.summary is not None]
    assert summaries, [r.describe() for r in reports]
    # The summary is marked for the model, and the pinned message and the latest turn stayed verbatim.
    current = conversation.for_template()
    assert any(m["content"].startswith(SUMMARY_HEADER) for m in current)
    assert {"role": "user", "content": "My name is Ada; remember it."} in current
    assert [m for m in current if m["role"] == "user"][-1] == {"role": "user", "content": long_question(TURNS - 1)}
    # Nothing was lost: every question is still there, in order, under the summaries.
    asked = [original_text(m) for m in everything(conversation) if m.role == "user" and m.kind != "summary"]
    assert asked == ["My name is Ada; remember it.", *[long_question(i) for i in range(TURNS)]]
    for r in summaries:
        if model == "demo_engine":  # a real instruct model writes the summary itself
            assert r.summary_tokens > 0 and r.summary_error is None and r.summary.content.strip()
        else:  # random weights may stop at once: then the summary says so and lists the requests
            assert r.summary_error is None or r.summary.content.startswith("(No model summary: ")


def test_undo_restores_the_conversation_exactly(engine):
    compactor = Compactor(engine, SETTINGS)
    conversation = Conversation(system_prompt="Be brief.")
    for i in range(4):
        conversation.add_user(long_question(i))
        conversation.messages.append(Message("assistant", f"Answer {i}: " + "blah " * 60, finish_reason="stop"))
        conversation.messages.append(Message("tool", f"output {i}\n" + "data line\n" * 400))
    conversation.add_user("And now?")
    before = conversation.for_template()
    report = compactor.ensure_fits(conversation, max_tokens=64, force=True)
    assert report.summary is not None and report.tokens_after < report.tokens_before
    assert conversation.for_template() != before
    changed = conversation.undo_compaction()
    assert changed
    assert conversation.for_template() == before
    assert conversation.compaction_numbers() == []


def test_old_tool_outputs_are_elided_before_anything_is_summarised(engine):
    compactor = Compactor(engine, ContextSettings(reply_reserve=256, keep_recent_turns=1, tool_output_keep_chars=300))
    conversation = Conversation()
    outputs = []
    for i in range(4):
        conversation.add_user(f"Run step {i}")
        conversation.messages.append(Message("assistant", "", tool_calls=[
            {"type": "function", "function": {"name": "run", "arguments": {"step": i}}}], finish_reason="stop"))
        outputs.append(f"step {i} log\n" + "".join(f"line {k} of the build log\n" for k in range(80)))
        conversation.messages.append(Message("tool", outputs[-1]))
        conversation.messages.append(Message("assistant", f"Step {i} passed.", finish_reason="stop"))
    conversation.add_user("Summarise the build.")
    report = compactor.ensure_fits(conversation, max_tokens=64)
    assert report is not None and report.elided and report.summary is None
    assert report.tokens_after <= compactor.budget(64).target
    tools = [m for m in conversation.messages if m.role == "tool"]
    assert all("elided by qwen-tui" in m.content for m in tools)
    assert [m.original for m in tools] == outputs  # the full outputs are kept
    assert tools[0].content.startswith("step 0 log\nline 0")  # head ...
    assert tools[0].content.endswith("line 79 of the build log\n")  # ... and tail


def test_a_1mb_tool_result_is_cut_with_a_marker_and_the_model_answers(engine):
    huge = "".join(f"{i:07d} some tool output text\n" for i in range(35_000))  # 1.05 MB
    assert len(huge) > 1_000_000
    messages = [
        {"role": "user", "content": "Read the log."},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "read", "arguments": {}}}]},
        {"role": "tool", "content": huge},
    ]
    compactor = Compactor(engine, SETTINGS)
    agent = Agent(engine, fit=compactor.fit_request)
    events = list(agent.run(messages, max_tokens=32))
    finished = events[-1]
    assert finished.reason == "answered", finished.error
    tool = finished.messages[2]
    assert "qwen-tui cut" in tool["content"] and tool["_original"] == huge
    assert tool["content"].startswith("0000000 some tool output") and tool["content"].endswith("0034999 some tool output text\n")
    assert compactor.last_measure[0] <= compactor.budget(32).limit
    assert any(isinstance(e, Notice) and "cut to fit" in e.text for e in events)
    # the conversation keeps the full text of what the model saw cut
    assert Message.from_template(tool).original == huge


def test_a_huge_pasted_prompt_is_cut_and_answered(engine):
    pasted = "Please review this file:\n" + "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(6000))
    conversation = Conversation()
    conversation.add_user(pasted)
    compactor = Compactor(engine, SETTINGS)
    report = compactor.ensure_fits(conversation, max_tokens=64)
    assert report is not None and report.truncated and report.tokens_after <= compactor.budget(64).limit
    message = conversation.messages[0]
    assert "qwen-tui cut" in message.content and message.original == pasted
    assert message.content.startswith("Please review this file:\ndef f0(x):")
    finished = list(Agent(engine, fit=compactor.fit_request).run(conversation.for_template(), max_tokens=32))[-1]
    assert finished.reason == "answered", finished.error
    conversation.undo_compaction()
    assert message.content == pasted and message.original is None


def test_a_system_prompt_larger_than_the_window_is_an_error_before_llama_cpp(engine):
    compactor = Compactor(engine, SETTINGS)
    messages = [{"role": "system", "content": "rule " * 5000}, {"role": "user", "content": "hi"}]
    with pytest.raises(ContextOverflow, match="system prompt or the tool list is too large"):
        compactor.fit_request(messages, max_tokens=64)
    finished = list(Agent(engine, fit=compactor.fit_request).run(messages, max_tokens=64))[-1]
    assert finished.reason == "error" and "too large for this context size" in finished.error
    assert "\n" not in finished.error


def test_compaction_is_saved_and_can_be_undone_after_a_resume(engine, tmp_path):
    store = SessionStore(tmp_path / "s.sqlite3")
    log = SessionLog(store, workspace=tmp_path, model="demo")
    conversation = Conversation()
    for i in range(3):
        conversation.add_user(long_question(i))
        log.user(long_question(i))
        conversation.messages.append(Message("assistant", f"Answer {i}.", finish_reason="stop"))
        log.start_answer()
        log.answer_delta(content=f"Answer {i}.")
        log.finish_answer("stop")
    conversation.add_user("Last one?")
    log.user("Last one?")
    compactor = Compactor(engine, SETTINGS)
    assign_store_ids(store, log.session_id, conversation)
    report = compactor.ensure_fits(conversation, max_tokens=64, force=True)
    assert report.summary is not None
    assert save_compaction(log, conversation, report.number) is None
    # a later run resumes it: the model sees the summary, the originals are still there
    record = store.load(log.session_id)
    resumed = Conversation(messages=messages_from_record(record))
    assert resumed.for_template() == conversation.for_template()
    summary = resumed.messages[0]
    assert summary.kind == "summary" and [m.content for m in summary.replaced][:2] == [long_question(0), "Answer 0."]
    changed = resumed.undo_compaction()
    assert undo_saved_compaction(log, changed) is None
    again = Conversation(messages=messages_from_record(store.load(log.session_id)))
    assert [m.content for m in again.messages] == [
        long_question(0), "Answer 0.", long_question(1), "Answer 1.", long_question(2), "Answer 2.", "Last one?"]
    assert all(m.kind == "" for m in again.messages)
    store.close()


def test_elide_keeps_head_and_tail_and_says_how_much_went():
    text = "A" * 1000 + "B" * 1000
    out = elide(text, 300)
    assert out.startswith("A" * 200) and out.endswith("B" * 100)
    assert "1,700 of 2,000 characters" in out
    assert elide("short", 300) == "short"


def test_headless_p_with_a_huge_piped_input_answers_instead_of_overflowing(tiny_qwen35_path, tmp_path):
    """`cat big.log | qwen-tui -p ...` in a 1,024-token window: cut with a marker, answered, saved."""
    import json
    import os
    import subprocess
    import sys

    piped = "".join(f"{i:06d} ERROR something failed in module {i % 17}\n" for i in range(6000))  # ~260 KB
    env = {**os.environ, "QWEN_TUI_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "qwen_tui", "--model", str(tiny_qwen35_path), "--ctx", "1024", "-p", "What went wrong?",
         "--max-tokens", "8", "--no-think", "--json", "--threads", "1", "--no-tools"],
        input=piped, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    compaction = next(e for e in events if e["type"] == "compaction")
    assert compaction["truncated"] == 1 and compaction["tokens_after"] < 1024 < compaction["tokens_before"]
    assert "the prompt has" not in proc.stdout + proc.stderr
    session = next(e for e in events if e["type"] == "session")["id"]
    with SessionStore(tmp_path / "data" / "sessions.sqlite3") as store:
        record = store.load(session)
        cut = next(m for m in record.active_messages if m.role == "summary")
        assert cut.summary_kind == "elision" and "qwen-tui cut" in cut.content
        original = next(m for m in record.messages if m.compacted_by == cut.id)
        assert original.role == "user" and original.content == "What went wrong?\n\n" + piped  # kept whole


@pytest.mark.parametrize("model", ["engine", "demo_engine"])
def test_the_summary_request_continues_the_cached_conversation(request, model):
    """Summarising costs the instruction, not the whole history again: the request is the
    conversation's own beginning plus one instruction, which the engine finds in its cache."""
    engine = request.getfixturevalue(model)
    compactor = Compactor(engine, SETTINGS)
    conversation = Conversation(system_prompt="Be brief.")
    for i in range(3):
        conversation.add_user(long_question(i, 12))
        finished = list(Agent(engine, fit=compactor.fit_request).run(conversation.for_template(), max_tokens=8,
                                                                      thinking=False))[-1]
        conversation.messages.append(Message.from_template(finished.messages[-1]))
    report = compactor.ensure_fits(conversation, max_tokens=64, force=True, thinking=False)
    assert report.summary is not None and len(report.summary.replaced) == 4
    assert report.summary_prompt_tokens > 250
    # tokens actually evaluated for the summary request: the instruction and little more
    assert report.summary_evaluated < report.summary_prompt_tokens / 3, (report.summary_evaluated, report.summary_prompt_tokens)
