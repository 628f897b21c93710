"""How the app behaves while an answer streams, measured headless in one run.

1. A synthetic engine at 200 tokens/s and as fast as possible: frames rendered, keypress-to-
   screen latency p50/p95 while streaming (target p95 < 50 ms), no text lost or reordered,
   UI CPU (process time / wall time) while streaming.
2. The same stream after 50 earlier messages vs. an empty transcript (target within 10%).
3. A 1,000-message transcript: time to open, scrolling, p95 key latency.
4. With the real demo model: decode tokens/s inside the app vs. headless `-p` on the same
   prompt (target >= 0.9x), and the UI process's CPU while it streams (target <= 15% of a core).

    python benchmarks/tui_stream.py [--quick] [--no-model]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("QWEN_TUI_HOME", tempfile.mkdtemp(prefix="qwen-tui-bench-"))

from textual import events  # noqa: E402

from qwen_tui.conversation import Message  # noqa: E402
from qwen_tui.testing.fake_engine import FakeEngine  # noqa: E402
from qwen_tui.ui.app import QwenApp  # noqa: E402
from qwen_tui.ui.widgets import markdown_stream  # noqa: E402
from qwen_tui.ui.widgets.messages import AssistantMessage  # noqa: E402
from qwen_tui.ui.widgets.settled_answer import SettledAnswer  # noqa: E402
from qwen_tui.ui.widgets.prompt import PromptInput  # noqa: E402

REPLY_PARAGRAPH = (
    "Here is **some** markdown with `inline code`, a [link](https://example.com) and a list:\n\n"
    "- first item\n- second item with *emphasis*\n\n```python\ndef f(x):\n    return x * 2\n```\n\n"
)


def paragraphs(n: int) -> str:
    """`n` reply paragraphs, each different (numbered): Markdown rendered once is cached by its
    text, so a reply of one paragraph repeated would be cheaper to draw than any real answer."""
    return "".join(REPLY_PARAGRAPH.replace("**some**", f"**part {i}**").replace("x * 2", f"x * {i}")
                   for i in range(n))


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class FrameCounter:
    def __init__(self, app: QwenApp) -> None:
        self.frames = 0
        self.last = 0.0  # perf_counter() at the latest frame
        original = app._display

        def counting(screen, renderable):
            if renderable is not None:  # None: a refresh that found nothing to draw, not a frame
                self.frames += 1
                self.last = time.perf_counter()
            return original(screen, renderable)

        app._display = counting


async def stream_once(reply: str, tokens_per_s: float, history: int = 0, keys: int = 20) -> dict:
    engine = FakeEngine([reply], tokens_per_s=tokens_per_s, chunk=4)
    markdown_stream.clear_render_cache()  # each run draws its text from scratch, as a new app would
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        counter = FrameCounter(app)
        while app.engine is None:
            await pilot.pause(0.01)
        if history:
            await app.show_history([
                Message("user", f"question {i}") if i % 2 == 0 else Message("assistant", paragraphs(2).replace("part", f"message {i} part"))
                for i in range(history)
            ])
            await pilot.pause(0.2)
        prompt = app.query_one(PromptInput)
        prompt.load_text("go")
        prompt.action_submit()  # not pilot.press: it waits for the app to go idle, i.e. the whole stream
        while not app.generating:
            await asyncio.sleep(0.001)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        frames0 = counter.frames
        latencies = []
        typed = 0
        while app.generating:
            if typed < keys and app.turn is not None and app.turn.live is not None and app.turn.live.text:
                before = counter.frames
                k0 = time.perf_counter()
                app.post_message(events.Key("x", "x"))  # as the terminal driver delivers a key
                typed += 1
                while counter.frames == before or "x" * typed not in prompt.text:
                    await asyncio.sleep(0.001)
                latencies.append((time.perf_counter() - k0) * 1000)
            await asyncio.sleep(0.01)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        got = app.conversation.messages[-1].content
        # What the finished answer shows: its settled blocks (widgets/settled_answer.py).
        shown = "".join(w.source for w in app.query(AssistantMessage).last().query(SettledAnswer))
        return {
            "wall_s": wall,
            "frames": counter.frames - frames0,
            "cpu_share": cpu / wall,
            "lat_p50": p(latencies, 0.5) if latencies else float("nan"),
            "lat_p95": p(latencies, 0.95) if latencies else float("nan"),
            "keys": len(latencies),
            "latencies": latencies,
            "intact": got == reply.strip() == shown.strip(),  # answers are stored stripped
            "interval": app.pacer.interval,
        }


async def big_transcript(n: int) -> dict:
    engine = FakeEngine(["ok"])
    app = QwenApp(lambda: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.engine is None:
            await pilot.pause(0.01)
        history = [
            # every answer distinct (numbered), so no block is drawn from another one's rendering
            Message("user", f"question {i}: " + "words " * 20) if i % 2 == 0
            else Message("assistant", f"Answer {i}.\n\n" + REPLY_PARAGRAPH.replace("x * 2", f"x * {i}") * 2)
            for i in range(n)
        ]
        counter = FrameCounter(app)
        t0 = time.perf_counter()
        loading = asyncio.create_task(app.show_history(history))
        while not app.transcript.children:
            await asyncio.sleep(0.001)
        frames = counter.frames
        while counter.frames == frames:  # the first frame that shows them
            await asyncio.sleep(0.001)
        first_s = time.perf_counter() - t0
        prompt = app.query_one(PromptInput)
        latencies = []
        for i in range(30):  # typing while older messages are still being added
            k0 = time.perf_counter()
            app.post_message(events.Key("y", "y"))
            while "y" * (i + 1) not in prompt.text:
                await asyncio.sleep(0.001)
            latencies.append((time.perf_counter() - k0) * 1000)
            await asyncio.sleep(0.02)
        await loading
        open_s = time.perf_counter() - t0
        # PageUp from the newest message to the very first one (older blocks are built on the way).
        # Each press is timed from the key event (posted as the terminal driver delivers it) to the
        # last frame it caused, blocks it brought in included; Pilot's press/pause are not used
        # here: they wait for every widget to answer a callback, ~100 ms a press with 60 blocks.
        transcript = app.transcript
        pages = []
        t_all = time.perf_counter()
        while transcript.older or transcript.scroll_y > 0:
            y0, n0, f0 = transcript.scroll_y, len(transcript.older), counter.frames
            t0 = time.perf_counter()
            app.post_message(events.Key("pageup", None))
            while not ((transcript.scroll_y != y0 or len(transcript.older) != n0)
                       and not transcript._busy and counter.frames > f0):
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)  # any frame still owed to this key (the view kept in place)
            pages.append((counter.last - t0) * 1000)
        to_top_s = time.perf_counter() - t_all
        return {"first_s": first_s, "open_s": open_s, "scroll_ms": statistics.median(pages),
                "scroll_p95": p(pages, 0.95), "pages": len(pages), "to_top_s": to_top_s, "pages_ms": pages,
                "mounted": len(transcript.children), "lat_p95": p(latencies, 0.95)}


async def demo_in_app(model: str, prompt_text: str, max_tokens: int) -> dict:
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.engine.params import Sampling

    app = QwenApp(lambda: LocalEngine(model, n_ctx=4096), thinking=False, max_tokens=max_tokens,
                  sampling_for=lambda thinking: Sampling(temperature=0, ignore_eos=True))
    finished = []
    async with app.run_test(size=(120, 40)) as pilot:
        original = app._finish_turn

        async def capture(event):
            finished.append(app.turn.last_step.finished)  # the engine's numbers for the (only) step
            await original(event)

        app._finish_turn = capture
        while app.engine is None:
            await pilot.pause(0.05)
        app.query_one(PromptInput).load_text(prompt_text)
        app.query_one(PromptInput).action_submit()
        t0, cpu0 = time.perf_counter(), time.process_time()
        while not finished:
            # Not pilot.pause: it makes every widget answer a callback each time, CPU the app
            # itself would not spend (about 2% of a core here), counted as the UI's.
            await asyncio.sleep(0.05)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    event = finished[0]
    return {"tps": event.timings.tokens_per_s(event.usage.completion_tokens), "cpu_share": cpu / wall,
            "tokens": event.usage.completion_tokens, "threads": event.extra.get("n_threads"),
            "threads_reason": event.extra.get("threads_reason", "")}


def demo_in_app_process(model: str, prompt_text: str, max_tokens: int) -> dict:
    # A fresh process, like the headless run: this one carries the heap of the parts before.
    out = subprocess.run([sys.executable, __file__, "--demo-app-run", model, prompt_text, str(max_tokens)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def demo_headless(model: str, prompt_text: str, max_tokens: int) -> float:
    # Same engine path as -p: LocalEngine, ignore_eos so both produce exactly max_tokens.
    code = (
        "import json,sys\n"
        "from qwen_tui.engine.local import LocalEngine\n"
        "from qwen_tui.engine.params import Sampling\n"
        "e=LocalEngine(sys.argv[1], n_ctx=4096); e.load()\n"
        "ev=list(e.generate([{'role':'user','content':sys.argv[2]}], thinking=False, max_tokens=int(sys.argv[3]),"
        " sampling=Sampling(temperature=0, ignore_eos=True)))[-1]\n"
        "print(json.dumps(ev.timings.tokens_per_s(ev.usage.completion_tokens)))\n"
        "e.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code, model, prompt_text, str(max_tokens)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-model", action="store_true", help="skip the real-model comparison")
    parser.add_argument("--demo-app-run", nargs=3, metavar=("MODEL", "PROMPT", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo_app_run:  # one in-app run, in a fresh process as a user's would be (see below)
        model, prompt_text, tokens = args.demo_app_run
        print(json.dumps(await demo_in_app(model, prompt_text, int(tokens))))
        return
    n_paragraphs = 6 if args.quick else 20
    reply = paragraphs(n_paragraphs)

    print(f"reply: {len(reply)} characters, streamed in 4-character tokens, 120x40 headless")
    # As fast as possible, the reply is 4x longer: a stream of a fraction of a second would give
    # one or two key samples (each key waits for its frame), too few for a p95.
    fast_reply = paragraphs(4 * n_paragraphs)
    for rate, label, text in ((200, "200 tok/s", reply), (0, "as fast as possible", fast_reply)):
        r = await stream_once(text, rate, keys=60)
        print(f"  {label:>20}: {r['wall_s']:.2f} s, {r['frames']} frames ({r['frames'] / r['wall_s']:.0f}/s), "
              f"{len(text)} chars, key latency p50 {r['lat_p50']:.1f} ms p95 {r['lat_p95']:.1f} ms over {r['keys']} keys (target < 50), "
              f"UI CPU {r['cpu_share']:.0%}, hand-over every {r['interval'] * 1000:.0f} ms, text intact: {r['intact']}")

    # Long enough (the 4x reply, as fast as possible) that the stream's own cost, not start-up, is timed.
    empty = [await stream_once(fast_reply, 0, keys=0) for _ in range(3)]
    full = [await stream_once(fast_reply, 0, history=50, keys=0) for _ in range(3)]
    e, f = statistics.median(x["wall_s"] for x in empty), statistics.median(x["wall_s"] for x in full)
    print(f"  stream after 50 earlier messages vs empty: {f:.2f} s vs {e:.2f} s = {f / e:.2f}x (target <= 1.10x)")

    n = 200 if args.quick else 1000
    big = await big_transcript(n)
    print(f"  {n}-message transcript: first screen in {big['first_s']:.2f} s, all loaded in {big['open_s']:.2f} s, "
          f"key latency p95 while loading {big['lat_p95']:.1f} ms; PageUp to the first message: {big['pages']} "
          f"presses in {big['to_top_s']:.1f} s, median {big['scroll_ms']:.1f} ms p95 {big['scroll_p95']:.1f} ms, "
          f"{big['mounted']} blocks mounted at the top")

    if not args.no_model:
        from qwen_tui.testing import fixtures

        model = str(fixtures.demo_model())
        prompt_text = "Write a long story about a lighthouse keeper."
        tokens = 100 if args.quick else 300
        # Alternated, medians: one pair of runs on this noisy 2-core machine moved the ratio by 0.1.
        headless_runs, inside_runs = [], []
        for _ in range(1 if args.quick else 3):
            headless_runs.append(demo_headless(model, prompt_text, tokens))
            inside_runs.append(demo_in_app_process(model, prompt_text, tokens))
        headless = statistics.median(headless_runs)
        inside = sorted(inside_runs, key=lambda r: r["tps"])[len(inside_runs) // 2]
        print(f"  demo model, {tokens} tokens, median of {len(inside_runs)} alternated runs: in the app "
              f"{inside['tps']:.1f} tok/s vs headless {headless:.1f} tok/s = {inside['tps'] / headless:.2f}x "
              f"(target >= 0.9x; runs: app {[round(r['tps']) for r in inside_runs]}, headless "
              f"{[round(x) for x in headless_runs]}); UI process CPU while streaming {inside['cpu_share']:.0%} of a "
              f"core (target <= 15%); decode threads in the app: {inside['threads']} ({inside['threads_reason']})")


if __name__ == "__main__":
    asyncio.run(main())
