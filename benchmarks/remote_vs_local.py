"""Tokens/s through RemoteEngine (llama-cpp-python's OpenAI-compatible server, over HTTP + SSE)
vs. LocalEngine (in-process worker), on the same GGUF, prompt, threads and token count, in one
run; plus RemoteEngine vs. a bare httpx SSE loop on the same server, and on a scripted server
that streams as fast as it can (our client's own cost per chunk, without the model's noise).

    flock /tmp/qwen-cpu.lock python benchmarks/remote_vs_local.py [--model M.gguf] [--tokens 128]

Default model: the demo model (SmolLM2-135M: real text). End-of-turn tokens are biased away so
every run generates exactly --tokens tokens. Runs alternate between the engines (the median of
--reps each), so load from other processes hits both alike. The remote number includes the
server's own inference loop (llama-cpp-python's, not ours), not only the HTTP hop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from qwen_tui.engine.events import Finished, TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.remote import RemoteEngine
from qwen_tui.engine.remote_wire import sse_data
from qwen_tui.testing import fixtures
from qwen_tui.testing.llama_server import llama_server

CHAT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and a storm."}]


def timed(engine, sampling: Sampling, n: int) -> tuple[float, float, int]:
    """(tokens/s from the first to the last token, first-token ms, tokens), measured by the caller."""
    start = time.perf_counter()
    first = last = None
    finished = None
    for event in engine.generate(CHAT, thinking=False, max_tokens=n, sampling=sampling):
        if isinstance(event, TextDelta):
            last = time.perf_counter()
            first = first or last
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None and finished.reason in ("stop", "length"), finished
    tokens = finished.usage.completion_tokens
    return (tokens - 1) / (last - first), (first - start) * 1000, tokens


def bare_httpx(url: str, body: dict) -> tuple[float, int]:
    """The same request read with httpx and nothing else: (chunks/s first to last, chunks)."""
    first = last = None
    chunks = 0
    with httpx.Client(timeout=600) as client, client.stream("POST", url + "/chat/completions", json=body) as resp:
        for payload in sse_data(resp.iter_lines()):
            if payload == "[DONE]":
                break
            delta = json.loads(payload)["choices"][0].get("delta", {})
            if delta.get("content"):
                chunks += 1
                last = time.perf_counter()
                first = first or last
    return (chunks - 1) / (last - first), chunks


def client_cost(n: int = 5000, reps: int = 3) -> tuple[float, float]:
    """Chunks/s through RemoteEngine vs. a bare httpx loop from a scripted server that streams
    `n` chunks as fast as it can: the client's own cost per chunk, with no model in the way."""
    from qwen_tui.testing.openai_stub import OpenAIStub, chunk

    items = [chunk("tok ") for _ in range(n)] + [chunk(finish="stop"), "[DONE]"]
    ours, bare = [], []
    with OpenAIStub(chat=lambda h, body: h.sse(items)) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        for _ in range(reps):
            start = time.perf_counter()
            got = sum(isinstance(e, TextDelta) for e in engine.generate(CHAT, max_tokens=n))
            ours.append(got / (time.perf_counter() - start))
            start = time.perf_counter()
            _, got = bare_httpx(stub.url, {"messages": CHAT, "stream": True})
            bare.append(got / (time.perf_counter() - start))
        engine.close()
    return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = args.model or str(fixtures.demo_model())
    n = args.tokens
    local = LocalEngine(model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads)
    info = local.load()
    stops = {t for tok in (info.eos_token, "<|im_end|>", "<|endoftext|>") if tok
             for t in local.tokenize(tok, parse_special=True)[:1]}
    sampling = Sampling(temperature=0, logit_bias=tuple((t, -1000.0) for t in sorted(stops)))
    with llama_server(model, n_ctx=2048, threads=args.threads) as url:
        remote = RemoteEngine(url)
        remote.load()
        body = remote._body(CHAT, None, None, False, n, sampling)  # the exact request RemoteEngine sends
        timed(local, sampling, n), timed(remote, sampling, n)  # warm-up (page cache, prompt cache)
        runs: dict[str, list] = {"local": [], "remote": [], "bare": []}
        for _ in range(args.reps):
            runs["local"].append(timed(local, sampling, n))
            runs["remote"].append(timed(remote, sampling, n))
            runs["bare"].append(bare_httpx(url, body))
        remote.close()
    local.close()
    tps = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    ttft = {k: statistics.median(r[1] for r in runs[k]) for k in ("local", "remote")}
    print(f"model: {info.name} ({info.architecture}), {args.threads} thread(s), {n} tokens, median of {args.reps}")
    print(f"tokens generated: local {[r[2] for r in runs['local']]}, remote {[r[2] for r in runs['remote']]} "
          f"(remote counts: {remote.token_counts} tokenizer / chunks), bare chunks {[r[1] for r in runs['bare']]}")
    print(f"local  (in-process worker):        {tps['local']:7.1f} tok/s, first token {ttft['local']:6.0f} ms")
    print(f"remote (llama_cpp.server, SSE):    {tps['remote']:7.1f} tok/s, first token {ttft['remote']:6.0f} ms")
    print(f"bare httpx SSE loop, same server:  {tps['bare']:7.1f} chunks/s")
    print(f"remote / local tokens/s: {tps['remote'] / tps['local']:.2f}x")
    print(f"RemoteEngine / bare httpx (our client's overhead): {tps['remote'] / tps['bare']:.2f}x")
    ours, bare = client_cost()
    print(f"client only (scripted server, 5000 chunks as fast as possible): RemoteEngine {ours:,.0f} chunks/s, "
          f"bare httpx {bare:,.0f} chunks/s = {ours / bare:.2f}x")


if __name__ == "__main__":
    main()
