"""RemoteEngine: the same engine interface (engine/base.py) over an OpenAI-compatible server.

llama-server, vLLM, SGLang, Ollama and llama-cpp-python's server all speak
`POST /v1/chat/completions` with `stream: true` (Server-Sent Events). Each chunk is mapped to
events by `ChatStream` (remote_reply.py): `delta.content` to TextDelta (a `<think>` block inside
it is split off as reasoning, for servers that don't), `delta.reasoning_content` /
`delta.reasoning` to ReasoningDelta, and native `tool_calls` deltas (accumulated by index) to
ToolCallRequest events at the end of the reply. Calls written as text (Qwen's `<tool_call>` XML
in the content) are left to the agent's parser.

Images (a message's "images" paths) are sent inline as `image_url` content parts, downscaled
(remote_images.py). A server that refuses them ends that generation with one line saying so,
and from then on images are left out of the requests (a note stands in their place); one that
says up front whether its model sees images (llama-server's /props `modalities`) is believed:
no images at all, or `info.extra["vision"]` like a local projector (tools then attach images).

The HTTP exchange runs in a reader thread that hands lines over a queue, so `cancel()` (any
thread) returns the generation at once, even while the server is still evaluating the prompt,
and shuts the socket down so the server stops too. There is no total timeout: only the
connection and the gap between two chunks (`read_timeout`) are bounded.

Token counts: the server's usage (`stream_options.include_usage`) when it sends it; otherwise
its tokenize endpoint (llama-server `/tokenize`, vLLM `/tokenize`, llama-cpp-python
`/extras/tokenize`) on the prompt rendered here (`render()`: the server's template from
llama-server's /props, else ChatML), otherwise ~4 characters a token.
`Finished.extra["usage_source"]` says which, and a Notice says so once. What load() probes
is in remote_probe.py; the wire format (messages, SSE, error text) in remote_wire.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from qwen_tui.engine import remote_images
from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Event, Finished, Notice, Timings, Usage
from qwen_tui.engine.model_info import ModelInfo
from qwen_tui.engine.params import Sampling
from qwen_tui.engine.remote_images import ImageUnreadable
from qwen_tui.engine.remote_probe import DEFAULT_N_CTX, context_and_template, sees_images, server_props, tokenize_path
from qwen_tui.engine.remote_profiles import EndpointSettings
from qwen_tui.engine.remote_reply import ChatStream, StreamFailed
from qwen_tui.engine.remote_stream import Cancelled, Exchange, HTTPStatus
from qwen_tui.engine.remote_wire import (
    ModelNotFound,
    RemoteError,
    ServerUnreachable,
    api_urls,
    error_text,
    flatten,
    http_error,
    server_timings,
    server_usage,
    sse_data,
    to_openai_messages,
)
from qwen_tui.engine.resources import ThreadPlan

__all__ = ["CHARS_PER_TOKEN", "DEFAULT_N_CTX", "RemoteEngine", "RemoteModelInfo"]

CHARS_PER_TOKEN = 4


class RemoteModelInfo(ModelInfo):
    @property
    def short_settings(self) -> str:
        return f"server {self.extra.get('endpoint', '')}"


class RemoteEngine:
    """Stream generations from an OpenAI-compatible server. One generation at a time."""

    def __init__(self, settings: EndpointSettings | str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings if isinstance(settings, EndpointSettings) else EndpointSettings(url=settings)
        self.api, self.root = api_urls(self.settings.url)
        self.model = self.settings.model
        self.info: RemoteModelInfo | None = None
        self.token_counts = "estimated"  # "server" once a tokenize endpoint answered
        self.text_tool_calls = self.settings.tool_calls == "text"
        self._tokenize_path: str | None = None
        headers = {"Accept": "text/event-stream, application/json"}
        key = self.settings.api_key()  # raises when the variable is named but empty
        if key:
            headers["Authorization"] = f"Bearer {key}"
        s = self.settings
        timeout = httpx.Timeout(connect=s.connect_timeout, read=s.read_timeout, write=s.read_timeout, pool=s.connect_timeout)
        self._client = httpx.Client(headers=headers, timeout=timeout, transport=transport, trust_env=False)
        self._cancel = threading.Event()
        self._active: Exchange | None = None
        self._noted: set[str] = set()
        self.images_refused: str | None = None  # why images are left out: refused, or the server says it can't see

    # -- lifecycle ---------------------------------------------------------------------------

    def _request(self, method: str, url: str, path: str, **kw) -> httpx.Response:
        try:
            return self._client.request(method, url + path, **kw)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(self._timeout_text(exc)) from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(self._connect_text(exc)) from None

    def _connect_text(self, exc: Exception) -> str:
        return f"cannot reach the server at {self.settings.url}: {error_text(str(exc)) or type(exc).__name__}"

    def _timeout_text(self, exc: httpx.TimeoutException) -> str:
        if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
            return f"the server at {self.settings.url} did not accept a connection within {self.settings.connect_timeout:g} s"
        return (f"the server at {self.settings.url} sent nothing for {self.settings.read_timeout:g} s "
                "(read timeout; raise `timeout` in the [endpoint] or profile config)")

    def _check(self, resp: httpx.Response, path: str) -> dict:
        if resp.status_code >= 400:
            raise http_error(resp.status_code, resp.content, url=self.settings.url, path=path, model=self.model,
                             key_env=self.settings.api_key_env)
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(f"{self.api}{path} did not answer JSON: is it an OpenAI-compatible server?") from None

    def load(self, progress=None) -> RemoteModelInfo:
        """Connect: list the models, pick or check ours, learn the context length and how to count
        tokens. Raises ServerUnreachable, AuthFailed, ModelNotFound or RemoteError."""
        listing = self._check(self._request("GET", self.api, "/models"), "/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        entries = [m for m in data or [] if isinstance(m, dict) and m.get("id")]
        ids = [str(m["id"]) for m in entries]
        if self.model is None:
            if not ids:
                raise ModelNotFound(f"the server at {self.settings.url} lists no models; name one with --remote-model")
            self.model = ids[0]
        elif ids and self.model not in ids:
            raise ModelNotFound(f"model {self.model!r} not found on {self.settings.url}; it serves: {', '.join(ids[:8])}")
        entry = next((m for m in entries if m["id"] == self.model), {})
        self._probe_tokenizer()
        props = server_props(self._client, self.root, self.settings.connect_timeout)
        n_ctx, reason, template = context_and_template(props, entry, self.settings.n_ctx)
        vision = sees_images(props, entry)
        if vision is False:
            self.images_refused = "the server says its model cannot see images"
        if progress is not None:
            progress(1.0)
        self.info = RemoteModelInfo(
            path=Path(self.model), name=self.model, architecture="remote", file_size=0, quant="",
            n_params=0, n_ctx=n_ctx, n_ctx_train=n_ctx, context_reason=reason,
            threads=ThreadPlan(0, 0, "on the server"), n_gpu_layers=0, use_extra_bufts=False, chat_template=template,
            extra={"endpoint": self.settings.url, "remote": True, "token_counts": self.token_counts,
                   "template": "the server's" if template else "ChatML (an estimate)",
                   "tool_calls": "text" if self.text_tool_calls else "native"},
        )
        if vision:  # as LocalEngine describes its projector: tools attach images, the budget counts them
            self.info.extra["vision"] = {"enabled": True, "image_max_tokens": remote_images.image_max_tokens(),
                                         "token_pixels": remote_images.DEFAULT_TOKEN_PIXELS, "mmproj": "on the server"}
        return self.info

    def _probe_tokenizer(self) -> None:
        path = tokenize_path(self._client, self.root, self.model, self.settings.connect_timeout)
        if path is None:
            return
        self._tokenize_path, self.token_counts = path, "server"
        if path == "/extras/tokenize" and self.settings.tool_calls == "auto":
            # llama-cpp-python's server: it renders the template with `arguments` as a
            # string (Qwen's template needs a mapping) and never parses calls itself.
            self.text_tool_calls = True

    def close(self) -> None:
        self.cancel()
        self._client.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- tokens ------------------------------------------------------------------------------

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        """The server's token ids; without a tokenize endpoint, an estimate (as many zeros as
        ~4 characters a token: only the count means anything, and `token_counts` says so)."""
        if self._tokenize_path:
            body = {"content": text, "prompt": text, "input": text, "model": self.model, "add_special": False,
                    "add_special_tokens": False, "parse_special": parse_special}
            tokens = self._check(self._request("POST", self.root, self._tokenize_path, json=body), self._tokenize_path)
            if isinstance(tokens, dict) and isinstance(tokens.get("tokens"), list):
                return [t if isinstance(t, int) else int(t.get("id", 0)) for t in tokens["tokens"]]
        return [0] * max(1, -(-len(text) // CHARS_PER_TOKEN)) if text else []

    def count_tokens(self, text: str) -> int:
        try:
            return len(self.tokenize(text))
        except EngineError:
            return -(-len(text) // CHARS_PER_TOKEN)

    def render(self, messages: list[dict], *, tools: list[dict] | None = None, thinking: bool | None = None) -> str:
        """The prompt as the server will see it, for counting: exact with the server's own chat
        template (llama-server shows it in /props), else ChatML with the tools listed (close for
        Qwen models; `info.extra["template"]` says which)."""
        from qwen_tui.engine.template import render_chat

        template = self.info.chat_template if self.info is not None else None
        if template is None:  # ChatML knows no tool calls: count them as the text they are
            messages = to_openai_messages(messages, text_tool_calls=True)
        if template is None and tools:
            listing = "# Tools\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
            messages = [{"role": "system", "content": listing}, *messages]
        return render_chat(template, messages, tools=tools, thinking=thinking)

    # -- generation --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running generation (any thread): it ends with Finished("cancelled") at once."""
        self._cancel.set()
        active = self._active
        if active is not None:
            active.stop()

    def generate(
        self,
        messages: list[dict] | None = None,
        *,
        prompt: str | None = None,
        tools: list[dict] | None = None,
        thinking: bool | None = None,
        max_tokens: int = 4096,
        sampling: Sampling | None = None,
    ) -> Iterator[Event]:
        """Stream a chat (`messages`, via /chat/completions) or a raw `prompt` (via /completions)."""
        if self.info is None:
            raise EngineError("not connected to the server: load() first")
        if messages is None and prompt is None:
            raise ValueError("give messages or prompt")
        sampling = sampling or Sampling()
        self._cancel.clear()
        yield from self._notes(sampling)
        n_images = remote_images.count_images(messages) if messages is not None else 0
        if n_images and self.images_refused:
            messages = remote_images.without_images(messages)
            yield from self._note_once("images", f"images are not sent: {self.images_refused}")
            n_images = 0
        try:
            body = self._body(messages, prompt, tools, thinking, max_tokens, sampling)
        except ImageUnreadable as exc:
            yield Finished("error", Usage(0, 0, 0), Timings(0, 0, 0), error=str(exc), extra={"endpoint": self.settings.url})
            return
        path = "/completions" if messages is None else "/chat/completions"
        exchange = Exchange(self._client, self.api + path, body)
        self._active = exchange
        try:
            yield from self._stream(exchange, path, lambda: self._prompt_text(messages, prompt, tools, thinking), n_images)
        finally:
            exchange.stop()
            self._active = None

    def _notes(self, sampling: Sampling) -> Iterator[Event]:
        if sampling.grammar and sampling.grammar_trigger:
            yield from self._note_once("lazy", "--constrain-tools is not available with a server: tool calls are not "
                                               "grammar-constrained")

    def _note_once(self, key: str, text: str) -> Iterator[Event]:
        if key not in self._noted:
            self._noted.add(key)
            yield Notice(text)

    def _body(self, messages, prompt, tools, thinking, max_tokens, sampling: Sampling) -> dict:
        body: dict = {"model": self.model, "stream": True, "max_tokens": max_tokens,
                      "stream_options": {"include_usage": True},
                      "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
                      "min_p": sampling.min_p}
        if sampling.seed != 0xFFFFFFFF:
            body["seed"] = sampling.seed
        if sampling.grammar and not sampling.grammar_trigger:
            body["grammar"] = sampling.grammar  # llama-server and llama-cpp-python
        if sampling.ignore_eos:
            body["ignore_eos"] = True
        if sampling.logit_bias:
            body["logit_bias"] = {str(t): b for t, b in sampling.logit_bias}
        if messages is None:
            body["prompt"] = prompt
            return body
        if remote_images.count_images(messages):
            messages = remote_images.with_image_parts(messages, remote_images.image_max_tokens())
        body["messages"] = to_openai_messages(messages, text_tool_calls=self.text_tool_calls)
        if tools:
            body["tools"] = tools
        if thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": thinking}
        return body

    def _stream(self, exchange: Exchange, path, prompt_text, n_images: int = 0) -> Iterator[Event]:
        t0 = time.monotonic()
        stream = ChatStream()

        def finish(why: str, error: str | None = None) -> Finished:
            return self._finished(why, error, stream, t0, prompt_text)

        lines = exchange.lines(self._cancel)
        try:
            for payload in sse_data(lines):
                yield from stream.feed(payload)
                if stream.done:
                    break
        except StreamFailed as exc:
            yield finish("error", str(exc))
            return
        except Cancelled:
            yield from stream.flush()
            yield finish("cancelled")
            return
        except httpx.TimeoutException as exc:
            yield from stream.flush()
            yield finish("error", self._timeout_text(exc))
            return
        except HTTPStatus as exc:
            yield finish("error", self._status_text(exc, path, n_images))
            return
        except httpx.HTTPError as exc:
            yield from stream.flush()
            if stream.first is None and isinstance(exc, httpx.ConnectError):
                yield finish("error", self._connect_text(exc))
            else:
                yield finish("error", f"the server closed the connection mid-answer ({error_text(str(exc)) or type(exc).__name__})")
            return
        except Exception as exc:  # noqa: BLE001 - anything else from the connection: one line, no traceback
            yield from stream.flush()
            yield finish("error", f"the connection to the server failed: {type(exc).__name__}: {error_text(str(exc))}")
            return
        yield from stream.flush()
        yield from stream.tool_calls()
        if not stream.done and stream.reason is None:
            yield finish("error", "the server ended the stream without finishing the answer")
            return
        if not stream.calls and self.settings.tool_calls == "auto" and "<tool_call>" in stream.text:
            self.text_tool_calls = True  # the server does not parse calls: send them back as text too
        yield from self._usage_note(stream.usage)
        yield finish("length" if stream.reason == "length" else "stop")

    def _status_text(self, exc: HTTPStatus, path: str, n_images: int) -> str:
        """One line for an HTTP error answer; a refusal of images is remembered (see generate())."""
        refused = remote_images.refusal(exc.status, exc.body, url=self.settings.url, n_images=n_images)
        if refused is not None:
            self.images_refused = f"the server refused them (HTTP {exc.status}: {error_text(exc.body, 120)})"
            return refused
        return str(http_error(exc.status, exc.body, url=self.settings.url, path=path, model=self.model,
                              key_env=self.settings.api_key_env))

    def _usage_note(self, usage) -> Iterator[Event]:
        if usage or "usage" in self._noted:
            return
        self._noted.add("usage")
        how = ("come from its tokenizer on the prompt as rendered here (close, not exact)" if self._tokenize_path
               else "are estimated at ~4 characters a token")
        yield Notice(f"the server does not report token usage: token counts {how}")

    def _finished(self, why, error, stream: ChatStream, t0, prompt_text) -> Finished:
        end = time.monotonic()
        usage, first, last, text = stream.usage, stream.first, stream.last, stream.text
        extra: dict = {"endpoint": self.settings.url}
        if usage:
            prompt_n, cached, completion_n = server_usage(usage)
            extra["usage_source"] = "server"
        else:
            quick = why != "stop" and why != "length"  # a cancel or error must not wait for more requests
            completion_n = self._count(text, quick) if text else 0
            completion_n = max(completion_n, stream.n_chunks)  # servers send about one chunk per token
            prompt_n = self._count(prompt_text(), quick)
            cached = 0
            extra["usage_source"] = "tokenizer" if self._tokenize_path and not quick else "estimated"
        t, evaluated = server_timings(stream.timings)
        if evaluated is not None:
            cached = max(0, prompt_n - evaluated)
        if t is None:
            first_ms = ((first or end) - t0) * 1000
            t = Timings(first_ms, ((last or end) - (first or end)) * 1000, first_ms)
        return Finished(why, Usage(prompt_n, max(0, prompt_n - cached), completion_n), t, error=error, extra=extra)

    def _count(self, text: str, quick: bool) -> int:
        if quick or not self._tokenize_path:
            return -(-len(text) // CHARS_PER_TOKEN)
        return self.count_tokens(text)

    def _prompt_text(self, messages, prompt, tools, thinking) -> str:
        """The prompt as rendered for counting (see render()); a plain dump if the template fails."""
        if prompt is not None:
            return prompt
        try:
            return self.render(messages, tools=tools, thinking=thinking)
        except EngineError:
            return flatten(messages, tools)

