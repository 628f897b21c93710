"""Flash attention on vs. off on this CPU, same model, prompt, threads and greedy sampling, one run.

For each model and context fill (tokens already in the cache) we load LocalEngine with
`flash_attn="on"` and `"off"` ([speed] flash_attn), fill the cache, then time an extension of the
prompt (llama.cpp's own prompt-eval ms per token, llama_perf_context) and a decode of `--tokens`
tokens after it (tokens/s from llama_perf_context's eval time). Both settings see the same
tokens. The ratios (on / off) decide what `flash_attn = "auto"` means on CPU
(qwen_tui/engine/params.py CPU_FLASH_ATTN); a GPU keeps llama.cpp's auto.

    flock /tmp/qwen-cpu.lock python benchmarks/flash_attn.py [--quick] [--shaped] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from context_turns import user_message  # noqa: E402

from qwen_tui.engine.events import Finished  # noqa: E402
from qwen_tui.engine.local import LocalEngine  # noqa: E402
from qwen_tui.engine.params import Sampling, SpeculativeParams  # noqa: E402

GREEDY = Sampling(temperature=0, ignore_eos=True)


def text_of(engine: LocalEngine, n_tokens: int, salt: int) -> str:
    """Plain text of about n_tokens tokens (whole user messages)."""
    parts, total, turn = [], 0, salt
    while total < n_tokens:
        msg = user_message(turn, 90) + "\n"
        parts.append(msg)
        total += len(engine.tokenize(msg))
        turn += 1
    return "".join(parts)


def measure(path: Path, fa: str, fills: list[int], extend: int, tokens: int, threads: int) -> dict[int, tuple[float, float]]:
    """fill -> (prompt-eval ms per token of the extension, decode tokens/s)."""
    out = {}
    with LocalEngine(path, n_ctx=max(fills) + extend + tokens + 256, n_threads=threads, n_threads_batch=threads,
                     flash_attn=fa, speculative=SpeculativeParams(mode="off"), tune_threads=False) as engine:
        info = engine.load()
        assert info.extra.get("flash_attn") == fa, info.extra.get("flash_attn")
        list(engine.generate(prompt=text_of(engine, 600, 500), max_tokens=2, sampling=GREEDY))  # warm up
        for fill in fills:
            base = text_of(engine, fill, 0) if fill else ""
            if base:
                list(engine.generate(prompt=base, max_tokens=1, sampling=GREEDY))
            prompt = base + text_of(engine, extend, 10_000)
            engine.perf_reset()
            for event in engine.generate(prompt=prompt, max_tokens=tokens, sampling=GREEDY):
                if isinstance(event, Finished):
                    assert event.reason != "error", event.error
            perf = engine.perf()
            out[fill] = (perf["t_p_eval_ms"] / max(1, perf["n_p_eval"]),
                         perf["n_eval"] / (perf["t_eval_ms"] / 1000) if perf["t_eval_ms"] else 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fills 0 and 2K only, 16 tokens")
    parser.add_argument("--model", type=Path, help="a GGUF (default: the demo model and the tiny qwen35 fixture)")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--shaped", action="store_true",
                        help="also random weights at Qwen 3.5 0.8B's per-block widths (benchmarks/context_turns.py --model shaped08)")
    args = parser.parse_args()
    from qwen_tui.testing import fixtures

    threads = os.cpu_count() or 1
    fills = [0, 2048] if args.quick else [0, 2048, 8192]
    tokens = 16 if args.quick else args.tokens
    models = [args.model] if args.model else [fixtures.demo_model(), fixtures.tiny_qwen35()]
    if args.shaped and not args.model:
        models.append(fixtures.shaped_qwen35_0_8b())
    print(f"threads {threads}; prompt extension of ~256 tokens, then {tokens} decoded tokens, at each fill")
    print("model                       fill   p_eval ms/tok on/off       ratio   decode tok/s on/off      ratio")
    summary = []
    for path in models:
        on = measure(path, "on", fills, 256, tokens, threads)
        off = measure(path, "off", fills, 256, tokens, threads)
        for fill in fills:
            (p_on, d_on), (p_off, d_off) = on[fill], off[fill]
            print(f"{path.name[:26]:<26} {fill:>5}   {p_on:>8.3f} / {p_off:<8.3f}   {p_on / p_off:>8.2f}   "
                  f"{d_on:>8.1f} / {d_off:<8.1f}   {d_on / d_off:>6.2f}")
            summary.append((p_on / p_off, d_on / d_off))
    p_mean = sum(s[0] for s in summary) / len(summary)
    d_mean = sum(s[1] for s in summary) / len(summary)
    print(f"flash attention on/off, mean over models and fills: prompt eval time {p_mean:.2f}x, decode speed {d_mean:.2f}x "
          f"(time < 1 and speed > 1 favour on)")


if __name__ == "__main__":
    main()
