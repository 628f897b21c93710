"""The OpenAI wire format pieces of RemoteEngine: URLs users type, SSE framing, history sent
back (native and as text), and error bodies of the servers we target."""

from __future__ import annotations

import pytest

from qwen_tui.engine.remote_wire import AuthFailed, ModelNotFound, api_urls, call_as_xml, error_text, http_error, sse_data, to_openai_messages


@pytest.mark.parametrize("typed", ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/",
                                   "http://h:8000/v1/chat/completions"])
def test_urls_users_type(typed):
    assert api_urls(typed) == ("http://h:8000/v1", "http://h:8000")


def test_sse_framing():
    lines = [": ping - 2026-01-01", "", "data: {\"a\": 1}", "", "event: message", "data:first", "data: second", "",
             "id: 7", "data: [DONE]"]
    assert list(sse_data(lines)) == ['{"a": 1}', "first\nsecond", "[DONE]"]


HISTORY = [
    {"role": "user", "content": "read both"},
    {"role": "assistant", "content": "Reading.", "reasoning_content": "two files",
     "tool_calls": [{"type": "function", "function": {"name": "read", "arguments": {"path": "a.py"}}},
                    {"type": "function", "function": {"name": "read", "arguments": {"path": "b.py", "lines": [1, 2]}}}]},
    {"role": "tool", "content": "A"},
    {"role": "tool", "content": "B"},
    {"role": "tool", "content": "Error: malformed"},  # a parse-error note, answering no call
]


def test_history_sent_back_natively():
    out = to_openai_messages(HISTORY, text_tool_calls=False)
    assert out[1]["tool_calls"][1] == {"id": "call_1", "type": "function",
                                       "function": {"name": "read", "arguments": '{"path": "b.py", "lines": [1, 2]}'}}
    assert out[1]["reasoning_content"] == "two files" and out[1]["content"] == "Reading."
    assert [m.get("tool_call_id") for m in out[2:]] == ["call_0", "call_1", "call_2"]
    assert HISTORY[1]["tool_calls"][0]["function"]["arguments"] == {"path": "a.py"}  # the input is not changed


def test_history_sent_back_as_the_models_own_text():
    out = to_openai_messages(HISTORY, text_tool_calls=True)
    assert "tool_calls" not in out[1]
    assert out[1]["content"] == "Reading.\n\n" + call_as_xml("read", {"path": "a.py"}) + "\n" + call_as_xml(
        "read", {"path": "b.py", "lines": [1, 2]})
    assert call_as_xml("read", {"path": "a.py", "n": 3}) == (
        "<tool_call>\n<function=read>\n<parameter=path>\na.py\n</parameter>\n<parameter=n>\n3\n</parameter>\n"
        "</function>\n</tool_call>")


@pytest.mark.parametrize("body,text", [
    ('{"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}}',
     "The model `x` does not exist."),                                   # vLLM, OpenAI
    ('{"error": "model \\"x\\" not found, try pulling it first"}', 'model "x" not found, try pulling it first'),  # Ollama
    ('{"detail": "Invalid API key"}', "Invalid API key"),                 # FastAPI (llama-cpp-python)
    ('{"detail": [{"msg": "field required"}, {"msg": "bad type"}]}', "field required; bad type"),
    ("<html>\n<body>502 Bad Gateway</body>\n</html>", "<html> <body>502 Bad Gateway</body> </html>"),
])
def test_error_bodies_become_one_line(body, text):
    assert error_text(body) == text


def test_status_codes_become_the_right_errors():
    auth = http_error(401, b'{"detail": "nope"}', url="U", path="/models", model="m", key_env=None)
    assert isinstance(auth, AuthFailed) and "--api-key-env NAME" in str(auth)
    missing = http_error(404, b'{"error": {"message": "model m not found"}}', url="U", path="/chat/completions",
                         model="m", key_env=None)
    assert isinstance(missing, ModelNotFound) and str(missing) == "model 'm' not found on U (model m not found)"
    assert len(error_text("x" * 500)) == 200
