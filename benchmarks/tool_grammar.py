"""What grammar-constrained tool calls cost, in one run on the same model.

1. Free text with the lazy grammar armed but not triggered vs. no grammar (the cost every
   answer pays when `--constrain-tools` is on).
2. Tokens inside a call: constrained vs. free (the cost while a call is written).
3. A whole turn: 200 free tokens + one call, constrained vs. not (the issue's 10% rule).

    python benchmarks/tool_grammar.py [--model M.gguf]   (default: the tiny qwen35 fixture)
"""

from __future__ import annotations

import argparse

from qwen_tui.agent.grammar import TRIGGER, tool_call_grammar
from qwen_tui.engine.events import Finished
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.testing import fixtures

TOOLS = [{"type": "function", "function": {"name": "add_numbers", "description": "Add.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}]
CALL = "<tool_call>\n<function=add_numbers>\n<parameter=a>\n2\n</parameter>\n<parameter=b>\n3\n</parameter>\n</function>\n</tool_call>"


def run(engine, prompt, sampling, n) -> tuple[float, int]:
    """(ms per generated token, tokens generated)."""
    finished = [e for e in engine.generate(prompt=prompt, max_tokens=n, sampling=sampling) if isinstance(e, Finished)][-1]
    return finished.timings.decode_ms / max(finished.usage.completion_tokens - 1, 1), finished.usage.completion_tokens


def ms_per_token(engine, prompt, sampling, n) -> float:
    return run(engine, prompt, sampling, n)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    engine = LocalEngine(args.model or fixtures.tiny_qwen35(), n_ctx=4096)
    info = engine.load()
    prompt = engine.render([{"role": "user", "content": "add 2 and 3"}], tools=TOOLS, thinking=False)
    grammar = tool_call_grammar(TOOLS)
    free = Sampling(temperature=0.8, seed=1, ignore_eos=True)
    armed = Sampling(temperature=0.8, seed=1, ignore_eos=True, grammar=grammar, grammar_trigger=TRIGGER)
    reps = 3
    plain = min(ms_per_token(engine, prompt + str(i), free, 200) for i in range(reps))
    lazy = min(ms_per_token(engine, prompt + str(i), armed, 200) for i in range(reps))
    # Inside a call: a grammar that forces this call from the first token, vs. the same text free.
    forced = 'root ::= "' + CALL.replace("\n", "\\n") + '"'
    call_tokens = len(engine.tokenize(CALL))
    runs = [run(engine, prompt + str(i), Sampling(temperature=0, grammar=forced), 200) for i in range(reps)]
    constrained_call = min(r[0] for r in runs)
    forced_tokens = runs[0][1]  # a grammar-forced literal is sampled in more, smaller tokens
    print(f"model: {info.name} ({info.architecture}), {info.threads.n_threads} thread(s)")
    print(f"free text, lazy grammar armed but not triggered: {lazy:.2f} ms/token vs {plain:.2f} = {lazy / plain:.2f}x")
    print(f"inside a call, constrained: {constrained_call:.2f} ms/token vs free {plain:.2f} = {constrained_call / plain:.2f}x")
    turn_free = 200 * plain + call_tokens * plain
    turn_constrained = 200 * lazy + forced_tokens * constrained_call
    print(f"whole turn (200 free tokens + one {call_tokens}-token call): {turn_constrained / turn_free:.2f}x "
          f"({'on' if turn_constrained / turn_free < 1.10 else 'off'} by default by the 10% rule)")
    engine.close()


if __name__ == "__main__":
    main()
