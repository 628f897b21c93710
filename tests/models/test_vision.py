"""Image input end to end: the real tiny qwen35 GGUF and a tiny random-weight Qwen3-VL projector
(`qwen_tui/testing/tiny_mmproj.py`) that llama.cpp's mtmd really loads and runs.

The weights are random, so nothing here checks what the model says about an image: only that
images go through mtmd, are encoded once, cost the tokens and positions they should, and that
the context is reused across turns that carry images.
"""

from __future__ import annotations

import pytest
from PIL import Image

from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Finished
from qwen_tui.engine.images import image_paths_in, split_images
from qwen_tui.engine.local import LocalEngine
from qwen_tui.engine.params import Sampling
from qwen_tui.models.info import model_facts
from qwen_tui.testing.tiny_mmproj import build_tiny_mmproj

GREEDY = Sampling(temperature=0.0, seed=1)


@pytest.fixture(scope="module")
def vision_model(tiny_qwen35_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vision-model")
    model = folder / "Qwen3.5-tiny-Q8_0.gguf"
    model.symlink_to(tiny_qwen35_path)
    build_tiny_mmproj(folder / "mmproj-F16.gguf")
    return model


def _picture(path, size, colour=(200, 30, 30)):
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _run(engine, messages, max_tokens=3) -> Finished:
    events = list(engine.generate(messages, max_tokens=max_tokens, sampling=GREEDY, thinking=False))
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1]


def test_info_says_vision_yes_for_the_pair(vision_model):
    facts = model_facts(vision_model)
    assert facts["vision"] is True and facts["mmproj"].endswith("mmproj-F16.gguf")


def test_images_are_encoded_once_and_the_context_is_reused(vision_model, tmp_path):
    red = _picture(tmp_path / "red.png", (200, 120))
    with LocalEngine(vision_model, n_ctx=4096, n_threads=1, n_threads_batch=1) as engine:
        info = engine.load()
        assert info.extra["vision"]["enabled"] is True, info.extra["vision"]
        assert info.extra["vision"]["token_pixels"] == 32

        text_only = _run(engine, [{"role": "user", "content": "Describe it."}])
        first = [{"role": "user", "content": "Describe it.", "images": [red]}]
        one = _run(engine, first)
        # 200x120 px -> 7x4 patches of 32 px merged: 24 image tokens (6x4), 6 positions (M-RoPE: max(w, h))
        assert one.extra["images"] == 1 and one.extra["image_encodes"] == 1 and one.extra["image_tokens"] == 24
        # the prompt grows by the image's positions plus <|vision_start|>/<|vision_end|>, not its 24 tokens
        assert one.usage.prompt_tokens - text_only.usage.prompt_tokens == 6 + 2 - 0
        answer = "ok"
        second = first + [{"role": "assistant", "content": answer},
                          {"role": "user", "content": "And now?"}]
        two = _run(engine, second)
        assert two.extra["image_encodes"] == 1  # not encoded again
        assert two.usage.prompt_tokens > one.usage.prompt_tokens
        # the prefix with the image was kept: only what follows it was evaluated
        assert two.usage.prompt_tokens_evaluated < two.usage.prompt_tokens - one.usage.prompt_tokens + 8

        # a different conversation with the same picture: re-decoded from the kept embeddings
        other = _run(engine, [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "What colour?", "images": [red]}])
        assert other.extra["image_encodes"] == 1 and other.extra["image_decodes"] >= 2


def test_big_screenshots_are_downscaled_to_the_token_cap(vision_model, tmp_path, monkeypatch):
    shot = _picture(tmp_path / "screen.png", (1920, 1080), (10, 120, 250))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text("[vision]\nimage_max_tokens = 64\n")
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path))
    with LocalEngine(vision_model, n_ctx=4096, n_threads=1, n_threads_batch=1) as engine:
        info = engine.load()
        assert info.extra["vision"]["image_max_tokens"] == 64
        done = _run(engine, [{"role": "user", "content": "What is on screen?", "images": [shot]}])
        # at full size 1920x1080 is 60x34 = 2,040 tokens; capped at 64 (same aspect ratio)
        assert 0 < done.extra["image_tokens"] <= 64


def test_image_errors_are_one_line_and_the_engine_carries_on(vision_model, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with LocalEngine(vision_model, n_ctx=2048, n_threads=1, n_threads_batch=1) as engine:
        engine.load()
        big = _picture(tmp_path / "big.png", (2048, 1536))  # 1,024 tokens after downscaling: more than 2,048 with 3
        for paths, message in [([str(tmp_path / "missing.png")], "image not found"),
                               ([str(not_an_image)], "cannot read the image"),
                               ([big, big, big], "needs .* tokens; the context holds 2,048")]:
            with pytest.raises(EngineError, match=message):
                _run(engine, [{"role": "user", "content": "look", "images": paths}])
        assert _run(engine, [{"role": "user", "content": "still there?"}]).reason in ("stop", "length")


def test_a_model_without_a_projector_says_so(tiny_qwen35_path, tmp_path):
    red = _picture(tmp_path / "red.png", (64, 64))
    with LocalEngine(tiny_qwen35_path, n_ctx=2048, n_threads=1, n_threads_batch=1, mmproj="") as engine:
        info = engine.load()
        assert "vision" not in info.extra
        with pytest.raises(EngineError, match="no vision projector"):
            _run(engine, [{"role": "user", "content": "look", "images": [red]}])


def test_messages_and_pasted_paths(tmp_path):
    red = _picture(tmp_path / "my shot.png", (32, 32))
    messages, images = split_images([{"role": "user", "content": "hi", "images": [red]},
                                     {"role": "assistant", "content": "yes"}])
    assert images == [red]
    assert messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "hi"}]
    text, found = image_paths_in(f"what is in '{red}' please")
    assert (text, found) == ("what is in please", [red])
    assert image_paths_in("no image /etc/hostname here") == ("no image /etc/hostname here", [])


def test_a_tool_result_can_carry_an_image(vision_model, tmp_path):
    """How a screen-capture tool's image reaches the model: a tool message with `images`."""
    shot = _picture(tmp_path / "capture.png", (320, 200), (0, 160, 0))
    call = {"type": "function", "function": {"name": "screen_capture", "arguments": {}}}
    messages = [{"role": "user", "content": "What is on my screen?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": "captured the screen", "images": [shot]}]
    with LocalEngine(vision_model, n_ctx=4096, n_threads=1, n_threads_batch=1) as engine:
        engine.load()
        done = _run(engine, messages)
        assert done.extra["images"] == 1 and done.extra["image_encodes"] == 1
        assert "<|vision_start|><|image_pad|><|vision_end|>" in engine.render(split_images(messages)[0])


def test_headless_image_flag(vision_model, tmp_path):
    """`qwen-tui -p ... --image PATH` through the real CLI: the image costs its positions in the prompt."""
    import json
    import subprocess
    import sys

    red = _picture(tmp_path / "red.png", (200, 120))

    def run(*extra):
        proc = subprocess.run([sys.executable, "-m", "qwen_tui", "--model", str(vision_model), "-p", "What is this?",
                               "--json", "--max-tokens", "1", "--no-save", "--no-tools", "--no-think",
                               "--threads", "1", *extra],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return proc

    plain, with_image = run(), run("--image", red)
    assert plain.returncode == 0 and with_image.returncode == 0, with_image.stderr
    usage = [json.loads(line)["usage"] for p in (plain, with_image) for line in p.stdout.splitlines()
             if json.loads(line)["type"] == "finished"]
    assert usage[1]["prompt_tokens"] - usage[0]["prompt_tokens"] == 6 + 2  # 6 positions + vision start/end
    missing = run("--image", str(tmp_path / "nope.png"))
    assert missing.returncode == 2 and missing.stderr.strip() == f"qwen-tui: error: image not found: {tmp_path / 'nope.png'}"


def test_a_projector_for_another_model_only_costs_vision(tiny_qwen35_path, tmp_path):
    model = tmp_path / "model.gguf"
    model.symlink_to(tiny_qwen35_path)
    build_tiny_mmproj(tmp_path / "mmproj-F16.gguf", text_n_embd=32)  # projects to 32, the model is 64 wide
    with LocalEngine(model, n_ctx=2048, n_threads=1, n_threads_batch=1) as engine:
        vision = engine.load().extra["vision"]
        assert vision["enabled"] is False and "could not load the vision projector" in vision["error"]
        assert _run(engine, [{"role": "user", "content": "text still works"}]).reason in ("stop", "length")


def test_kept_embeddings_are_bounded():
    """Many screenshots in a long session: the least recently used embeddings are dropped past the cap."""
    import ctypes

    from qwen_tui.engine.vision import ImageEntry, VisionEncoder

    encoder = object.__new__(VisionEncoder)  # the bookkeeping only; no projector needed
    encoder.embeddings_cap = 3 * 4000
    encoder.images = {}
    for slot in range(5):
        entry = ImageEntry(f"k{slot}", slot, None, 1000, 10, (32, 32), [], [], (ctypes.c_float * 1000)())
        entry.last_used = slot
        encoder.images[entry.key] = entry
    newest = encoder.images["k4"]
    encoder.images["k0"].last_used = 10  # used again recently
    encoder._evict(keep=newest)
    kept = sorted(k for k, e in encoder.images.items() if e.embeddings is not None)
    assert kept == ["k0", "k3", "k4"]
