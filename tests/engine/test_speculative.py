"""Draft-and-verify decoding (engine/speculative.py): drafts never change greedy output.

Real llama.cpp on the tiny qwen35 fixtures: a hybrid model (DeltaNet + attention) whose
recurrent state must be rolled back exactly after rejected drafts. `tiny-qwen35-nextn.gguf`
carries one NextN (MTP) block; its weights are random, so the MTP head's drafts are mostly
rejected: that proves the rollback, and a test drafter that proposes the true continuation
(with every third token wrong) proves the accept path and partial acceptance.
"""

from __future__ import annotations

import json

import pytest

from qwen_tui.engine.events import Finished, TextDelta
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import LoadParams, Sampling, SpeculativeParams

GREEDY = Sampling(temperature=0, ignore_eos=True)
# Random weights: draft whatever comes, and keep drafting even where it does not pay.
MTP = SpeculativeParams(mode="mtp", draft_max=3, p_min=0.0, adaptive=False)
OFF = SpeculativeParams(mode="off")
PROMPTS = [
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nList three primes<|im_end|>\n<|im_start|>assistant\n",
]
QUOTE = "def add(a, b):\n    return a + b\n"
QUOTE_PROMPT = f"<|im_start|>user\nQuote this file twice:\n{QUOTE}<|im_end|>\n<|im_start|>assistant\n"
QUOTE_GRAMMAR = "root ::= " + json.dumps(QUOTE + QUOTE)


def generate(engine: LocalEngine, prompt: str, max_tokens: int = 40, sampling: Sampling = GREEDY) -> tuple[str, Finished]:
    events = list(engine.generate(prompt=prompt, max_tokens=max_tokens, sampling=sampling))
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


@pytest.fixture(scope="module")
def plain_nextn(tiny_qwen35_nextn_path):
    with LocalEngine(tiny_qwen35_nextn_path, n_ctx=2048, speculative=OFF, tune_threads=False) as engine:
        engine.load()
        yield engine


@pytest.fixture(scope="module")
def mtp_nextn(tiny_qwen35_nextn_path):
    with LocalEngine(tiny_qwen35_nextn_path, n_ctx=2048, speculative=MTP, tune_threads=False) as engine:
        engine.load()
        yield engine


def test_mtp_drafts_leave_greedy_output_token_identical(plain_nextn, mtp_nextn):
    assert plain_nextn.info.extra["speculative"] is None
    assert mtp_nextn.info.extra["speculative"] == "mtp"
    drafted = 0
    for prompt in PROMPTS:
        expected, plain = generate(plain_nextn, prompt)
        got, spec = generate(mtp_nextn, prompt)
        assert got == expected
        assert spec.usage.completion_tokens == plain.usage.completion_tokens == 40
        drafted += spec.extra["draft_tokens"]
    assert drafted > 20  # the MTP head really drafted (and its drafts were verified)
    assert mtp_nextn.info.drafting.startswith("MTP ")  # what the status line shows


def test_an_unsure_mtp_head_drafts_nothing(tiny_qwen35_nextn_path, plain_nextn):
    """p_min: the random head is never 99% sure (top-10 softmax), so every step is a plain one."""
    unsure = SpeculativeParams(mode="mtp", p_min=0.99, adaptive=False)
    with LocalEngine(tiny_qwen35_nextn_path, n_ctx=2048, speculative=unsure, tune_threads=False) as engine:
        engine.load()
        text, finished = generate(engine, PROMPTS[0], max_tokens=16)
    assert finished.extra["speculative"] == "mtp" and finished.extra["draft_tokens"] == 0
    assert text == generate(plain_nextn, PROMPTS[0], max_tokens=16)[0]


def test_after_rejected_drafts_the_cached_state_continues_exactly(plain_nextn, mtp_nextn):
    """Rolled-back recurrent state: continuing from the cache equals evaluating from scratch."""
    first, _ = generate(mtp_nextn, PROMPTS[0], max_tokens=24)
    follow = PROMPTS[0] + first + "<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n"
    got, finished = generate(mtp_nextn, follow, max_tokens=24)
    assert finished.usage.prompt_tokens_evaluated < finished.usage.prompt_tokens  # served from the cache
    generate(plain_nextn, "<|im_start|>system\nreset<|im_end|>\n", max_tokens=1)
    expected, fresh = generate(plain_nextn, follow, max_tokens=24)
    assert fresh.usage.prompt_tokens_evaluated == fresh.usage.prompt_tokens
    assert got == expected


def test_models_without_nextn_tensors_decode_plainly(tiny_qwen35_path, demo_model_path):
    for path in (tiny_qwen35_path, demo_model_path):
        for mode in ("auto", "mtp"):
            with LocalEngine(path, n_ctx=1024, speculative=SpeculativeParams(mode=mode),
                             tune_threads=False) as engine:
                info = engine.load()
                assert info.extra["speculative"] is None
                assert info.drafting == ""
                text, finished = generate(engine, PROMPTS[0], max_tokens=8)
                assert finished.reason == "length" and text
                assert "draft_tokens" not in finished.extra


def test_prompt_lookup_quotes_with_accepted_drafts_and_identical_output(tiny_qwen35_path):
    """A grammar makes the model quote a span of its prompt: lookup drafts it, verify accepts."""
    forced = Sampling(temperature=0, grammar=QUOTE_GRAMMAR)
    results = {}
    for mode in ("off", "lookup"):
        with LocalEngine(tiny_qwen35_path, n_ctx=1024, speculative=SpeculativeParams(mode=mode, draft_max=4, adaptive=False),
                         tune_threads=False) as engine:
            engine.load()
            results[mode] = generate(engine, QUOTE_PROMPT, max_tokens=200, sampling=forced)
    (plain_text, plain), (text, spec) = results["off"], results["lookup"]
    assert plain_text == QUOTE + QUOTE == text
    assert spec.usage.completion_tokens == plain.usage.completion_tokens
    assert spec.extra["draft_accepted"] >= 8
    assert spec.extra["acceptance"] >= 0.4
    assert spec.extra["draft_accepted"] < spec.extra["draft_tokens"]  # some rejected: rollback ran too


def test_prompt_lookup_on_an_attention_only_model(demo_model_path):
    """The demo model (llama architecture, plain KV cache) rolls back with seq_rm."""
    prompt = ("<|im_start|>user\nRepeat after me: one two three four five six seven eight nine ten. "
              "one two three four five six seven eight nine ten.<|im_end|>\n<|im_start|>assistant\n")
    results = {}
    for mode in ("off", "lookup"):
        with LocalEngine(demo_model_path, n_ctx=1024, speculative=SpeculativeParams(mode=mode, adaptive=False),
                         tune_threads=False) as engine:
            engine.load()
            results[mode] = generate(engine, prompt, max_tokens=48)
    assert results["lookup"][0] == results["off"][0]
    assert results["lookup"][1].extra["draft_tokens"] > 0


# -- in-process: the accept path with known-good drafts, and the rollback guard ----------------


class OracleDrafter:
    """Proposes the true continuation (from a plain run), every third token wrong; keeps the
    MTP head in step (it still drafts, and mirrors every batch) so its bookkeeping is exercised."""

    name = "oracle"

    def __init__(self, inner, reference: list[int], n_vocab: int) -> None:
        self.inner, self.reference, self.n_vocab = inner, reference, n_vocab

    def draft(self, token: int, pos: int, n_max: int) -> list[int]:
        self.inner.draft(token, pos, n_max)
        true = self.reference[pos + 1:pos + 1 + n_max]
        return [(t + 1) % self.n_vocab if (pos + 1 + j) % 3 == 0 else t for j, t in enumerate(true)]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _runner(path, mode: str):
    from qwen_tui.engine.llama_backend import LlamaRunner

    return LlamaRunner(LoadParams(str(path), 1024, 1, 1, use_extra_bufts=False,
                                  speculative=SpeculativeParams(mode=mode, draft_max=3, p_min=0.0, adaptive=False)))


def _run(runner, prompt: list[int], max_tokens: int) -> tuple[str, Finished]:
    out: list[str] = []
    finished = runner.generate(prompt, max_tokens=max_tokens, sampling=GREEDY, emit_text=out.append,
                               cancelled=lambda: False)
    return "".join(out), finished


def test_accepted_and_partly_accepted_drafts_keep_output_and_state_exact(tiny_qwen35_nextn_path):
    plain = _runner(tiny_qwen35_nextn_path, "off")
    spec = _runner(tiny_qwen35_nextn_path, "mtp")
    try:
        prompt = plain.tokenize(PROMPTS[1])
        expected, _ = _run(plain, prompt, 60)
        reference = list(plain.cached)  # prompt + the tokens generated (all but the last)
        assert spec.speculative is not None and spec.speculative.name == "mtp"
        spec.speculative.drafter = OracleDrafter(spec.speculative.drafter, reference, spec.describe()["n_vocab"])
        got, finished = _run(spec, prompt, 60)
        assert got == expected
        assert spec.cached == reference  # the same tokens in memory, none of the rejected drafts
        stats = finished.extra
        assert stats["draft_accepted"] >= 20
        assert 0 < stats["draft_accepted"] < stats["draft_tokens"]
        # The memory after all those rollbacks continues exactly like a plain run's.
        more = reference + plain.tokenize("<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n")
        spec.speculative.drafter = spec.speculative.drafter.inner
        assert _run(spec, more, 16)[0] == _run(plain, more, 16)[0]
    finally:
        plain.close()
        spec.close()


def test_rewind_is_refused_beyond_the_last_batch(tiny_qwen35_nextn_path):
    """llama.cpp accepts any rewind up to n_rs_seq, even with snapshots from an older batch."""
    runner = _runner(tiny_qwen35_nextn_path, "mtp")
    try:
        spec = runner.speculative
        tokens = runner.tokenize("one two three four five six seven eight")
        assert runner._decode(tokens, 0) == 0
        runner.cached.extend(tokens)
        assert runner._decode([tokens[0]], len(runner.cached)) == 0  # a single-token batch
        runner.cached.append(tokens[0])
        n = len(runner.cached)
        assert not spec.trim(n - 2)  # would rewind into the previous batch: stale snapshots
        assert runner.cached[-1] == tokens[0] and len(runner.cached) == n
        assert runner._decode(tokens[:3], n) == 0
        runner.cached.extend(tokens[:3])
        assert spec.trim(n + 1)  # inside the last batch: fine
        assert not spec.trim(n)  # only one rewind per batch
        assert len(runner.cached) == n + 1
    finally:
        runner.close()


def test_lookup_drafter_proposes_what_followed_the_same_tokens():
    from qwen_tui.engine.drafters import LookupDrafter

    d = LookupDrafter(SpeculativeParams(mode="lookup", ngram_min=2, ngram_max=3))
    d.begin([5, 1, 2, 3, 4, 9, 9, 1, 2])
    assert d.draft(3, 9, 3) == [4, 9, 9]  # "1 2 3" was followed by "4 9 9"
    assert d.draft(7, 9, 3) == []  # "2 7" never occurred
    assert d.draft(3, 8, 3) == []  # the drafter only drafts right after what the memory holds
    d.trimmed(4)  # the memory was cut back to [5, 1, 2, 3]
    d.observe([4], 4)
    assert d.tokens == [5, 1, 2, 3, 4]
    assert d.draft(9, 5, 3) == []  # "4 9" only occurred in the removed part: never drafted from it
    assert d.draft(2, 5, 2) == []  # "4 2" unseen
    d.observe([5, 1], 5)
    assert d.draft(2, 7, 2) == [3, 4]  # "5 1 2" -> "3 4"


def test_pacer_pauses_drafts_that_do_not_pay_and_tries_again():
    from qwen_tui.engine.speculative import Pacer

    p = Pacer()
    assert [p.allow() for _ in range(5)] == [False] * 4 + [True]  # plain speed is measured first
    for _ in range(4):
        p.record(False, 1, 0.010)  # plain: 100 tok/s
    for _ in range(4):
        p.record(True, 2, 0.030)  # drafted: 67 tok/s -> loses
    assert p.pause == 32
    assert sum(not p.allow() for _ in range(40)) == 32  # 32 plain tokens, then drafting again
    for _ in range(4):
        p.record(True, 2, 0.030)
    assert p.pause == 64  # lost again: a longer pause
    p.pause = 0
    for _ in range(8):
        p.record(True, 3, 0.020)  # 150 tok/s: drafting pays now
    assert p.pause == 0 and p.backoff == 32
    off = Pacer(enabled=False)
    assert off.allow()
    for _ in range(8):
        off.record(True, 1, 1.0)
    assert off.allow()


def test_speed_config_table():
    from qwen_tui.engine.speed_settings import speed_settings

    sp, tune, problems = speed_settings({"speculative": "lookup", "draft_max": 5, "mtp_p_min": 0.3,
                                         "draft_adaptive": False, "tune_threads": False})
    assert (sp.mode, sp.draft_max, sp.p_min, sp.adaptive, tune, problems) == ("lookup", 5, 0.3, False, False, [])
    sp, tune, problems = speed_settings({"speculative": "eagle", "draft_max": 0, "tune_threads": "yes"})
    assert (sp.mode, sp.draft_max, tune) == ("auto", 3, True)
    assert problems == ["[speed] speculative must be one of auto, mtp, lookup, off, not 'eagle'; using auto",
                        "[speed] draft_max must be a whole number from 1 to 8, not 0; using 3",
                        "[speed] tune_threads must be true or false, not 'yes'; using true"]
