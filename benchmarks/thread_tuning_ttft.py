"""Time to first token with thread tuning on: is choosing the threads off the critical path?

Thread tuning ([speed] tune_threads, engine/thread_tuning.py) picks the thread counts before
every generation from what other processes use of the CPU. It used to find that out with a
0.1 s look at /proc/stat right before each generation; now a background look in the worker
(engine/cpu_load.RecentLoad) has the figure ready. Measured in one run, interleaved rounds:

1. The runner (worker side, in this process), one short chat prompt evaluated from an empty
   context, TTFT from llama.cpp's runner (Finished.timings.first_token_ms, which counts the
   choosing):
     before: the old look reproduced (a 0.1 s CpuLoad window right before choosing, as the old
             before_generate did), then the choice
     after:  tuning on, as shipped
     off:    no tuning at all (the floor)
2. The app's path (LocalEngine, worker process, events over the pipe): TTFT where the caller
   receives the first text, tuning on vs off.

    python benchmarks/thread_tuning_ttft.py [--model M.gguf] [--rounds 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from qwen_tui.testing import fixtures

# Between two requests. Longer than the background look's window (0.25-0.5 s), so that the
# previous request (another worker process, in part 2) does not count as a busy machine.
PAUSE_S = 0.6
PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def runner_rounds(model: str, rounds: int) -> dict[str, list[float]]:
    from qwen_tui.engine.llama_backend import LlamaRunner
    from qwen_tui.engine.params import LoadParams, Sampling

    runner = LlamaRunner(LoadParams(model, 2048, 2, 2, use_extra_bufts=False, tune_threads=True))
    tuner = runner.threads
    shipped = tuner.before_generate

    def old_before_generate():
        tuner.load.mark()
        tuner.load.others(0.1)  # what the old before_generate waited for, before every generation
        return shipped()

    tokens = runner.tokenize(PROMPT)
    out: dict[str, list[float]] = {"before": [], "after": [], "off": [], "look_ms": [], "after_threads": [],
                                   "off_threads": []}
    try:
        names = ["before", "after", "off"]
        for i in range(rounds + 1):
            for name in names[i % 3:] + names[:i % 3]:  # each goes first, second, third in turn
                if name == "off":
                    choice = tuner.choice
                    runner.set_threads(choice.n_threads, choice.n_threads_batch)  # what tuning chose
                runner.threads = None if name == "off" else tuner
                tuner.before_generate = old_before_generate if name == "before" else shipped
                runner._reset()  # an empty context: the prompt is evaluated every time
                time.sleep(PAUSE_S)
                done = runner.generate(tokens, max_tokens=1, sampling=Sampling(temperature=0),
                                       emit_text=lambda _t: None, cancelled=lambda: False)
                if i:  # round 0 warms up
                    out[name].append(done.timings.first_token_ms)
                    if name == "after":
                        out["look_ms"].append(done.extra["threads_look_ms"])
                        out["after_threads"].append(done.extra["n_threads"])
                    if name == "off":
                        out["off_threads"].append(tuner.choice.n_threads)
    finally:
        runner.threads = tuner
        tuner.before_generate = shipped
        runner.close()
    return out


def engine_rounds(model: str, rounds: int) -> dict[str, list[float]]:
    from qwen_tui.engine.events import TextDelta
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.engine.params import Sampling

    on = LocalEngine(model, n_ctx=2048, tune_threads=True)
    engines = {"on": on}
    out: dict[str, list] = {"on": [], "off": [], "look_ms": [], "on_threads": []}
    try:
        chosen = on.load().threads  # "off" runs with the counts tuning chose: only the choosing differs
        engines["off"] = LocalEngine(model, n_ctx=2048, n_threads=chosen.n_threads,
                                     n_threads_batch=chosen.n_threads_batch, tune_threads=False)
        engines["off"].load()
        out["off_threads"] = (chosen.n_threads, chosen.n_threads_batch)
        for i in range(rounds + 1):
            for name in ("on", "off") if i % 2 else ("off", "on"):
                engine = engines[name]
                time.sleep(PAUSE_S)
                # A different first message each time: no reuse of the previous prompt's cache.
                messages = [{"role": "user", "content": f"Question {i}: what is the capital of France?"}]
                t0 = time.perf_counter()
                first = None
                for event in engine.generate(messages, thinking=False, max_tokens=2, sampling=Sampling(temperature=0)):
                    if first is None and isinstance(event, TextDelta):
                        first = time.perf_counter() - t0
                if i and first is not None:
                    out[name].append(first * 1000)
                    if name == "on":
                        out["look_ms"].append(event.extra["threads_look_ms"])
                        out["on_threads"].append((event.extra["n_threads"], event.extra["n_threads_batch"]))
    finally:
        for engine in engines.values():
            engine.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a GGUF (default: the demo model of the test fixtures)")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    model = args.model or str(fixtures.demo_model())
    os.environ.setdefault("QWEN_TUI_HOME", tempfile.mkdtemp(prefix="qwen-tui-bench-"))  # own threads.json
    print(f"model: {os.path.basename(model)}, {args.rounds} interleaved rounds, medians; {os.cpu_count()} CPUs")

    # llama.cpp logs to stderr in this process: keep it out of the report.
    saved = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    try:
        r = runner_rounds(model, args.rounds)
    finally:
        os.dup2(saved, 2)
    med = {k: statistics.median(v) for k, v in r.items() if not k.endswith("_threads")}
    print(f"  runner TTFT, tuning on, before (0.1 s look each time): {med['before']:.1f} ms")
    print(f"  runner TTFT, tuning on, after (background look):       {med['after']:.1f} ms "
          f"= {med['after'] / med['before']:.2f}x before, {med['before'] - med['after']:.1f} ms less")
    print(f"  runner TTFT, tuning off (floor):                        {med['off']:.1f} ms; "
          f"tuning now costs {med['after'] - med['off']:+.1f} ms (choosing itself: {med['look_ms']:.2f} ms; "
          f"decode threads chosen per round: {r['after_threads']}, off used {r['off_threads']})")

    e = engine_rounds(model, args.rounds)
    on, off = statistics.median(e["on"]), statistics.median(e["off"])
    print(f"  LocalEngine TTFT (app path), tuning on: {on:.1f} ms vs off: {off:.1f} ms = {on / off:.2f}x "
          f"(choosing: {statistics.median(e['look_ms']):.2f} ms; threads chosen per round: {e['on_threads']}, "
          f"off: {e['off_threads']})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
