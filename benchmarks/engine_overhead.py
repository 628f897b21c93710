"""What our engine costs on top of llama.cpp itself, measured in one run on this machine.

Baseline: a bare llama.cpp loop done the way llama-bench does it (same model, context
parameters and threads; one 512-token llama_decode, then 128 single-token decodes; times from
llama.cpp's own llama_perf_context counters). Ours: LocalEngine as the app uses it (worker
process, sampler chain, incremental detokenizer, events over the pipe), timed where the app
receives the events. Then the Python overhead per token at 1K and 8K generated tokens.

    python benchmarks/engine_overhead.py            # demo model + tiny qwen35 (needs `python -m qwen_tui.testing prepare`)
    python benchmarks/engine_overhead.py --model M.gguf --quick
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import llama_cpp  # the baseline talks to llama.cpp directly; the app never does (only its worker)

from qwen_tui.engine.events import Finished, TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import LoadParams, Sampling, flash_attn_type
from qwen_tui.engine.resources import plan_threads
from qwen_tui.testing import fixtures

PP, TG = 512, 128
_quiet = llama_cpp.llama_log_callback(lambda level, text, data: None)


class BareLlama:
    """llama.cpp driven directly, the way llama-bench does it (no sampling, no detokenizing)."""

    def __init__(self, params: LoadParams) -> None:
        llama_cpp.llama_backend_init()
        llama_cpp.llama_log_set(_quiet, None)
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = params.n_gpu_layers
        mp.use_extra_bufts = params.use_extra_bufts
        self.model = llama_cpp.llama_model_load_from_file(params.path.encode(), mp)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = params.n_ctx, params.n_batch, params.n_batch
        cp.n_threads, cp.n_threads_batch = params.n_threads, params.n_threads_batch
        # the same flash-attention choice the app's worker makes (engine/params.py: off on CPU for auto)
        cp.flash_attn_type = flash_attn_type(params.flash_attn, params.n_gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0)
        cp.n_outputs_max, cp.no_perf = params.n_outputs_max, False
        self.ctx = llama_cpp.llama_init_from_model(self.model, cp)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.batch = llama_cpp.llama_batch_init(PP, 0, 1)
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.rng = random.Random(0)
        self.decode([self.rng.randrange(self.n_vocab)], 0)  # warm-up, as llama-bench does

    def decode(self, tokens, pos0):
        batch = self.batch
        for i, t in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, pos0 + i, 1, 0
            batch.seq_id[i][0] = 0
        batch.logits[len(tokens) - 1] = 1
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(self.ctx, batch) == 0
        llama_cpp.llama_synchronize(self.ctx)  # llama.cpp books the timings here, as in llama-bench

    def run(self) -> tuple[float, float]:
        """The same work our engine does for a request: a 512-token prompt, then 128 tokens after it."""
        llama_cpp.llama_memory_clear(self.mem, True)
        llama_cpp.llama_perf_context_reset(self.ctx)
        self.decode([self.rng.randrange(self.n_vocab) for _ in range(PP)], 0)
        token = self.rng.randrange(self.n_vocab)
        for i in range(TG):
            self.decode([token], PP + i)
        perf = llama_cpp.llama_perf_context(self.ctx)
        return PP * 1000 / perf.t_p_eval_ms, perf.n_eval * 1000 / perf.t_eval_ms

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)


def prompt_of(engine: LocalEngine, n_tokens: int, salt: int = 0) -> str:
    """A raw prompt of exactly n_tokens tokens for this model (salt: a different first word,
    so that the engine's prefix cache cannot skip the prompt)."""
    words = "the quick brown fox jumps over the lazy dog and then some more words follow ".split()
    text = f"{salt} "
    i = 0
    while len(engine.tokenize(text)) < n_tokens:
        text += " " + words[i % len(words)] * (1 + i % 3)
        i += 1
    tokens = engine.tokenize(text)
    while len(tokens) > n_tokens:
        text = text[:-1]
        tokens = engine.tokenize(text)
    return text


def ours(engine: LocalEngine, prompt: str, n_gen: int) -> dict:
    """Run one generation, timed at the consumer; C-side counters from the worker."""
    engine.perf_reset()
    greedy = Sampling(temperature=0, ignore_eos=True)
    t_first = t_end = None
    n_deltas = 0
    t0 = time.perf_counter()
    for event in engine.generate(prompt=prompt, max_tokens=n_gen, sampling=greedy):
        now = time.perf_counter()
        if isinstance(event, TextDelta):
            n_deltas += 1
            t_first = t_first or now
        if isinstance(event, Finished):
            finished, t_end = event, now
    perf = engine.perf()
    n = finished.usage.completion_tokens
    assert n == n_gen, finished
    consumer_decode_ms = (t_end - (t_first or t0)) * 1000
    # Tokens after the first each cost one llama_decode (C), one sample (C) and our Python/IPC.
    overhead = (consumer_decode_ms - perf["t_eval_ms"] - finished.extra["sample_ms"]) / max(n - 1, 1)
    return {
        "pp_tps": finished.usage.prompt_tokens_evaluated * 1000 / finished.timings.prompt_ms,
        "tg_tps": (n - 1) * 1000 / consumer_decode_ms,
        "overhead_ms": overhead,
        "sample_ms": finished.extra["sample_ms"] / n,
        "c_eval_ms": perf["t_eval_ms"] / max(perf["n_eval"], 1),
    }


def compare(model: Path, reps: int, threads: int | None) -> None:
    engine = LocalEngine(model, n_ctx=4096, n_threads=threads, n_threads_batch=threads)
    info = engine.load()
    print(f"model: {info.name} ({info.architecture}, {info.quant}, {info.file_size / 1e6:.0f} MB)")
    print(f"threads: n_threads={info.threads.n_threads} n_threads_batch={info.threads.n_threads_batch} ({info.threads.reason})")
    bare = BareLlama(engine._params)
    runs, bare_runs = [], []
    for rep in range(reps):  # interleaved, so both see the same machine
        runs.append(ours(engine, prompt_of(engine, PP, salt=rep), TG))
        bare_runs.append(bare.run())
    engine.close()
    bare.close()
    mine_pp = statistics.median(r["pp_tps"] for r in runs)
    mine_tg = statistics.median(r["tg_tps"] for r in runs)
    bare_pp = statistics.median(b[0] for b in bare_runs)
    bare_tg = statistics.median(b[1] for b in bare_runs)
    print(f"  bare llama.cpp (llama-bench style, C-side): pp{PP} {bare_pp:8.1f} tok/s   tg{TG} {bare_tg:7.1f} tok/s")
    print(f"  qwen-tui engine (as the app receives it):   pp{PP} {mine_pp:8.1f} tok/s   tg{TG} {mine_tg:7.1f} tok/s")
    r = runs[len(runs) // 2]
    # Bare llama-bench never samples; a real answer must. So also show the ratio without the
    # sampler's time (llama.cpp's own code, ~1 ms/token over Qwen 3.5's 248K vocabulary).
    no_sampler = 1000 / (1000 / mine_tg - r["sample_ms"])
    print(f"  ratio prompt {mine_pp / bare_pp:.2f}x   ratio decode {mine_tg / bare_tg:.2f}x   "
          f"excluding llama.cpp's sampler {no_sampler / bare_tg:.2f}x   (target decode >= 0.95x)")
    print(f"  per token: llama_decode {r['c_eval_ms']:.3f} ms (bare {1000 / bare_tg:.3f} ms), sampler {r['sample_ms']:.3f} ms, "
          f"our Python+IPC {r['overhead_ms']:.3f} ms")


def overhead_growth(model: Path, lengths: list[int]) -> None:
    engine = LocalEngine(model, n_ctx=max(lengths) + 1024, n_threads=1, n_threads_batch=1)
    engine.load()
    prompt = prompt_of(engine, 64)
    parts = []
    for n in lengths:
        r = ours(engine, prompt, n)
        parts.append(f"{n // 1024}K tokens: {r['overhead_ms']:.3f} ms")
    engine.close()
    print(f"python overhead per token ({model.name}): " + ", ".join(parts) + "   (target <= 0.3 ms, flat)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="GGUF to compare on (default: the demo model and the tiny qwen35)")
    parser.add_argument("--threads", type=int, help="override the thread choice")
    parser.add_argument("--quick", action="store_true", help="one repetition, 1K/2K-token overhead runs")
    args = parser.parse_args()
    reps = 1 if args.quick else 5
    plan = plan_threads()
    print(f"thread plan for this machine: {plan.n_threads}/{plan.n_threads_batch} ({plan.reason})")
    models = [args.model] if args.model else [fixtures.demo_model(), fixtures.tiny_qwen35()]
    for model in models:
        compare(model, reps, args.threads)
    overhead_growth(args.model or fixtures.tiny_qwen35(), [1024, 2048] if args.quick else [1024, 8192])


if __name__ == "__main__":
    main()
