"""When the window fills: a chat pushed to 4x n_ctx total tokens, with and without compaction.

In one run, on the same model and context size:

1. without the context manager: the turn at which llama.cpp refuses the prompt (the baseline);
2. with it (`Compactor.ensure_fits` at each turn start, `fit_request` before each model call, as
   the app and `-p` do): every turn answers; how many compactions there were, what each cost
   (seconds, summary tokens), and that cost next to an ordinary turn's;
3. the exact token accounting per turn: cached pieces vs tokenizing the whole prompt again.

    python benchmarks/context_compaction.py [--model M.gguf] [--ctx 2048] [--quick]
    (default: the tiny qwen35 fixture; --quick: 1,024-token window)
"""

from __future__ import annotations

import argparse
import statistics
import time

from qwen_tui.agent.loop import Agent
from qwen_tui.context.budget import ContextSettings, TokenCounter
from qwen_tui.context.compaction import Compactor
from qwen_tui.conversation import Conversation, Message
from qwen_tui.engine.local import LocalEngine
from qwen_tui.testing import fixtures

TOPICS = ["gardening", "volcanoes", "chess", "sourdough", "tides", "jazz", "glaciers", "bees", "comets", "violins"]


def question(i: int, facts: int) -> str:
    topic = TOPICS[i % len(TOPICS)]
    return f"Question {i} about {topic}: " + " ".join(f"Tell me fact {k} about {topic}." for k in range(facts))


def turn(engine, messages, fit=None, max_tokens=32):
    start = time.perf_counter()
    finished = list(Agent(engine, fit=fit).run(messages, max_tokens=max_tokens, thinking=False))[-1]
    return finished, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_ctx = 1024 if args.quick else args.ctx
    facts = max(8, n_ctx // 80)
    engine = LocalEngine(args.model or fixtures.tiny_qwen35(), n_ctx=n_ctx, n_threads=1, n_threads_batch=1)
    info = engine.load()
    print(f"model: {info.name} ({info.architecture}), n_ctx {n_ctx}, ~{facts * 8} tokens per question")

    # 1. the baseline: no context manager
    conversation = Conversation(system_prompt="You are a helpful assistant.")
    failed_at, error = None, ""
    for i in range(200):
        conversation.add_user(question(i, facts))
        finished, _ = turn(engine, conversation.for_template())
        if finished.reason == "error":
            failed_at, error = i + 1, finished.error
            break
        conversation.messages.append(Message.from_template(finished.messages[-1]))
    print(f"without compaction: turn {failed_at} fails: {error}")

    # 2. with it, until the session's total reaches 4 x n_ctx
    settings = ContextSettings(reply_reserve=256, summary_max_tokens=64)
    compactor = Compactor(engine, settings)
    counter = compactor.counter
    conversation = Conversation(system_prompt="You are a helpful assistant.")
    total_tokens, turns, errors = 0, 0, 0
    turn_s, compactions = [], []
    while total_tokens < 4 * n_ctx:
        text = question(turns, facts)
        conversation.add_user(text)
        total_tokens += counter.count_text(text)
        report = compactor.ensure_fits(conversation, max_tokens=32, thinking=False)
        if report is not None and report.changed:
            compactions.append(report)
        finished, seconds = turn(engine, conversation.for_template(), fit=compactor.fit_request)
        turns += 1
        errors += finished.reason == "error"
        turn_s.append(seconds)
        answer = Message.from_template(finished.messages[-1])
        conversation.messages.append(answer)
        total_tokens += counter.count_text(answer.content)
    cost = [r.seconds for r in compactions]
    print(f"with compaction: {turns} turns, {total_tokens:,} tokens in all ({total_tokens / n_ctx:.1f}x n_ctx), "
          f"{errors} errors, {len(compactions)} compactions "
          f"({sum(r.summary is not None for r in compactions)} with a model summary, "
          f"{sum(len(r.elided) for r in compactions)} elisions, {sum(len(r.truncated) for r in compactions)} cuts)")
    if compactions:
        print(f"compaction cost: mean {statistics.mean(cost):.2f} s, max {max(cost):.2f} s, "
              f"summary tokens mean {statistics.mean(r.summary_tokens for r in compactions):.0f}; "
              f"tokens before/after mean {statistics.mean(r.tokens_before for r in compactions):.0f}"
              f"/{statistics.mean(r.tokens_after for r in compactions):.0f}")
        summarised = [r for r in compactions if r.summary is not None and r.summary_prompt_tokens]
        if summarised:
            print(f"summary requests: {statistics.mean(r.summary_prompt_tokens for r in summarised):.0f} prompt tokens, "
                  f"{statistics.mean(r.summary_evaluated for r in summarised):.0f} evaluated (mean; the rest from the cache)")
        print(f"compaction / median turn: {statistics.mean(cost) / statistics.median(turn_s):.2f}x "
              f"(median turn {statistics.median(turn_s):.2f} s)")

    # 3. exact accounting: cached pieces vs a whole-prompt tokenize, same prompt, per turn
    messages = conversation.for_template()
    fresh = TokenCounter(engine)
    fresh.prompt_tokens(messages[:-1])
    start = time.perf_counter()
    n_cached = fresh.prompt_tokens(messages)
    cached_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    n_whole = len(engine.tokenize(engine.render(messages)))
    whole_ms = (time.perf_counter() - start) * 1000
    assert n_cached == n_whole + fresh._bos(engine.render(messages)), (n_cached, n_whole)
    print(f"token accounting of the last prompt ({n_whole:,} tokens, exact): {cached_ms:.2f} ms cached vs "
          f"{whole_ms:.2f} ms whole ({whole_ms / max(cached_ms, 1e-6):.1f}x)")
    engine.close()
    print(f"compactions for 4x n_ctx: {len(compactions)}, errors: {errors} (without: failed at turn {failed_at})")


if __name__ == "__main__":
    main()
