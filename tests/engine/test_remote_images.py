"""Images through RemoteEngine, checked on what a real HTTP server (the scripted OpenAIStub on
127.0.0.1) received: OpenAI `image_url` content parts with downscaled data URLs, and a server
that refuses images."""

from __future__ import annotations

import base64
import io
import math

import pytest
from PIL import Image

from qwen_tui.agent.loop import Agent
from qwen_tui.context.image_cost import ImageCost
from qwen_tui.engine.events import Finished, Notice, TextDelta
from qwen_tui.engine.remote import RemoteEngine
from qwen_tui.testing.openai_stub import OpenAIStub, chunk

ANSWER = [chunk("I see it."), chunk(finish="stop"), "[DONE]"]
LLAMA_SERVER_REFUSAL = {"error": {"code": 400, "type": "invalid_request_error", "message":
                                  "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"}}


def answering(h, body):
    h.sse(ANSWER)


def picture(path, size, fmt="PNG", colour=(200, 30, 30)):
    Image.new("RGB", size, colour).save(path, fmt)
    return str(path)


def decoded(part: dict) -> tuple[str, Image.Image]:
    """(mime type, image) of an image_url content part."""
    assert part["type"] == "image_url"
    head, data = part["image_url"]["url"].split(",", 1)
    assert head.startswith("data:image/") and head.endswith(";base64")
    return head[5:-7], Image.open(io.BytesIO(base64.b64decode(data)))


def tokens(image: Image.Image) -> int:
    return math.ceil(image.width / 32) * math.ceil(image.height / 32)


def connected(stub) -> RemoteEngine:
    engine = RemoteEngine(stub.url)
    engine.load()
    return engine


def test_a_users_image_is_sent_downscaled_as_an_image_url_part_before_the_text(tmp_path):
    shot = picture(tmp_path / "screen.png", (3840, 2160))  # a 4K screenshot: ~8,100 tokens at full size
    with OpenAIStub(chat=answering) as stub:
        events = list(connected(stub).generate([{"role": "user", "content": "What is on screen?", "images": [shot]}]))
        sent = stub.chat_bodies()[0]["messages"][-1]
    assert events[-1].reason == "stop" and "".join(e.text for e in events if isinstance(e, TextDelta)) == "I see it."
    assert sent["role"] == "user" and "images" not in sent  # no local paths go to the server
    image_part, text_part = sent["content"]
    assert text_part == {"type": "text", "text": "What is on screen?"}
    mime, image = decoded(image_part)
    assert mime == "image/png"
    assert 950 <= tokens(image) <= 1024  # the default cap (as the context budget counts it), nearly used up
    assert abs(image.width / image.height - 3840 / 2160) < 0.02  # same shape
    assert image.getpixel((10, 10)) == (200, 30, 30)


def test_an_image_that_fits_is_sent_as_its_own_bytes(tmp_path):
    photo = picture(tmp_path / "photo.jpg", (640, 480), fmt="JPEG")
    with OpenAIStub(chat=answering) as stub:
        list(connected(stub).generate([{"role": "user", "content": "", "images": [photo]}]))
        content = stub.chat_bodies()[0]["messages"][-1]["content"]
    assert len(content) == 1  # no empty text part
    assert content[0]["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(open(photo, "rb").read()).decode()


def test_the_vision_config_caps_the_image_size(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "config").mkdir(parents=True)
    (tmp_path / "home" / "config" / "config.toml").write_text("[vision]\nimage_max_tokens = 64\n")
    big = picture(tmp_path / "big.webp", (1000, 1000), fmt="WEBP")
    with OpenAIStub(chat=answering) as stub:
        list(connected(stub).generate([{"role": "user", "content": "and this?", "images": [big]}]))
        mime, image = decoded(stub.chat_bodies()[0]["messages"][-1]["content"][0])
    assert mime == "image/png"  # WebP is re-encoded (llama-server cannot read it)
    assert tokens(image) <= 64 and image.size[0] >= 200


def test_a_tool_results_image_rides_on_the_tool_message(tmp_path):
    shot = picture(tmp_path / "capture.png", (300, 200))
    history = [
        {"role": "user", "content": "take a screenshot"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "screen", "arguments": {}}}]},
        {"role": "tool", "content": "captured 300x200", "images": [shot]},
    ]
    with OpenAIStub(chat=answering) as stub:
        list(connected(stub).generate(history))
        sent = stub.chat_bodies()[0]["messages"][2]
    assert sent["role"] == "tool" and sent["tool_call_id"] == "call_0"
    assert decoded(sent["content"][0])[1].size == (300, 200)
    assert sent["content"][1] == {"type": "text", "text": "captured 300x200"}


def test_a_server_that_refuses_images_says_so_in_one_line_and_later_turns_go_without_them(tmp_path):
    shot = picture(tmp_path / "cat.png", (64, 64))
    asked = [{"role": "user", "content": "What animal?", "images": [shot]}]

    def chat(h, body):
        has_image = any(isinstance(m.get("content"), list) for m in body["messages"])
        h.json(400, LLAMA_SERVER_REFUSAL) if has_image else h.sse(ANSWER)

    with OpenAIStub(chat=chat) as stub:
        engine = connected(stub)
        done = list(engine.generate(asked))[-1]
        assert done.reason == "error" and "\n" not in done.error
        assert done.error.startswith(f"the server at {stub.url} does not accept images (HTTP 400: image input is not supported")
        again = list(engine.generate(asked))
        third = list(engine.generate(asked))
        bodies = stub.chat_bodies()
    assert again[-1].reason == "stop" and third[-1].reason == "stop"
    assert [e.text for e in again if isinstance(e, Notice)][0].startswith("images are not sent: the server refused them (HTTP 400")
    assert not any(isinstance(e, Notice) and "images" in e.text for e in third)  # said once
    resent = bodies[1]["messages"][-1]
    assert resent == {"role": "user", "content": "What animal?\n\n[1 image(s) not sent: the server does not accept images (cat.png)]"}


def test_an_unrelated_400_with_images_is_reported_as_it_is(tmp_path):
    shot = picture(tmp_path / "a.png", (64, 64))
    refusal = {"error": {"message": "the request exceeds the available context size", "type": "exceed_context_size_error"}}
    with OpenAIStub(chat=lambda h, body: h.json(400, refusal)) as stub:
        engine = connected(stub)
        done = list(engine.generate([{"role": "user", "content": "hi", "images": [shot]}]))[-1]
    assert done.error == f"the server at {stub.url} answered HTTP 400 (the request exceeds the available context size)"
    assert engine.images_refused is None  # images are still sent next time


@pytest.mark.parametrize("name, content, expected", [
    ("missing.png", None, "image not found: "),
    ("notes.png", b"this is text, not a picture", "cannot read the image "),
])
def test_an_unreadable_image_ends_the_generation_with_one_line_before_anything_is_sent(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with OpenAIStub(chat=answering) as stub:
        events = list(connected(stub).generate([{"role": "user", "content": "look", "images": [str(path)]}]))
        assert stub.chat_bodies() == []
    done = events[-1]
    assert isinstance(done, Finished) and done.reason == "error"
    assert done.error.startswith(expected + str(path)) and "\n" not in done.error


def test_an_image_edited_between_turns_is_sent_as_it_is_now(tmp_path):
    """The encoded images are kept between requests; a changed file must not be served stale."""
    import os

    path = tmp_path / "chart.png"
    picture(path, (64, 64), colour=(200, 30, 30))
    asked = [{"role": "user", "content": "colour?", "images": [str(path)]}]
    with OpenAIStub(chat=answering) as stub:
        engine = connected(stub)
        list(engine.generate(asked))
        list(engine.generate(asked))
        picture(path, (64, 64), colour=(30, 30, 200))  # same size on disk: only the mtime tells
        later = path.stat().st_mtime_ns + 2_000_000_000
        os.utime(path, ns=(later, later))
        list(engine.generate(asked))
        colours = [decoded(b["messages"][-1]["content"][0])[1].getpixel((5, 5)) for b in stub.chat_bodies()]
    assert colours == [(200, 30, 30), (200, 30, 30), (30, 30, 200)]


def test_a_server_that_says_it_sees_images_is_a_vision_model_for_the_agent_and_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_TUI_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "config").mkdir(parents=True)
    (tmp_path / "home" / "config" / "config.toml").write_text("[vision]\nimage_max_tokens = 256\n")
    shot = picture(tmp_path / "s.png", (3840, 2160))
    props = {"default_generation_settings": {"n_ctx": 8192}, "modalities": {"vision": True, "audio": False}}
    with OpenAIStub(chat=answering, routes={"/props": lambda h, body: h.json(200, props)}) as stub:
        engine = connected(stub)
        list(engine.generate([{"role": "user", "content": "?", "images": [shot]}]))
        sent = decoded(stub.chat_bodies()[0]["messages"][-1]["content"][0])[1]
    assert engine.info.extra["vision"]["enabled"] is True
    assert Agent(engine).context.model_has_vision  # screenshots from tools are attached
    counted = ImageCost.for_engine(engine).cells(shot) - 2  # the context budget's estimate
    assert 200 <= tokens(sent) <= 256 and 200 <= counted <= 256  # both with the configured cap, not 1024


@pytest.mark.parametrize("where", ["props", "models"])
def test_a_server_that_says_it_cannot_see_images_gets_none_and_a_notice(tmp_path, where):
    shot = picture(tmp_path / "cat.png", (64, 64))
    routes = {"/props": lambda h, body: h.json(200, {"modalities": {"vision": False}})} if where == "props" else {}
    listing = {"data": [{"id": "text-only", "architecture": {"input_modalities": ["text"]}}]}
    models = (lambda h, body: h.json(200, listing)) if where == "models" else None
    with OpenAIStub(chat=answering, routes=routes, models=models) as stub:
        engine = connected(stub)
        assert "vision" not in engine.info.extra and not Agent(engine).context.model_has_vision
        events = list(engine.generate([{"role": "user", "content": "What animal?", "images": [shot]}]))
        sent = stub.chat_bodies()[0]["messages"][-1]
    assert events[-1].reason == "stop"
    assert [e.text for e in events if isinstance(e, Notice)][0] == "images are not sent: the server says its model cannot see images"
    assert sent["content"].startswith("What animal?\n\n[1 image(s) not sent")
