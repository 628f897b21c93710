"""The random-weight qwen35 at Qwen 3.5 0.8B's per-block widths (benchmarks/context_turns.py
--model shaped08): its hyperparameters are the real model's, llama.cpp loads and runs it, and its
checkpoints cost what engine/state_size.py computes for one block of the real model."""

from __future__ import annotations

import pytest

from qwen_tui.engine.events import Finished
from qwen_tui.engine.gguf_header import read_header
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.state_size import QWEN35_0_8B, header_state_cost, state_cost
from qwen_tui.testing import fixtures
from qwen_tui.testing.qwen35_shapes import SHAPED_0_8B, TINY


@pytest.fixture(scope="module")
def shaped_path():
    try:  # built on demand (~15 s once, ~370 MB), then cached with the other fixtures
        return fixtures.shaped_qwen35_0_8b(say=lambda _msg: None)
    except fixtures.FixtureMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def test_the_shape_is_the_real_models_block(shaped_path):
    meta = read_header(shaped_path).metadata
    real = {k: v for k, v in QWEN35_0_8B.items() if k != "block_count"}
    assert {k: meta[f"qwen35.{k}"] for k in real} == real
    assert meta["qwen35.embedding_length"] == 1024 and meta["qwen35.feed_forward_length"] == 3584
    assert meta["qwen35.attention.head_count"] == 8 and meta["qwen35.rope.dimension_count"] == 64
    assert meta["qwen35.block_count"] == 4  # one block: 3 DeltaNet layers + 1 attention layer
    # one block of the real model: a sixth of its 24 layers' state
    assert header_state_cost(read_header(shaped_path)).checkpoint_bytes * 6 == state_cost(QWEN35_0_8B).checkpoint_bytes


def test_llama_cpp_runs_it_and_checkpoints_cost_what_we_compute(shaped_path):
    with LocalEngine(shaped_path, n_ctx=2048, n_threads=2, n_threads_batch=2) as engine:
        info = engine.load()
        assert info.extra["recurrent"] is True
        # weights: 4 layers at the real widths + the 248K x 1024 embedding (tied output)
        assert 300e6 < info.n_params < 360e6, info.n_params
        events = list(engine.generate([{"role": "user", "content": "Hello there, how are you?"}], max_tokens=2,
                                      sampling=Sampling(temperature=0, ignore_eos=True), thinking=False))
    done = events[-1]
    assert isinstance(done, Finished) and done.usage.completion_tokens == 2, done
    per_checkpoint = done.extra["checkpoint_bytes"] / done.extra["checkpoints"]
    cost = header_state_cost(read_header(shaped_path)).checkpoint_bytes
    assert cost <= per_checkpoint <= cost + 1024  # + llama.cpp's headers


def test_more_layers_keep_the_attention_interval():
    assert SHAPED_0_8B.with_layers(8).n_layer == 8
    with pytest.raises(ValueError, match="multiple of 4"):
        SHAPED_0_8B.with_layers(6)
    assert TINY.ssm_inner_size == 64 and SHAPED_0_8B.ssm_inner_size == 2048
