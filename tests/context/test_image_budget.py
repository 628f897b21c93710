"""Images count in the context budget: what they fill in the window (their image tokens, not the
three marker tokens the template writes), so compaction starts before an image overflows it.

Real components: the tiny qwen35 GGUF with the tiny random-weight Qwen3-VL projector that
llama.cpp's mtmd really loads (as tests/models/test_vision.py), real Pillow images.
"""

from __future__ import annotations

import pytest
from PIL import Image

from qwen_tui.context.budget import ContextSettings, TokenCounter
from qwen_tui.context.compaction import Compactor
from qwen_tui.context.image_cost import ImageCost, tokens_for_size
from qwen_tui.conversation import Conversation
from qwen_tui.engine.events import Finished
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.testing.tiny_mmproj import build_tiny_mmproj

GREEDY = Sampling(temperature=0.0, seed=1)
# (width, height): plain, rounding down and up, tall, tiny (mtmd's 8-token minimum), a screenshot
# (downscaled to the 1,024-token cap by the worker first)
SIZES = [(200, 120), (100, 300), (33, 1000), (20, 20), (1920, 1080), (1000, 700)]


@pytest.fixture(scope="module")
def vision_model(tiny_qwen35_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vision-budget")
    model = folder / "Qwen3.5-tiny-Q8_0.gguf"
    model.symlink_to(tiny_qwen35_path)
    build_tiny_mmproj(folder / "mmproj-F16.gguf")
    return model


def _picture(path, size, colour=(200, 30, 30)) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _run(engine, messages, max_tokens=2) -> Finished:
    events = list(engine.generate(messages, max_tokens=max_tokens, sampling=GREEDY, thinking=False))
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1]


def test_the_estimate_is_what_the_engine_uses(vision_model, tmp_path):
    """For each size, the estimated image tokens equal the tokens llama.cpp's mtmd produced for it."""
    with LocalEngine(vision_model, n_ctx=4096, n_threads=1, n_threads_batch=1) as engine:
        info = engine.load()
        assert info.extra["vision"]["enabled"] is True
        counter = TokenCounter(engine)
        text_only = [{"role": "user", "content": "Describe it."}]
        text_count = counter.prompt_tokens(text_only)
        kept = 0  # the worker reports the tokens of all images it keeps: each new one adds its own
        for i, size in enumerate(SIZES):
            path = _picture(tmp_path / f"p{i}.png", size, (i * 40, 90, 200 - i * 30))
            done = _run(engine, [{"role": "user", "content": "Describe it.", "images": [path]}])
            real = done.extra["image_tokens"] - kept
            kept = done.extra["image_tokens"]
            assert tokens_for_size(*size, info.extra["vision"]["image_max_tokens"], 32) == real, size
            # the prompt's count grows by the image's tokens + <|vision_start|>/<|vision_end|>
            with_image = counter.prompt_tokens([{"role": "user", "content": "Describe it.", "images": [path]}])
            assert with_image - text_count == real + 2, size


def test_message_share_includes_the_image(tmp_path):
    shot = _picture(tmp_path / "shot.png", (1920, 1080))

    class Engine:
        info = None

        @staticmethod
        def tokenize(text, parse_special=True):
            return text.split()

    counter = TokenCounter(Engine())
    plain = {"role": "user", "content": "look at this"}
    # 1920x1080 downscaled to <= 1,024 tokens (the CPU default cap), then aligned by mtmd
    assert counter.message_tokens({**plain, "images": [shot]}) - counter.message_tokens(plain) == \
        tokens_for_size(1920, 1080) + 2
    assert 900 < tokens_for_size(1920, 1080) <= 1024
    # not an image / gone: no cost here (the engine refuses it with its own message)
    (tmp_path / "notes.png").write_text("hello")
    assert ImageCost().cells(tmp_path / "notes.png") == 0 and ImageCost().cells(tmp_path / "gone.png") == 0


def test_compaction_starts_before_images_overflow_the_window(vision_model, tmp_path):
    """Screenshots in a 2,048-token window: each fills ~950 cells. Counting them, the compactor
    summarises the old turns before each request is sent and every turn completes; counted as three
    marker tokens (the old behaviour), nothing is compacted and the third turn's request (three
    screenshots, ~2,850 cells: test_the_old_count_would_have_overflowed) fails in llama.cpp."""
    shots = [_picture(tmp_path / f"s{i}.png", (1920, 1080), (10, 40 * i, 250)) for i in range(3)]
    with LocalEngine(vision_model, n_ctx=2048, n_threads=1, n_threads_batch=1) as engine:
        engine.load()
        settings = ContextSettings(reply_reserve=64, summary_max_tokens=32, keep_recent_turns=1)
        compactor = Compactor(engine, settings)
        conv = Conversation(system_prompt="You are brief.")
        reports = []
        for i, shot in enumerate(shots):
            conv.add_user(f"What is on screen {i}?", images=[shot])
            budget = compactor.budget(max_tokens=8)
            before = compactor.counter.prompt_tokens(conv.for_template())
            report = compactor.ensure_fits(conv, max_tokens=8)
            reports.append(report)
            after = compactor.counter.prompt_tokens(conv.for_template())
            assert after <= budget.limit, (before, after, budget.limit)
            done = _run(engine, conv.for_template(), max_tokens=8)
            assert done.reason in ("stop", "length"), done.error
            reply = conv.add_assistant()
            reply.content, reply.finish_reason = "ok", done.reason
        # the first screenshot fits alone; the later ones only after the older turns were compacted
        assert reports[0] is None or not reports[0].changed
        assert all(r is not None and r.changed for r in reports[1:]), reports
        assert before > budget.threshold  # the last turn was over the threshold because of its images


def test_the_old_count_would_have_overflowed(vision_model, tmp_path):
    """The same two screenshots sent without compaction: llama.cpp's window is too small."""
    from qwen_tui.engine.errors import EngineError

    shots = [_picture(tmp_path / f"t{i}.png", (1920, 1080), (10, 40 * i, 250)) for i in range(3)]
    with LocalEngine(vision_model, n_ctx=2048, n_threads=1, n_threads_batch=1) as engine:
        engine.load()
        counter = TokenCounter(engine)
        messages = [{"role": "user", "content": "What is on screen 0?", "images": [shots[0]]},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "What is on screen 1?", "images": [shots[1]]},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "What is on screen 2?", "images": [shots[2]]}]
        assert counter.prompt_tokens(messages) > 2048
        assert counter.text_prompt_tokens(engine.render(messages)) < 100  # what images used to count as
        with pytest.raises(EngineError, match="needs .* tokens; the context holds 2,048"):
            _run(engine, messages)
