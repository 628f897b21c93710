"""The inference process: loads the model and serves requests over a pipe.

llama.cpp can abort() or segfault (GGML_ASSERT on a bad file or parameter, CPU-specific
kernels). Running it here, in a process of its own, means such a crash ends this process
only; the app sees the pipe close and recovers. Everything llama.cpp prints goes to a log
file (fd 1 and 2 are redirected), which is also where the parent looks for the reason of
a crash.

Messages in:  ("generate", prompt_tokens, max_tokens, Sampling) | ("tokenize", text, parse_special)
              | ("perf",) | ("perf_reset",) | ("shutdown",) | ("abort_for_test", how)
Messages out: ("ready", info) | ("load_error", kind, message) | ("progress", fraction)
              | ("text", str) | ("finished", Finished) | ("error", message) | ("tokens", list) | ("perf", dict)
"""

from __future__ import annotations

import argparse
import mmap
import os
import signal
import time
from multiprocessing.connection import Connection


# Streamed text goes to the app at most this often (the first piece at once): a message per
# token woke the app's generation thread 100 times a second, and on a 2-core machine each wake-up
# takes a core from llama.cpp's spinning threads in the middle of a token.
TEXT_INTERVAL_S = 0.03


class TextBatcher:
    """Collect streamed text; send it when TEXT_INTERVAL_S has passed since the last send. Text
    that arrives sooner waits for the next token (or the end), so it is late by at most a token."""

    def __init__(self, send, interval: float = TEXT_INTERVAL_S) -> None:
        self.send, self.interval = send, interval
        self.parts: list[str] = []
        self.last = float("-inf")

    def __call__(self, text: str) -> None:
        self.parts.append(text)
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.parts:
            self.send(("text", "".join(self.parts)))
            self.parts = []
            self.last = time.monotonic() if now is None else now


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m qwen_tui.engine.worker` (started by LocalEngine, stdout/stderr = log)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn-fd", type=int, required=True)
    parser.add_argument("--cancel-fd", type=int, required=True)
    args = parser.parse_args(argv)
    # Ctrl+C in a terminal reaches the whole process group; cancelling is the app's job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(args.conn_fd)
    cancel = mmap.mmap(args.cancel_fd, 1)  # one byte shared with the app: non-zero = stop now
    try:
        serve(conn, cancel)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass  # the app went away


def serve(conn: Connection, cancel: mmap.mmap) -> None:
    from qwen_tui.engine.errors import EngineError
    from qwen_tui.engine.llama_backend import LlamaRunner

    last_sent = [0.0]

    def progress(value: float) -> None:
        if value - last_sent[0] >= 0.05 or value >= 1.0:
            last_sent[0] = value
            conn.send(("progress", value))

    params = conn.recv()
    try:
        runner = LlamaRunner(params, progress=progress)
    except EngineError as exc:
        conn.send(("load_error", type(exc).__name__, str(exc)))
        return
    _inject_fault(runner, params)
    description = runner.describe()
    if getattr(params, "mmproj", None):  # images (engine/vision.py); a broken projector only costs vision
        from qwen_tui.engine.vision import attach

        description["vision"] = attach(runner, params)
    conn.send(("ready", description))

    def cancelled() -> bool:
        return cancel[0] != 0

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the app went away
        kind = msg[0]
        if kind == "generate":
            _, prompt, max_tokens, sampling = msg
            text = TextBatcher(conn.send)
            try:
                finished = runner.generate(
                    prompt,
                    max_tokens=max_tokens,
                    sampling=sampling,
                    emit_text=text,
                    cancelled=cancelled,
                )
                text.flush()
                conn.send(("finished", finished))
            except EngineError as exc:
                text.flush()
                conn.send(("error", str(exc)))
        elif kind == "tokenize":
            if len(msg) > 3 and msg[3]:  # with images
                try:
                    conn.send(("tokens", runner.vision.tokenize(msg[1], msg[3])))
                except (EngineError, AttributeError) as exc:
                    conn.send(("error", str(exc) if runner.vision else "this model has no vision projector (mmproj)"))
            else:
                conn.send(("tokens", runner.tokenize(msg[1], parse_special=msg[2])))
        elif kind == "perf":
            conn.send(("perf", runner.perf()))
        elif kind == "perf_reset":
            runner.perf_reset()
            conn.send(("perf", {}))
        elif kind == "abort_for_test":
            _crash_for_test(runner, msg[1])
        elif kind == "shutdown":
            runner.close()
            conn.send(("bye",))
            return


def _inject_fault(runner, params) -> None:
    """Fault injection for tests, off unless QWEN_TUI_INJECT_FAULT is set.

    "batched-decode-with-extra-bufts" aborts the process on a multi-token decode while extra
    buffer types are on: what llama.cpp's AMX kernels do on some Xeon servers. Other CPUs
    (like CI's) can't reproduce that crash, but the recovery path must still be tested.
    """
    if os.environ.get("QWEN_TUI_INJECT_FAULT") != "batched-decode-with-extra-bufts" or not params.use_extra_bufts:
        return
    decode = runner._decode

    def crashing_decode(tokens, start_pos, logits_last=True):
        if len(tokens) > 1:
            os.abort()
        return decode(tokens, start_pos, logits_last)

    runner._decode = crashing_decode


def _crash_for_test(runner, how: str) -> None:
    """Trip a real failure inside llama.cpp so tests can prove the app survives it."""
    import ctypes

    import llama_cpp

    if how == "assert":
        # A parameter llama.cpp does not validate: sampling at an output index that was never
        # computed trips GGML_ASSERT(logits != nullptr) in llama-sampler.cpp and abort()s.
        llama_cpp.llama_sampler_sample(llama_cpp.llama_sampler_init_greedy(), runner.ctx, 10_000_000)
    elif how == "segfault":
        ctypes.string_at(0)
    os.abort()


if __name__ == "__main__":
    main()
