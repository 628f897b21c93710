"""Decode speed with 1 vs 2 threads while another process uses a little CPU (the UI streaming).

llama.cpp's threads spin at every barrier, so a thread that shares its core with another busy
process stalls the others. While the app streams, its UI process draws the text: about 12% of
one core (benchmarks/tui_stream.py). Does that make 1 decode thread faster than 2 on a 2-core
machine? Measured in one run, interleaved: LocalEngine headless (as `-p` uses it), the demo
model, a fixed number of tokens (ignore_eos), 1 and 2 threads, with and without a second
process that works `--busy-ms` every 100 ms.

    python benchmarks/threads_vs_ui_load.py [--model M.gguf] [--tokens 256] [--rounds 3] [--busy-ms 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from qwen_tui.testing import fixtures

BURNER = """
import time, sys
busy = float(sys.argv[1]) / 1000
while True:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < busy:
        pass
    time.sleep(max(0.0, 0.1 - busy))
"""


def decode_tps(engine, tokens: int) -> float:
    from qwen_tui.engine.params import Sampling

    done = list(engine.generate([{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                                thinking=False, max_tokens=tokens, sampling=Sampling(temperature=0, ignore_eos=True)))[-1]
    return done.timings.tokens_per_s(done.usage.completion_tokens)


def main() -> None:
    from qwen_tui.engine.local import LocalEngine

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a GGUF (default: the demo model of the test fixtures)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy-ms", type=float, default=12.0, help="the other process's work per 100 ms")
    args = parser.parse_args()
    model = args.model or str(fixtures.demo_model())
    os.environ.setdefault("QWEN_TUI_HOME", tempfile.mkdtemp(prefix="qwen-tui-bench-"))
    print(f"model: {os.path.basename(model)}, {args.tokens} tokens, {args.rounds} interleaved rounds, medians; "
          f"{os.cpu_count()} CPUs; other process: {args.busy_ms:.0f} ms of work every 100 ms")
    engines = {n: LocalEngine(model, n_ctx=4096, n_threads=n, n_threads_batch=n) for n in (1, 2)}
    results: dict[tuple[int, bool], list[float]] = {(n, b): [] for n in engines for b in (False, True)}
    try:
        for engine in engines.values():
            engine.load()
            decode_tps(engine, 16)  # warm-up
        for _ in range(args.rounds):
            for busy in (False, True):
                burner = subprocess.Popen([sys.executable, "-c", BURNER, str(args.busy_ms)]) if busy else None
                try:
                    time.sleep(0.3)
                    for n, engine in engines.items():
                        results[(n, busy)].append(decode_tps(engine, args.tokens))
                finally:
                    if burner is not None:
                        burner.kill()
                        burner.wait()
    finally:
        for engine in engines.values():
            engine.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    for busy, label in ((False, "idle machine"), (True, f"other process {args.busy_ms:.0f}% of a core")):
        one, two = med[(1, busy)], med[(2, busy)]
        print(f"  {label:>28}: 1 thread {one:.1f} tok/s, 2 threads {two:.1f} tok/s = 2 threads at {two / one:.2f}x 1 thread")
    print(f"  the other process costs 2 threads {1 - med[(2, True)] / med[(2, False)]:.0%} of their speed, "
          f"1 thread {1 - med[(1, True)] / med[(1, False)]:.0%}")


if __name__ == "__main__":
    main()
