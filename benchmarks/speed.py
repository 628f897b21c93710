"""Speed beyond the baseline, as ratios measured in one run on this machine.

1. Draft-and-verify: decode tok/s with MTP drafts and with prompt-lookup drafts vs. plain
   decoding, same model, prompt, threads and greedy sampling; the draft acceptance rate; and
   whether the output is token-identical (it must be).
2. Threads: our auto-tuned counts vs. llama-cpp-python's default (n_threads = cpu_count()//2,
   n_threads_batch = cpu_count()), on the machine as it is ("idle") and with a process we
   start spinning on one core ("busy").
3. GPU: full offload vs. CPU, where the llama.cpp build has a GPU backend.

    flock /tmp/qwen-cpu.lock python benchmarks/speed.py                 # fixtures (`python -m qwen_tui.testing prepare`)
    flock /tmp/qwen-cpu.lock python benchmarks/speed.py --model Qwen3.5-4B-MTP-Q4_K_M.gguf --tokens 256

With the fixtures, the tiny qwen35 model's NextN weights are random: its drafts are nearly
always rejected, so that row shows what a rejected draft costs, not what MTP gains. A real
MTP-capable Qwen 3.5 GGUF (one whose tensors include `blk.N.nextn.*`) is what `--model` is for.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp  # only to ask whether this build has a GPU backend

from qwen_tui.engine.events import Finished, TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling, SpeculativeParams
from qwen_tui.engine.resources import plan_threads
from qwen_tui.testing import fixtures

GREEDY = Sampling(temperature=0, ignore_eos=True)
CODE = '''def merge_sorted(a, b):
    """Merge two sorted lists into one sorted list."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out + a[i:] + b[j:]
'''
PROMPTS = {
    "chat": "<|im_start|>user\nExplain in a few paragraphs why the sky is blue.<|im_end|>\n<|im_start|>assistant\n",
    "quote": (f"<|im_start|>user\nHere is a file:\n```python\n{CODE}```\nRepeat the file exactly, then add a "
              "docstring example.<|im_end|>\n<|im_start|>assistant\n```python\n"),
}


def run(engine: LocalEngine, prompt: str, tokens: int) -> tuple[str, Finished]:
    events = list(engine.generate(prompt=prompt, max_tokens=tokens, sampling=GREEDY))
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


def tok_s(f: Finished) -> float:
    return f.timings.tokens_per_s(f.usage.completion_tokens)


def drafting(path: Path, modes: list[str], tokens: int, repeats: int, n_threads: int, say) -> None:
    engines = {}
    try:
        for mode in ["off", *modes]:
            sp = SpeculativeParams(mode=mode)  # the app's defaults (the pacer included)
            engine = LocalEngine(path, n_ctx=4096, n_threads=n_threads, n_threads_batch=n_threads, speculative=sp,
                                 tune_threads=False)
            engine.load()
            if mode != "off" and engine.info.extra.get("speculative") != mode:
                say(f"  {mode:<7} not available for this model (plain decoding): skipped")
                engine.close()
                continue
            engines[mode] = engine
        for name, prompt in PROMPTS.items():
            say(f"drafting  model={path.name} prompt={name} tokens={tokens} threads={n_threads} (median of {repeats})")
            speeds: dict[str, list[float]] = {m: [] for m in engines}
            texts: dict[str, str] = {}
            last: dict[str, Finished] = {}
            for _ in range(repeats):  # interleaved, so a load change hits every mode alike
                for mode, engine in engines.items():
                    text, f = run(engine, prompt, tokens)
                    speeds[mode].append(tok_s(f))
                    texts[mode], last[mode] = text, f
            base = statistics.median(speeds["off"])
            say(f"  off      {base:7.1f} tok/s")
            for mode in engines:
                if mode == "off":
                    continue
                v = statistics.median(speeds[mode])
                x = last[mode].extra
                drafted, accepted = x.get("draft_tokens", 0), x.get("draft_accepted", 0)
                say(f"  {mode:<7} {v:7.1f} tok/s  {v / base:5.2f}x  acceptance {accepted / drafted if drafted else 0:.0%} "
                    f"({accepted}/{drafted} since load, {x.get('draft_paused_tokens', 0)} tokens undrafted by the pacer)  "
                    f"output identical: {'yes' if texts[mode] == texts['off'] else 'NO'}")
    finally:
        for engine in engines.values():
            engine.close()


def spinner(cpu: int) -> subprocess.Popen:
    code = f"import os\ntry: os.sched_setaffinity(0, {{{cpu}}})\nexcept Exception: pass\nwhile True: pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def threads(path: Path, tokens: int, repeats: int, say) -> None:
    cpus = multiprocessing.cpu_count()
    default = (max(cpus // 2, 1), cpus)  # llama-cpp-python's Llama() defaults
    say(f"threads   model={path.name} tokens={tokens} cpus={cpus} llama-cpp-python default={default[0]}/{default[1]}")
    with tempfile.TemporaryDirectory() as home:  # a cold thread cache: the tuned engine measures at load
        env_home = os.environ.get("QWEN_TUI_HOME")
        os.environ["QWEN_TUI_HOME"] = home
        try:
            t0 = time.monotonic()
            tuned = LocalEngine(path, n_ctx=2048, speculative=SpeculativeParams(mode="off"), tune_threads=True)
            tuned.load()
            say(f"  tuning at first load took {time.monotonic() - t0:.1f} s (model load included); "
                f"measured: {json.dumps(tuned.info.extra.get('threads', {}))}")
            base = LocalEngine(path, n_ctx=2048, n_threads=default[0], n_threads_batch=default[1],
                               speculative=SpeculativeParams(mode="off"), tune_threads=False)
            base.load()
            every = LocalEngine(path, n_ctx=2048, n_threads=cpus, n_threads_batch=cpus,
                                speculative=SpeculativeParams(mode="off"), tune_threads=False)
            every.load()  # what the tuner avoids when busy: a thread on every CPU
            try:
                for label in ("idle", "busy"):
                    spin = spinner(0) if label == "busy" else None
                    try:
                        time.sleep(1.0)
                        run(tuned, PROMPTS["chat"], 4)  # the tuner looks at the load before each generation
                        b, t, e = [], [], []
                        for _ in range(repeats):
                            b.append(tok_s(run(base, PROMPTS["chat"], tokens)[1]))
                            e.append(tok_s(run(every, PROMPTS["chat"], tokens)[1]))
                            f = run(tuned, PROMPTS["chat"], tokens)[1]
                            t.append(tok_s(f))
                        bm, tm, em = statistics.median(b), statistics.median(t), statistics.median(e)
                        say(f"  {label}: default {default[0]} threads {bm:7.1f} tok/s | tuned {f.extra.get('n_threads')} "
                            f"threads {tm:7.1f} tok/s  {tm / bm:5.2f}x | {cpus} threads {em:7.1f} tok/s  {tm / em:5.2f}x "
                            f"(others used {f.extra.get('cpu_used_by_others')} CPUs; {f.extra.get('threads_reason')})")
                    finally:
                        if spin is not None:
                            spin.kill()
                            spin.wait()
            finally:
                base.close()
                every.close()
                tuned.close()
        finally:
            if env_home is None:
                os.environ.pop("QWEN_TUI_HOME", None)
            else:
                os.environ["QWEN_TUI_HOME"] = env_home


def gpu(paths: list[Path], tokens: int, say) -> None:
    if not llama_cpp.llama_supports_gpu_offload():
        say("gpu       not measured: no GPU backend in this llama.cpp build (see docs/gpu.md)")
        return
    n = plan_threads().n_threads
    for path in paths:
        res = {}
        for label, layers in (("cpu", 0), ("gpu", -1)):
            with LocalEngine(path, n_ctx=2048, n_gpu_layers=layers, speculative=SpeculativeParams(mode="off"),
                             tune_threads=False, n_threads=n) as engine:
                engine.load()
                run(engine, PROMPTS["chat"], 8)
                res[label] = tok_s(run(engine, PROMPTS["chat"], tokens)[1])
        say(f"gpu       model={path.name}: CPU {res['cpu']:.1f} tok/s, full offload {res['gpu']:.1f} tok/s "
            f"({res['gpu'] / res['cpu']:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a GGUF (an MTP-capable Qwen 3.5 for the MTP row)")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip", action="append", default=[], choices=["drafting", "threads", "gpu"])
    args = ap.parse_args()
    say = lambda s: print(s, flush=True)  # noqa: E731
    n = plan_threads().n_threads
    if args.model:
        models = [(args.model, ["mtp", "lookup"])]
    else:
        models = [(fixtures.tiny_qwen35(nextn=True), ["mtp", "lookup"]), (fixtures.demo_model(), ["lookup"])]
    if "drafting" not in args.skip:
        for path, modes in models:
            drafting(path, modes, args.tokens, args.repeats, n, say)
    if "threads" not in args.skip:
        threads(args.model or fixtures.demo_model(), args.tokens, args.repeats, say)
    if "gpu" not in args.skip:
        gpu([args.model] if args.model else [fixtures.tiny_qwen35(), fixtures.demo_model()], args.tokens, say)


if __name__ == "__main__":
    main()
