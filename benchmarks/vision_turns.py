"""A conversation about one image: our mtmd path vs llama-cpp-python's MTMDChatHandler.

Same tiny qwen35 GGUF, same tiny random-weight Qwen3-VL projector (qwen_tui/testing/tiny_mmproj.py),
same messages, one thread each, 1 generated token per turn (greedy): the difference is only in
how the prompt is served. MTMDChatHandler resets the context and re-evaluates the whole history
and re-encodes every image on every call; ours encodes the image once and reuses the context.

Prints, per turn, the wall time of the whole call (render, tokenize, prompt, one token) and how
many prompt positions were evaluated, then ratios
(baseline / ours) measured in this one run. Run: `flock /tmp/qwen-cpu.lock python benchmarks/vision_turns.py`.
The tiny model makes absolute times meaningless; the ratio of work done is the point.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--image", default="640x480", help="WxH of the picture (default 640x480: 300 tokens)")
    args = parser.parse_args()
    w, h = (int(x) for x in args.image.split("x"))

    from qwen_tui.testing.fixtures import tiny_qwen35
    from qwen_tui.testing.tiny_mmproj import build_tiny_mmproj

    tmp = Path(tempfile.mkdtemp(prefix="qwen-tui-vision-bench-"))
    os.environ.setdefault("QWEN_TUI_HOME", str(tmp / "home"))
    model = tmp / "Qwen3.5-tiny.gguf"
    model.symlink_to(tiny_qwen35())
    mmproj = build_tiny_mmproj(tmp / "mmproj-F16.gguf")
    picture = tmp / "picture.png"
    Image.effect_noise((w, h), 64).convert("RGB").save(picture)

    questions = [f"Question {i}: what else do you see in the picture, in detail?" for i in range(args.turns)]
    answer = "I see shapes and colours arranged across the picture, mostly noise."

    ours = run_ours(model, picture, questions, answer)
    theirs = run_baseline(model, mmproj, picture, questions, answer)

    print(f"{args.turns} turns about one {w}x{h} image, 1 thread, tiny qwen35 + tiny projector")
    print(f"{'turn':>4} {'ours ms':>9} {'ours eval':>9} {'base ms':>9} {'base eval':>9}   (ms: wall time per call)")
    for i, ((o_ms, o_eval), (b_ms, b_eval)) in enumerate(zip(ours["turns"], theirs["turns"]), 1):
        print(f"{i:>4} {o_ms:>9.1f} {o_eval:>9} {b_ms:>9.1f} {b_eval:>9}")
    o_total = sum(t[0] for t in ours["turns"])
    b_total = sum(t[0] for t in theirs["turns"])
    print(f"image encodes: ours {ours['encodes']}, MTMDChatHandler {args.turns} (one per call, by construction)")
    print(f"prompt positions evaluated: ours {sum(t[1] for t in ours['turns'])}, "
          f"MTMDChatHandler {sum(t[1] for t in theirs['turns'])} "
          f"(ratio {sum(t[1] for t in theirs['turns']) / max(1, sum(t[1] for t in ours['turns'])):.1f}x)")
    print(f"total time: ours {o_total:.0f} ms, MTMDChatHandler {b_total:.0f} ms, ratio {b_total / o_total:.2f}x")
    last_o, last_b = ours["turns"][-1][0], theirs["turns"][-1][0]
    print(f"last turn: ours {last_o:.1f} ms, MTMDChatHandler {last_b:.1f} ms, ratio {last_b / last_o:.2f}x")
    return 0


def _history(picture: Path, questions: list[str], answer: str, upto: int, *, ours: bool) -> list[dict]:
    messages: list[dict] = []
    for i, q in enumerate(questions[: upto + 1]):
        if i == 0:
            if ours:
                messages.append({"role": "user", "content": q, "images": [str(picture)]})
            else:
                messages.append({"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": picture.as_uri()}}, {"type": "text", "text": q}]})
        else:
            messages.append({"role": "user", "content": q})
        if i < upto:
            messages.append({"role": "assistant", "content": answer})
    return messages


def run_ours(model: Path, picture: Path, questions: list[str], answer: str) -> dict:
    from qwen_tui.engine.events import Finished
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.engine.params import Sampling

    turns = []
    encodes = 0
    with LocalEngine(model, n_ctx=8192, n_threads=1, n_threads_batch=1) as engine:
        info = engine.load()
        assert info.extra.get("vision", {}).get("enabled"), info.extra.get("vision")
        for i in range(len(questions)):
            done = None
            t0 = time.perf_counter()
            for event in engine.generate(_history(picture, questions, answer, i, ours=True), max_tokens=1,
                                         sampling=Sampling(temperature=0.0), thinking=False):
                if isinstance(event, Finished):
                    done = event
            elapsed = (time.perf_counter() - t0) * 1000  # the whole call, as for the baseline
            turns.append((elapsed, done.usage.prompt_tokens_evaluated))
            encodes = done.extra.get("image_encodes", 0)
    return {"turns": turns, "encodes": encodes}


def run_baseline(model: Path, mmproj: Path, picture: Path, questions: list[str], answer: str) -> dict:
    import llama_cpp
    from llama_cpp.llama_chat_format import MTMDChatHandler

    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        llm = llama_cpp.Llama(str(model), n_ctx=8192, n_threads=1, n_threads_batch=1, verbose=False,
                              chat_handler=MTMDChatHandler(str(mmproj), verbose=False, use_gpu=False))
    turns = []
    for i in range(len(questions)):
        messages = _history(picture, questions, answer, i, ours=False)
        t0 = time.perf_counter()
        llm.create_chat_completion(messages, max_tokens=1, temperature=0.0)
        elapsed = (time.perf_counter() - t0) * 1000
        turns.append((elapsed, llm.n_tokens))  # everything is evaluated again: n_tokens after the call
    llm.close()
    return {"turns": turns}


if __name__ == "__main__":
    sys.exit(main())
