"""RemoteEngine against real HTTP: llama-cpp-python's OpenAI-compatible server (started by the
test on 127.0.0.1, serving the tiny Qwen 3.5 model) for the happy paths, and a scripted stub
server (OpenAIStub, also real HTTP on 127.0.0.1) for what real servers do only rarely: refuse
the key, lose the model, fail mid-stream, go silent, stream slowly, send native tool calls."""

from __future__ import annotations

import threading
import time

import pytest

from qwen_tui.engine.base import Engine
from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Finished, Notice, ReasoningDelta, TextDelta, ToolCallRequest
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.remote import RemoteEngine
from qwen_tui.engine.remote_profiles import EndpointSettings
from qwen_tui.engine.remote_wire import AuthFailed, ModelNotFound, ServerUnreachable
from qwen_tui.testing.llama_server import free_port, llama_server
from qwen_tui.testing.openai_stub import OpenAIStub, chunk

HI = [{"role": "user", "content": "hi"}]


def literal(text: str) -> str:
    return 'root ::= "' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def forced(text: str) -> Sampling:
    return Sampling(temperature=0, grammar=literal(text))


def texts(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.fixture(scope="module")
def server(tiny_qwen35_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server(tiny_qwen35_path, n_ctx=4096, log_path=log) as url:
        yield url


@pytest.fixture(scope="module")
def remote(server):
    engine = RemoteEngine(server)
    engine.load()
    yield engine
    engine.close()


# -- a real server ---------------------------------------------------------------------------


def test_connects_and_learns_the_model_and_how_to_count_tokens(server, tiny_qwen35_path):
    engine = RemoteEngine(EndpointSettings(url=server.removesuffix("/v1") + "/", n_ctx=4096))
    assert isinstance(engine, Engine)
    info = engine.load()
    assert info.name == str(tiny_qwen35_path)  # llama-cpp-python names the model by its path
    assert info.n_ctx == 4096 and "config" in info.context_reason
    assert info.short_settings == f"server {server.removesuffix('/v1')}/"
    assert engine.token_counts == "server"
    assert engine.text_tool_calls  # llama-cpp-python's server cannot take native calls back
    assert 0 < len(engine.tokenize("hello world, this is a test")) < 27  # real tokens, not characters
    engine.close()


def test_streams_an_answer_with_usage_from_the_servers_tokenizer(server):
    engine = RemoteEngine(server)
    engine.load()
    events = list(engine.generate(HI, thinking=False, max_tokens=40, sampling=forced("Hello there, friend")))
    assert texts(events) == "Hello there, friend"
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # streamed, not in one piece
    done = events[-1]
    assert isinstance(done, Finished) and done.reason == "stop", done.error
    assert done.extra["usage_source"] == "tokenizer"
    assert done.usage.completion_tokens >= 4 and done.usage.prompt_tokens >= 1
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert notices == [("the server does not report token usage: token counts come from its tokenizer on the prompt as "
                        "rendered here (close, not exact)")]
    again = list(engine.generate(HI, thinking=False, max_tokens=40, sampling=forced("Again")))
    assert texts(again) == "Again" and not any(isinstance(e, Notice) for e in again)  # said once
    engine.close()


def test_max_tokens_ends_with_length(remote):
    events = list(remote.generate(HI, thinking=False, max_tokens=3, sampling=forced("one two three four five six seven")))
    assert events[-1].reason == "length" and len(texts(events)) < len("one two three four five six seven")


def test_cancel_mid_stream_is_prompt_and_the_server_is_free_again(remote):
    long = forced("word " * 300)
    for _ in range(2):
        seen, latency = 0, None
        for event in remote.generate(HI, thinking=False, max_tokens=1000, sampling=long):
            if isinstance(event, TextDelta):
                seen += 1
                if seen == 5:
                    t0 = time.perf_counter()
                    threading.Thread(target=remote.cancel).start()  # Esc comes from another thread
            if isinstance(event, Finished):
                latency = time.perf_counter() - t0
        assert event.reason == "cancelled"
        assert latency < 0.25, f"cancel took {latency * 1000:.0f} ms"
    start = time.perf_counter()
    after = list(remote.generate(HI, thinking=False, max_tokens=20, sampling=forced("Still here")))
    assert texts(after) == "Still here" and after[-1].reason == "stop"
    # The server stopped the cancelled answer (it saw the socket close): 300 words would take far longer.
    assert time.perf_counter() - start < 10


def test_raw_prompt_uses_the_completions_endpoint(remote):
    events = list(remote.generate(prompt="<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", max_tokens=10,
                                  sampling=forced("Raw")))
    assert texts(events) == "Raw" and events[-1].reason == "stop"


# -- the stub: errors ------------------------------------------------------------------------


def test_unreachable_server_is_one_clear_line():
    port = free_port()  # nothing listens there
    engine = RemoteEngine(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ServerUnreachable) as err:
        engine.load()
    message = str(err.value)
    assert message.startswith(f"cannot reach the server at http://127.0.0.1:{port}/v1") and "\n" not in message


def test_connect_timeout_when_the_server_accepts_nothing():
    """A listening socket whose accept queue is full: connections hang, as with a dead host."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    try:
        start = time.monotonic()
        with pytest.raises(ServerUnreachable) as err:
            RemoteEngine(EndpointSettings(url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.5)).load()
        assert str(err.value) == f"the server at http://127.0.0.1:{port}/v1 did not accept a connection within 0.5 s"
        assert time.monotonic() - start < 5
    finally:
        for c in fillers:
            c.close()
        srv.close()


def test_server_going_away_after_load_ends_the_generation_with_an_error():
    stub = OpenAIStub(chat=lambda h, body: h.sse([chunk("x"), "[DONE]"]))
    with stub:
        engine = RemoteEngine(stub.url)
        engine.load()
    events = list(engine.generate(HI, max_tokens=5))
    assert events[-1].reason == "error" and events[-1].error.startswith("cannot reach the server")


def test_auth_failure_names_the_variable_never_the_key(monkeypatch):
    monkeypatch.setenv("TEST_REMOTE_KEY", "sk-secret-123")

    def refuse(h, body):
        h.json(401, {"detail": "Invalid API key"})

    with OpenAIStub(models=refuse, chat=refuse) as stub:
        settings = EndpointSettings(url=stub.url, api_key_env="TEST_REMOTE_KEY")
        engine = RemoteEngine(settings)
        with pytest.raises(AuthFailed) as err:
            engine.load()
        assert stub.requests[0][2].get("Authorization") == "Bearer sk-secret-123"
    message = str(err.value)
    assert "HTTP 401" in message and "Invalid API key" in message and "$TEST_REMOTE_KEY" in message
    assert "sk-secret" not in message and "sk-secret" not in repr(settings) and "sk-secret" not in settings.label


def test_auth_failure_without_a_key_says_how_to_give_one():
    with OpenAIStub(models=lambda h, body: h.json(403, {"error": {"message": "forbidden"}})) as stub:
        with pytest.raises(AuthFailed, match="--api-key-env NAME"):
            RemoteEngine(stub.url).load()


def test_a_named_but_unset_key_variable_is_an_error_before_connecting(monkeypatch):
    monkeypatch.delenv("TEST_REMOTE_NO_KEY", raising=False)
    with pytest.raises(EngineError, match=r"\$TEST_REMOTE_NO_KEY is not set"):
        RemoteEngine(EndpointSettings(url="http://127.0.0.1:9/v1", api_key_env="TEST_REMOTE_NO_KEY"))


def test_model_not_found_lists_what_the_server_has():
    with OpenAIStub(models=["qwen3.5-27b", "qwen3.5-4b"]) as stub:
        with pytest.raises(ModelNotFound) as err:
            RemoteEngine(EndpointSettings(url=stub.url, model="qwen3.5-9b")).load()
    assert str(err.value) == f"model 'qwen3.5-9b' not found on {stub.url}; it serves: qwen3.5-27b, qwen3.5-4b"


def test_model_not_found_at_generation_time():
    def chat(h, body):
        h.json(404, {"error": {"message": f"The model `{body['model']}` does not exist.", "type": "NotFoundError"}})

    with OpenAIStub(models=[], chat=chat) as stub:  # lists nothing (some proxies): the name is tried as given
        engine = RemoteEngine(EndpointSettings(url=stub.url, model="ghost"))
        engine.load()
        done = list(engine.generate(HI))[-1]
    assert done.reason == "error"
    assert done.error == f"model 'ghost' not found on {stub.url} (The model `ghost` does not exist.)"


def test_not_an_openai_server():
    with OpenAIStub(models=lambda h, body: h.json(404, {"error": "no such page"})) as stub:
        with pytest.raises(EngineError, match="has no /models .*OpenAI-compatible"):
            RemoteEngine(stub.url).load()


def test_server_error_before_and_during_the_stream():
    def before(h, body):
        h.json(500, {"error": {"message": "CUDA out of memory", "type": "internal_server_error"}})

    def during(h, body):
        h.sse([chunk("Hal"), chunk("f an"), {"error": {"message": "the worker died"}}])

    with OpenAIStub(chat=before) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        done = list(engine.generate(HI))[-1]
        assert done.reason == "error" and done.error == f"the server at {stub.url} answered HTTP 500 (CUDA out of memory)"
        stub.routes["/v1/chat/completions"] = during
        events = list(engine.generate(HI))
    assert texts(events) == "Half an"  # what came before the failure is kept
    assert events[-1].reason == "error" and events[-1].error.startswith("the server failed mid-answer: the worker died")


def test_connection_dropped_mid_stream():
    def drop(h, body):
        h.sse([chunk("part")], end=False)
        h.wfile.write(b"40\r\ndata: {\"choi")  # a chunk cut short, then the socket closes
        h.wfile.flush()
        h.close_connection = True

    with OpenAIStub(chat=drop) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        events = list(engine.generate(HI))
    assert texts(events) == "part"
    assert events[-1].reason == "error" and events[-1].error.startswith("the server closed the connection mid-answer")


def test_read_timeout_between_chunks():
    def stall(h, body):
        h.sse([chunk("thinking hard")], end=False)
        h.hang(5)

    with OpenAIStub(chat=stall) as stub:
        engine = RemoteEngine(EndpointSettings(url=stub.url, read_timeout=0.5))
        engine.load()
        start = time.monotonic()
        events = list(engine.generate(HI))
        elapsed = time.monotonic() - start
    assert texts(events) == "thinking hard"
    assert events[-1].reason == "error" and events[-1].error == (
        f"the server at {stub.url} sent nothing for 0.5 s (read timeout; raise `timeout` in the [endpoint] or profile config)")
    assert elapsed < 4


def test_slow_server_streams_past_the_read_timeout_as_long_as_chunks_keep_coming():
    words = ["slow ", "but ", "steady ", "wins ", "the ", "race"]
    items = [": ping\n\n", *[chunk(w) for w in words], chunk(finish="stop"), "[DONE]"]
    with OpenAIStub(chat=lambda h, body: h.sse(items, gap=0.25)) as stub:
        engine = RemoteEngine(EndpointSettings(url=stub.url, read_timeout=0.8))
        engine.load()
        start = time.monotonic()
        events = list(engine.generate(HI))
        elapsed = time.monotonic() - start
    assert texts(events) == "slow but steady wins the race" and events[-1].reason == "stop"
    assert elapsed > 0.8 * 2  # the whole answer took longer than the read timeout, twice
    assert events[-1].extra["usage_source"] == "estimated"  # the stub has no tokenize endpoint


def test_cancel_while_the_server_has_not_answered_yet():
    with OpenAIStub(chat=lambda h, body: h.hang(10)) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        threading.Timer(0.3, engine.cancel).start()
        start = time.monotonic()
        events = list(engine.generate(HI))
        elapsed = time.monotonic() - start
    assert events[-1].reason == "cancelled"
    assert elapsed < 0.3 + 0.25, f"took {elapsed * 1000:.0f} ms"


def test_stream_ending_without_done_is_an_error():
    with OpenAIStub(chat=lambda h, body: h.sse([chunk("cut")])) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        events = list(engine.generate(HI))
    assert events[-1].reason == "error" and "without finishing" in events[-1].error


# -- the stub: what servers send -------------------------------------------------------------


def test_native_tool_calls_are_accumulated_by_index_and_usage_comes_from_the_server():
    deltas = [
        chunk("Let me check."),
        chunk(tool_calls=[{"index": 0, "id": "call_a", "type": "function", "function": {"name": "read_file", "arguments": ""}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"path": '}}]),
        chunk(tool_calls=[{"index": 1, "id": "call_b", "type": "function", "function": {"name": "add", "arguments": '{"a": 2'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '"README.md"}'}}]),
        chunk(tool_calls=[{"index": 1, "function": {"arguments": ', "b": 3}'}}]),
        chunk(finish="tool_calls"),
        chunk(usage={"prompt_tokens": 120, "completion_tokens": 31, "total_tokens": 151,
                     "prompt_tokens_details": {"cached_tokens": 100}}),
        "[DONE]",
    ]
    with OpenAIStub(chat=lambda h, body: h.sse(deltas)) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        events = list(engine.generate(HI, tools=[{"type": "function", "function": {"name": "add"}}], thinking=False))
        body = stub.chat_bodies()[0]
    calls = [e for e in events if isinstance(e, ToolCallRequest)]
    assert calls == [ToolCallRequest(0, "read_file", '{"path": "README.md"}', "call_a"),
                     ToolCallRequest(1, "add", '{"a": 2, "b": 3}', "call_b")]
    assert texts(events) == "Let me check."
    done = events[-1]
    assert done.reason == "stop" and done.extra["usage_source"] == "server"
    assert (done.usage.prompt_tokens, done.usage.prompt_tokens_evaluated, done.usage.completion_tokens) == (120, 20, 31)
    assert not any(isinstance(e, Notice) for e in events)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["tools"][0]["function"]["name"] == "add"
    assert body["model"] == "stub-model"


def test_reasoning_content_and_think_tags_become_reasoning():
    split = [chunk(reasoning="Two plus "), chunk(reasoning="three."), chunk("It is 5."), chunk(finish="stop"), "[DONE]"]
    inline = [chunk("<think>\nTwo plus"), chunk(" three.</th"), chunk("ink>\n\nIt is 5."), chunk(finish="stop"), "[DONE]"]
    for script in (split, inline):
        with OpenAIStub(chat=lambda h, body, s=script: h.sse(s)) as stub:
            engine = RemoteEngine(stub.url)
            engine.load()
            events = list(engine.generate(HI))
        assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Two plus three."
        assert texts(events) == "It is 5."


def test_past_tool_calls_are_sent_back_with_ids_and_json_arguments():
    history = [
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]},
        {"role": "tool", "content": "5"},
    ]
    with OpenAIStub(chat=lambda h, body: h.sse([chunk("5"), chunk(finish="stop"), "[DONE]"])) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        assert not engine.text_tool_calls  # a server that takes calls back natively
        list(engine.generate(history))
        sent = stub.chat_bodies()[0]["messages"]
    assert sent[1]["tool_calls"] == [{"id": "call_0", "type": "function",
                                      "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]
    assert sent[2] == {"role": "tool", "content": "5", "tool_call_id": "call_0"}


def test_a_llama_server_like_server_gives_context_template_tokens_and_timings():
    """llama-server's extras: /props (n_ctx, chat template), /tokenize, and `timings` in the stream."""
    template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"

    def tokenize(h, body):
        h.json(200, {"tokens": list(range(len(body["content"].split())))})  # one token a word

    def chat(h, body):
        h.sse([chunk(reasoning="Hm."), chunk("Four words right here."), chunk(finish="stop"),
               {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 6, "total_tokens": 56},
                "timings": {"prompt_n": 8, "prompt_ms": 40.0, "predicted_n": 6, "predicted_ms": 120.0}},
               "[DONE]"])

    routes = {"/props": lambda h, body: h.json(200, {"default_generation_settings": {"n_ctx": 16384},
                                                     "chat_template": template}),
              "/tokenize": tokenize}
    with OpenAIStub(chat=chat, routes=routes) as stub:
        engine = RemoteEngine(stub.url)
        info = engine.load()
        assert (info.n_ctx, info.context_reason) == (16384, "the server's n_ctx (/props)")
        assert engine.token_counts == "server" and not engine.text_tool_calls
        assert len(engine.tokenize("one two three")) == 3
        assert engine.render(HI) == "<|user|>hi\n<|assistant|>"  # the server's own template
        events = list(engine.generate(HI))
    done = events[-1]
    assert done.reason == "stop" and done.extra["usage_source"] == "server"
    assert (done.usage.prompt_tokens, done.usage.prompt_tokens_evaluated, done.usage.completion_tokens) == (50, 8, 6)
    assert (done.timings.prompt_ms, done.timings.decode_ms) == (40.0, 120.0)
    assert done.timings.tokens_per_s(done.usage.completion_tokens) == 50.0


def test_without_a_tokenize_endpoint_counts_are_estimates_and_say_so():
    with OpenAIStub(chat=lambda h, body: h.sse([chunk("abcdefgh"), chunk(finish="stop"), "[DONE]"])) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        assert engine.token_counts == "estimated" and engine.info.extra["token_counts"] == "estimated"
        assert len(engine.tokenize("x" * 40)) == 10  # ~4 characters a token
        events = list(engine.generate(HI))
    assert [e.text for e in events if isinstance(e, Notice)] == [
        "the server does not report token usage: token counts are estimated at ~4 characters a token"]
    assert events[-1].extra["usage_source"] == "estimated"
    assert "hi" in engine.render(HI)  # ChatML, an estimate of the server's prompt


def test_prompt_counts_match_what_the_server_itself_counts(remote):
    """The context meter and compaction count with the server's tokenizer: compare with the
    server's own usage (its non-streamed answer reports it) for a real conversation."""
    import httpx

    from qwen_tui.context.budget import TokenCounter

    chat = [{"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Tell me about lighthouses and the sea. " * 20},
            {"role": "assistant", "content": "Lighthouses guide ships."},
            {"role": "user", "content": "More please."}]
    truth = httpx.post(remote.api + "/chat/completions", json={"messages": chat, "max_tokens": 1},
                       timeout=120).json()["usage"]["prompt_tokens"]
    counted = TokenCounter(remote).prompt_tokens(chat)
    streamed = list(remote.generate(chat, thinking=False, max_tokens=5, sampling=forced("ok")))[-1]
    for n in (counted, streamed.usage.prompt_tokens):
        assert abs(n - truth) <= 0.05 * truth, (n, truth)  # ChatML vs the server's Qwen template
    assert len(remote.tokenize("Tell me about lighthouses and the sea. " * 20)) < truth  # tokens, not characters


def test_a_real_server_with_an_api_key(tiny_qwen35_path, monkeypatch, tmp_path):
    """llama_cpp.server --api_key: a wrong key is refused with a clear line, the right one works."""
    monkeypatch.setenv("TEST_LLAMA_KEY", "right-key")
    monkeypatch.setenv("TEST_WRONG_KEY", "wrong-key")
    with llama_server(tiny_qwen35_path, n_ctx=1024, api_key="right-key", log_path=tmp_path / "server.log") as url:
        with pytest.raises(AuthFailed) as err:
            RemoteEngine(EndpointSettings(url=url, api_key_env="TEST_WRONG_KEY")).load()
        assert str(err.value) == (f"the server at {url} refused the request: HTTP 401 (Invalid API key); "
                                  "check the key in $TEST_WRONG_KEY")
        with pytest.raises(AuthFailed, match="needs an API key"):
            RemoteEngine(url).load()
        engine = RemoteEngine(EndpointSettings(url=url, api_key_env="TEST_LLAMA_KEY"))
        engine.load()
        assert texts(engine.generate(HI, thinking=False, max_tokens=10, sampling=forced("Welcome"))) == "Welcome"
        engine.close()


def test_a_server_that_leaves_calls_as_text_gets_them_back_as_text():
    call = "<tool_call>\n<function=add>\n<parameter=a>\n2\n</parameter>\n</function>\n</tool_call>"
    with OpenAIStub(chat=lambda h, body: h.sse([chunk(call), chunk(finish="stop"), "[DONE]"])) as stub:
        engine = RemoteEngine(stub.url)
        engine.load()
        assert not engine.text_tool_calls
        events = list(engine.generate(HI, tools=[{"type": "function", "function": {"name": "add"}}]))
    assert texts(events) == call and engine.text_tool_calls  # the agent's parser reads it; history goes back as text
