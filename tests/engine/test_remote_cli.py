"""Choosing a server from the command line and the config: `--endpoint`, `--profile`,
`[endpoint]`, `--api-key-env`; headless `-p` streaming from a (scripted, real HTTP) server."""

from __future__ import annotations

import json

import pytest

from qwen_tui.cli import main
from qwen_tui.config import config_path
from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.remote_profiles import resolve_endpoint
from qwen_tui.store import SessionStore
from qwen_tui.testing.openai_stub import OpenAIStub, chunk


@pytest.fixture(autouse=True)
def no_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", None)  # -p appends piped input; there is none here


def tables(**named):
    return lambda name: (named.get(name, {}), [])


def test_flags_override_the_profile_which_overrides_the_endpoint_table():
    load = tables(endpoint={"url": "http://a:1/v1", "timeout": 30, "model": "m1"},
                  **{"profiles.gpu": {"url": "http://gpu:8000/v1", "api_key_env": "GPU_KEY", "n_ctx": 65536}})
    settings, problems = resolve_endpoint(profile="gpu", model="m2", load=load)
    assert problems == []
    assert (settings.url, settings.api_key_env, settings.model, settings.read_timeout, settings.n_ctx) == (
        "http://gpu:8000/v1", "GPU_KEY", "m2", 30.0, 65536)
    settings, _ = resolve_endpoint("http://flag:9/v1", profile="gpu", load=load)
    assert settings.url == "http://flag:9/v1" and settings.model == "m1"


def test_the_endpoint_table_is_the_default_only_without_a_local_model():
    load = tables(endpoint={"url": "http://a:1/v1"})
    assert resolve_endpoint(load=load)[0].url == "http://a:1/v1"
    assert resolve_endpoint(use_default=False, load=load)[0] is None  # --model/--demo given
    assert resolve_endpoint(load=tables())[0] is None


def test_bad_profiles_are_one_line_errors_and_bad_values_are_problems():
    with pytest.raises(EngineError, match=r"no \[profiles.nope\] table"):
        resolve_endpoint(profile="nope", load=tables())
    with pytest.raises(EngineError, match=r"\[profiles.x\] has no url"):
        resolve_endpoint(profile="x", load=tables(**{"profiles.x": {"model": "m"}}))
    with pytest.raises(EngineError, match="must start with http"):
        resolve_endpoint("localhost:8080", load=tables())
    settings, problems = resolve_endpoint("http://h/v1", load=tables(endpoint={"timeout": -1, "tool_calls": "xml"}))
    assert settings.read_timeout == 600.0 and settings.tool_calls == "auto"
    assert problems == ["[endpoint].timeout must be a positive number; ignored",
                        "[endpoint].tool_calls must be one of auto, native, text; ignored"]


def answer(h, body):
    h.sse([chunk("Hello "), chunk("from the server."), chunk(finish="stop"),
           chunk(usage={"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}), "[DONE]"])


def test_headless_answer_from_a_server_is_stored_without_the_key(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_SERVER_KEY", "sk-never-stored-42")
    with OpenAIStub(chat=answer) as stub:
        code = main(["-p", "hi", "--endpoint", stub.url, "--api-key-env", "MY_SERVER_KEY", "--no-tools", "--json"])
        headers = stub.requests[-1][2]
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert out[0]["type"] == "model" and out[0]["name"] == "stub-model" and out[0]["path"] == "stub-model"
    assert "".join(e["text"] for e in out if e["type"] == "text") == "Hello from the server."
    finished = next(e for e in out if e["type"] == "finished")
    assert finished["reason"] == "stop" and finished["usage"]["prompt_tokens"] == 11
    assert headers["Authorization"] == "Bearer sk-never-stored-42"
    session = next(e for e in out if e["type"] == "session")["id"]
    store = SessionStore()
    assert store.load(session).session.model == f"stub-model @ {stub.url}"
    for path in store.path.parent.glob("*"):
        assert b"sk-never-stored-42" not in path.read_bytes(), path


def test_headless_with_a_profile_from_the_config_file(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    with OpenAIStub(chat=answer) as stub:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else None
        path.write_text(f'[profiles.stub]\nurl = "{stub.url}"\nn_ctx = 2048\n')
        try:
            code = main(["-p", "hi", "--profile", "stub", "--no-tools", "--no-save", "--json"])
        finally:
            path.unlink() if old is None else path.write_text(old)
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and out[0]["n_ctx"] == 2048 and out[0]["context"] == "from the config (n_ctx)"


def test_unreachable_endpoint_from_the_command_line(capsys):
    code = main(["-p", "hi", "--endpoint", "http://127.0.0.1:9/v1", "--no-save"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qwen-tui: error: cannot reach the server at http://127.0.0.1:9/v1")
    assert len(err.strip().splitlines()) == 1


def test_server_flags_without_a_server(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code = main(["-p", "hi", "--demo", "--api-key-env", "X", "--no-save"])
    assert code == 2 and "--api-key-env and --remote-model need a server" in capsys.readouterr().err
