"""Does a turn's latency grow with the session? Ours vs plain llama-cpp-python, in one run.

A scripted session (a system prompt, then per turn a ~420-token user message and a fixed-length
answer) grows to ~22K tokens over 40 turns on the tiny qwen35 fixture (a real hybrid
DeltaNet + attention model, so its memory cannot roll back) and to ~7.5K on the demo model
(SmolLM2, attention-only; it was trained for 8K). Per turn we print the prompt size, the prompt
tokens llama.cpp evaluated (our counter, and llama_perf_context's), and the time to the first
token as the caller sees it. Answers are greedy with end-of-turn tokens banned, so both runs
produce sessions of the same shape.

Ours: LocalEngine (app-side template, worker process, context checkpoints). Naive: the same
session through `Llama.create_chat_completion(stream=True)` in a subprocess of its own.

    flock /tmp/qwen-cpu.lock python benchmarks/context_turns.py [--quick] [--no-naive] [--model tiny|demo|both|shaped08]

The last line reads `ttft ratio turn40/turn1: X.XX (naive: Y.YY)` (the tiny qwen35 model, or the
one --model names). Per turn it also splits the time to first token into llama.cpp's own prompt
evaluation (llama_perf_context t_p_eval_ms) and the rest ("outside": template, tokenization, IPC,
checkpoints, sampling), and compares llama.cpp's time per evaluated token at the last and first turn.

The tiny fixture's layers are 64 wide, so attention over a long cache dominates its prompt
evaluation: its ratio shows llama.cpp's attention cost, not ours. `--model shaped08` runs the
session on random weights at Qwen 3.5 0.8B's per-block widths (n_embd 1024, 3 DeltaNet + 1
attention layer, 8 heads x 256, FFN 3584, Q8_0; qwen_tui/testing/qwen35_shapes.py; built on
demand, ~370 MB): the ratio a real model's shape has (the real model stacks 6 such blocks, which
scales weights and attention alike). It runs without the naive baseline (that re-evaluates the
whole history every turn: tens of minutes on a small CPU).

--overflow also pushes a session on the tiny model to 4x n_ctx tokens in all, through the
compactions of qwen_tui/context/compaction.py, and reports how many there were and their cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORDS = ("the river carries small boats past the old mill while the keeper counts them and writes "
         "each name into a ledger that nobody else has read in years ").split()
SYSTEM = "You are a careful assistant. Answer briefly and stay on topic. " * 12


def user_message(turn: int, n_words: int) -> str:
    body = " ".join(WORDS[(turn * 7 + i) % len(WORDS)] for i in range(n_words))
    return f"Turn {turn}: {body}"


def shape(model: str, quick: bool) -> dict:
    """Session shape per model: turns, words per user message, answer tokens, context size."""
    if model == "tiny":
        return {"turns": 8 if quick else 40, "words": 320, "answer": 128 if not quick else 48, "n_ctx": 8192 if quick else 24576}
    if model == "shaped08":  # shorter answers (decoding 248K-wide logits costs), longer messages: ~18.5K tokens at turn 40
        return {"turns": 8 if quick else 40, "words": 420, "answer": 32 if not quick else 16, "n_ctx": 8192 if quick else 24576}
    return {"turns": 4 if quick else 40, "words": 90, "answer": 48 if not quick else 24, "n_ctx": 8192}


def warm_up_prompt(sh: dict) -> str:
    """As long as turn 1's prompt (a full 512-token batch and a partial one), so that turn 1 does
    not pay first-use costs (page faults, first big graph) that later turns do not."""
    return "Warm up. " + user_message(0, sh["words"]) + " " + user_message(1000, sh["words"] // 2)


def banned_tokens(tokenize) -> list[int]:
    ids = []
    # End-of-turn and template tokens, and the whitespace tokens the random-weight tiny model
    # otherwise repeats forever (its answers would be empty once the reasoning is stripped).
    for text in ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<think>", "</think>", "\n", "\n\n", " "):
        toks = tokenize(text)
        if len(toks) == 1:
            ids.append(toks[0])
    return ids


# -- ours ---------------------------------------------------------------------------------------

def run_ours(path: Path, sh: dict) -> list[dict]:
    from qwen_tui.engine.events import Finished, ReasoningDelta, TextDelta
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.engine.params import Sampling

    rows = []
    with LocalEngine(path, n_ctx=sh["n_ctx"], n_threads=sh["threads"], n_threads_batch=sh["threads"]) as engine:
        engine.load()
        bias = tuple((t, float("-inf")) for t in banned_tokens(engine.tokenize))
        sampling = Sampling(temperature=0, logit_bias=bias)
        list(engine.generate(prompt=warm_up_prompt(sh), max_tokens=2, sampling=sampling))
        messages = [{"role": "system", "content": SYSTEM}]
        for turn in range(1, sh["turns"] + 1):
            messages.append({"role": "user", "content": user_message(turn, sh["words"])})
            engine.perf_reset()
            t0 = time.perf_counter()
            ttft = None
            parts = []
            for event in engine.generate(messages, max_tokens=sh["answer"], sampling=sampling):
                if ttft is None and isinstance(event, (TextDelta, ReasoningDelta)):
                    ttft = time.perf_counter() - t0
                if isinstance(event, (TextDelta, ReasoningDelta)):
                    parts.append(event.text)
                elif isinstance(event, Finished):
                    finished = event
            perf = engine.perf()
            # The whole reply is kept as the message's content (the naive run does the same).
            messages.append({"role": "assistant", "content": "".join(parts)})
            ttft_ms = (ttft or 0) * 1000
            rows.append({
                "turn": turn, "prompt": finished.usage.prompt_tokens, "evaluated": finished.usage.prompt_tokens_evaluated,
                "perf_p_eval": perf["n_p_eval"], "ttft_ms": ttft_ms,
                # llama.cpp's own prompt-eval time (llama_perf_context), and the rest of the time to
                # the first token: template, tokenization, IPC, checkpoint save/restore, sampling.
                "p_eval_ms": perf["t_p_eval_ms"], "outside_ms": ttft_ms - perf["t_p_eval_ms"],
                "checkpoints": finished.extra.get("checkpoints", 0),
                "checkpoint_kib": finished.extra.get("checkpoint_bytes", 0) / 1024,
            })
    return rows


# -- naive (runs in a subprocess: `--naive-worker`) ----------------------------------------------

def run_naive(path: str, sh: dict) -> list[dict]:
    import llama_cpp
    from llama_cpp import Llama

    from qwen_tui.engine.machine import remembered_extra_bufts

    llm = Llama(model_path=path, n_ctx=sh["n_ctx"], n_batch=512, n_threads=sh["threads"],
                n_threads_batch=sh["threads"], n_gpu_layers=0, verbose=False,
                # the same safety the app applies on CPUs whose extra buffer types crash
                **({} if remembered_extra_bufts() else {"use_extra_bufts": False}))
    tokenize = lambda text: llm.tokenize(text.encode(), add_bos=False, special=True)  # noqa: E731
    bias = {t: -1e9 for t in banned_tokens(tokenize)}
    llm.create_completion(warm_up_prompt(sh), max_tokens=2, temperature=0)
    messages = [{"role": "system", "content": SYSTEM}]
    rows = []
    for turn in range(1, sh["turns"] + 1):
        messages.append({"role": "user", "content": user_message(turn, sh["words"])})
        llama_cpp.llama_perf_context_reset(llm.ctx)
        t0 = time.perf_counter()
        ttft = None
        parts = []
        for chunk in llm.create_chat_completion(messages, max_tokens=sh["answer"], temperature=0, stream=True, logit_bias=bias):
            delta = chunk["choices"][0]["delta"]
            if ttft is None and delta.get("content"):
                ttft = time.perf_counter() - t0
            parts.append(delta.get("content") or "")
        perf = llama_cpp.llama_perf_context(llm.ctx)
        messages.append({"role": "assistant", "content": "".join(parts)})
        rows.append({"turn": turn, "evaluated": perf.n_p_eval, "perf_p_eval": perf.n_p_eval,
                     "ttft_ms": (ttft or 0) * 1000})
    return rows


def naive_in_subprocess(path: Path, sh: dict) -> list[dict]:
    out = subprocess.run([sys.executable, __file__, "--naive-worker", str(path), json.dumps(sh)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if out.returncode != 0:
        raise SystemExit(f"the naive run failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- overflow: 4x n_ctx through compactions (qwen_tui/context/compaction.py) -------------------------

def run_overflow(path: Path, quick: bool, threads: int) -> None:
    """Push a session to 4x n_ctx tokens in all; compactions keep each prompt inside the window."""
    try:
        from qwen_tui.context.compaction import Compactor
        from qwen_tui.conversation import Conversation
    except ImportError as exc:
        print(f"overflow: not available: {exc}")
        return
    from qwen_tui.engine.events import Finished, ReasoningDelta, TextDelta
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.engine.params import Sampling

    n_ctx, words, answer = (2048, 120, 32) if quick else (4096, 320, 96)
    with LocalEngine(path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads) as engine:
        engine.load()
        sampling = Sampling(temperature=0, logit_bias=tuple((t, float("-inf")) for t in banned_tokens(engine.tokenize)))
        compactor = Compactor(engine)
        conv = Conversation(system_prompt=SYSTEM)
        total, turn, errors, compactions, evaluated, after = 0, 0, [], [], 0, []
        ordinary = []  # (prompt tokens evaluated, ttft ms) of turns without a compaction before them
        while total < 4 * n_ctx:
            turn += 1
            text = user_message(turn, words)
            conv.add_user(text)
            total += len(engine.tokenize(text))
            report = compactor.ensure_fits(conv, max_tokens=answer)
            if report is not None and report.changed:
                compactions.append(report)
            parts = []
            t0, ttft = time.perf_counter(), None
            for event in engine.generate(conv.for_template(), max_tokens=answer, sampling=sampling):
                if isinstance(event, (TextDelta, ReasoningDelta)):
                    ttft = ttft if ttft is not None else (time.perf_counter() - t0) * 1000
                    parts.append(event.text)
                elif isinstance(event, Finished):
                    finished = event
            if finished.reason == "error":
                errors.append(finished.error)
            evaluated += finished.usage.prompt_tokens_evaluated
            if report is not None and report.changed:
                after.append((finished.usage.prompt_tokens_evaluated, finished.usage.prompt_tokens, ttft or 0.0))
            elif turn > 1:
                ordinary.append((finished.usage.prompt_tokens_evaluated, ttft or 0.0))
            reply = conv.add_assistant()
            reply.content, reply.finish_reason = "".join(parts), finished.reason
            total += finished.usage.completion_tokens
    print(f"\n== overflow (tiny qwen35, n_ctx {n_ctx}): {turn} turns, {total:,} tokens in all "
          f"({total / n_ctx:.1f}x n_ctx), {len(compactions)} compactions, errors: {errors or 'none'}")
    for report, (cost, prompt, ttft) in zip(compactions, after):
        print(f"  #{report.number}: {report.describe()}; summary {report.summary_tokens} tokens; "
              f"next turn evaluated {cost} of {prompt} prompt tokens, ttft {ttft:.0f} ms")
    if ordinary and after:
        o_eval = sorted(e for e, _ in ordinary)[len(ordinary) // 2]
        o_ttft = sorted(t for _, t in ordinary)[len(ordinary) // 2]
        a_eval = sum(e for e, _, _ in after) / len(after)
        a_ttft = sum(t for _, _, t in after) / len(after)
        print(f"turn after a compaction (mean): {a_eval:.0f} prompt tokens evaluated, ttft {a_ttft:.0f} ms; "
              f"ordinary turn (median): {o_eval} evaluated, ttft {o_ttft:.0f} ms "
              f"(the summary replaces old turns, so the prompt diverges after the system prompt once per compaction)")
    print(f"prompt tokens evaluated over the whole session: {evaluated:,}")


# -- report ---------------------------------------------------------------------------------------

def report(name: str, sh: dict, ours: list[dict], naive: list[dict] | None) -> tuple[float, float | None]:
    print(f"\n== {name}: {sh['turns']} turns, {sh['words']}-word user messages, {sh['answer']}-token answers, n_ctx {sh['n_ctx']}")
    print("turn  prompt  evaluated  perf_p_eval  bound  ttft_ms  p_eval_ms  outside_ms  checkpoints(KiB)"
          + ("   naive_eval  naive_ttft_ms" if naive else ""))
    prev = None
    for i, row in enumerate(ours):
        # target: new tokens + last answer + 8 (new = what the prompt grew by, minus the answer)
        bound = row["prompt"] if prev is None else row["prompt"] - prev["prompt"] + 8
        line = (f"{row['turn']:>4}  {row['prompt']:>6}  {row['evaluated']:>9}  {row['perf_p_eval']:>11}  {bound:>5}  "
                f"{row['ttft_ms']:>7.1f}  {row['p_eval_ms']:>9.1f}  {row['outside_ms']:>10.1f}  "
                f"{row['checkpoints']:>3} ({row['checkpoint_kib']:.0f})")
        if naive:
            line += f"   {naive[i]['evaluated']:>10}  {naive[i]['ttft_ms']:>13.1f}"
        print(line)
        prev = row
    over = [r["turn"] for p, r in zip(ours, ours[1:]) if r["evaluated"] > r["prompt"] - p["prompt"] + 8]
    print(f"turns over the target (new + last answer + 8): {over or 'none'}")
    ratio = ours[-1]["ttft_ms"] / ours[0]["ttft_ms"]
    naive_ratio = naive[-1]["ttft_ms"] / naive[0]["ttft_ms"] if naive else None
    n = ours[-1]["turn"]
    first, last = ours[0], ours[-1]
    print(f"{name}: time to first token = llama.cpp prompt eval + outside llama.cpp (template, tokenization, IPC, "
          f"checkpoints, sampling): turn1 {first['ttft_ms']:.1f} = {first['p_eval_ms']:.1f} + {first['outside_ms']:.1f} ms; "
          f"turn{n} {last['ttft_ms']:.1f} = {last['p_eval_ms']:.1f} + {last['outside_ms']:.1f} ms")
    per_tok = [r["p_eval_ms"] / max(1, r["perf_p_eval"]) for r in (first, last)]
    print(f"{name}: llama.cpp prompt eval per evaluated token turn{n}/turn1: {per_tok[1]:.3f} / {per_tok[0]:.3f} ms "
          f"= {per_tok[1] / per_tok[0]:.2f} (cache {last['prompt']:,} vs {first['prompt']:,} tokens); "
          f"outside llama.cpp turn{n}/turn1: {last['outside_ms']:.1f} / {first['outside_ms']:.1f} ms "
          f"= {last['outside_ms'] / first['outside_ms']:.2f}")
    print(f"{name}: ttft turn{n} {ours[-1]['ttft_ms']:.1f} ms / turn1 {ours[0]['ttft_ms']:.1f} ms = {ratio:.2f}"
          + (f"; naive {naive[-1]['ttft_ms']:.1f} / {naive[0]['ttft_ms']:.1f} ms = {naive_ratio:.2f}" if naive else ""))
    return ratio, naive_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6-8 turns, short answers: under a minute")
    parser.add_argument("--model", choices=["tiny", "demo", "both", "shaped08"], default="both",
                        help="shaped08: random weights at Qwen 3.5 0.8B's per-block widths (built on demand)")
    parser.add_argument("--no-naive", action="store_true", help="skip the create_chat_completion baseline")
    parser.add_argument("--overflow", action="store_true", help="push a session to 4x n_ctx through compactions")
    parser.add_argument("--naive-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker:
        print(json.dumps(run_naive(args.naive_worker[0], json.loads(args.naive_worker[1]))))
        return

    from qwen_tui.testing import fixtures

    threads = os.cpu_count() or 1  # the same fixed count for both runs (no auto-tuning)
    models = {"tiny": ("tiny qwen35", fixtures.tiny_qwen35), "demo": ("demo (SmolLM2)", fixtures.demo_model),
              "shaped08": ("qwen35 0.8B shape (random, 4 layers)", fixtures.shaped_qwen35_0_8b)}
    wanted = ["demo", "tiny"] if args.model == "both" else [args.model]
    results = {}
    for key in wanted:
        name, getter = models[key]
        path = getter()
        sh = shape(key, args.quick) | {"threads": threads}
        ours = run_ours(path, sh)
        naive = None if args.no_naive or key == "shaped08" else naive_in_subprocess(path, sh)
        results[key] = report(name, sh, ours, naive)
    if args.overflow:
        run_overflow(fixtures.tiny_qwen35(), args.quick, threads)
    ratio, naive_ratio = results[wanted[-1]]
    n = shape(wanted[-1], args.quick)["turns"]
    print(f"ttft ratio turn{n}/turn1: {ratio:.2f} (naive: {naive_ratio:.2f})" if naive_ratio is not None
          else f"ttft ratio turn{n}/turn1: {ratio:.2f} (naive: not run)")


if __name__ == "__main__":
    main()
