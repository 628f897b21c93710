"""LocalEngine: in-process llama.cpp inference, isolated in a worker process the app talks to.

The app never imports llama_cpp. It validates the file (gguf_header), plans memory and threads
(resources), renders the chat template (template), and exchanges small messages with the worker.
The worker process itself (start, messages, why it died) is engine/worker_process.py. When the
worker dies (abort, segfault) the caller gets a clear error, the worker is restarted, and a
request that had produced no output yet is retried once. A crash in batched prompt
evaluation with llama.cpp's extra (repacked/AMX) buffer types on is retried without them, and
that choice is remembered for this machine.
"""

from __future__ import annotations

import mmap
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from qwen_tui import paths
from qwen_tui.engine.errors import EngineCrashed, EngineError
from qwen_tui.engine.events import Event, Finished, Notice, Timings, Usage
from qwen_tui.engine.gguf_header import GGUFHeader, read_header
from qwen_tui.engine.machine import remember_extra_bufts_crash, remembered_extra_bufts  # noqa: F401 (re-export)
from qwen_tui.engine.model_info import ModelInfo  # noqa: F401 (re-export)
from qwen_tui.engine.reasoning import ReasoningSplitter
from qwen_tui.engine.params import LoadParams, Sampling, SpeculativeParams
from qwen_tui.engine.resources import ContextPlan, ThreadPlan, plan_context, plan_threads
from qwen_tui.engine.prompt_tokens import PieceTokenizer
from qwen_tui.engine.state_size import checkpoint_settings
from qwen_tui.engine.template import TemplateError, prompt_opens_reasoning, render_chat
from qwen_tui.engine.worker_process import WorkerProcess


class LocalEngine:
    """Load a GGUF and stream generations from it. Thread-safe for one generation at a time."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_gpu_layers: int | None = None,
        use_extra_bufts: bool | None = None,
        log_path: str | Path | None = None,
        speculative: SpeculativeParams | None = None,
        tune_threads: bool | None = None,
        flash_attn: str | None = None,  # "auto" | "on" | "off"; None: [speed] flash_attn
        mmproj: str | None = None,  # vision projector; None: found next to the model / in the registry, "": none
    ) -> None:
        self._mmproj_choice = mmproj
        self.model_path = Path(model_path).expanduser()
        self._speed_choice = (speculative, tune_threads)  # None: from [speed] in the config file
        self._flash_attn_choice = flash_attn
        self._requested_ctx = n_ctx
        self._requested_threads = (n_threads, n_threads_batch)
        self._requested_gpu_layers = n_gpu_layers
        self._extra_bufts_choice = use_extra_bufts
        self.header: GGUFHeader | None = None
        self.info: ModelInfo | None = None
        self._params: LoadParams | None = None
        # One byte shared with the worker (an unlinked temp file, mapped by both): the worker
        # reads it between tokens, so cancelling costs no message and no syscall per token.
        self._cancel_file = tempfile.TemporaryFile(prefix="qwen-tui-cancel-")
        self._cancel_file.write(b"\0")
        self._cancel_file.flush()
        self._cancel = mmap.mmap(self._cancel_file.fileno(), 1)
        log = Path(log_path) if log_path else paths.log_dir() / "llama.log"
        self._worker = WorkerProcess(log, self._cancel_file.fileno())  # engine/worker_process.py
        self._lock = threading.Lock()
        self._unconfirmed_crash: str | None = None
        self._in_flight = False  # a generate request whose final message we have not read yet
        self.problems: list[str] = []  # configuration notes for the user (bad [context] values)

    # -- lifecycle ---------------------------------------------------------------------------

    def check(self) -> tuple[GGUFHeader, ContextPlan]:
        """Validate the file and plan memory, without starting llama.cpp. Raises EngineError."""
        header = read_header(self.model_path)
        plan = plan_context(header, self._requested_ctx)
        self.header = header
        return header, plan

    def load(self, progress=None) -> ModelInfo:
        header, ctx_plan = self.check()
        gpu_layers = self._requested_gpu_layers
        threads = plan_threads(*self._requested_threads, gpu=bool(gpu_layers))
        extra = self._extra_bufts_choice if self._extra_bufts_choice is not None else remembered_extra_bufts()
        self._params = LoadParams(
            path=str(self.model_path),
            n_ctx=ctx_plan.n_ctx,
            n_threads=threads.n_threads,
            n_threads_batch=threads.n_threads_batch,
            n_gpu_layers=-1 if gpu_layers is None else gpu_layers,  # -1: all, if the build has a GPU
            use_extra_bufts=extra,
            **self._checkpoint_params(),
            **self._speed_params(),
            **self._vision_params(gpu_layers),
        )
        desc = self._start(progress)
        self._pieces = PieceTokenizer(self._worker_tokenize)  # this model's tokens
        if desc.get("threads"):  # measured in the worker (engine/thread_tuning.py)
            t = desc["threads"]
            threads = ThreadPlan(t["n_threads"], t["n_threads_batch"], t["threads_reason"])
        self.info = ModelInfo(
            path=self.model_path,
            name=header.name,
            architecture=header.architecture,
            file_size=header.file_size,
            quant=header.file_type_name,
            n_params=desc["n_params"],
            n_ctx=desc["n_ctx"],
            n_ctx_train=desc["n_ctx_train"],
            context_reason=ctx_plan.reason,
            threads=threads,
            n_gpu_layers=desc.get("gpu_layers", self._params.n_gpu_layers) if desc["gpu_offload"] else 0,
            use_extra_bufts=self._params.use_extra_bufts,
            chat_template=header.chat_template,
            bos_token=desc["bos_token"] if desc["add_bos"] else "",
            eos_token=desc["eos_token"],
            extra=desc,
        )
        try:  # compile the chat template now, not at the first message (~70 ms for Qwen 3.5's)
            self.render([{"role": "user", "content": "hi"}])
        except TemplateError:
            pass  # said when a conversation is rendered
        return self.info

    def _speed_params(self) -> dict:
        from qwen_tui.engine.speed_settings import flash_attn_setting, speed_settings

        sp, tune, problems = speed_settings()
        self.problems.extend(p for p in problems if p not in self.problems)
        sp = self._speed_choice[0] or sp
        tune = tune if self._speed_choice[1] is None else self._speed_choice[1]
        fa, fa_problems = flash_attn_setting(None if self._flash_attn_choice is None else {"flash_attn": self._flash_attn_choice})
        self.problems.extend(p for p in fa_problems if p not in self.problems)
        return {"speculative": sp, "tune_threads": tune and self._requested_threads == (None, None), "flash_attn": fa}

    def _vision_params(self, gpu_layers: int | None) -> dict:
        from qwen_tui.engine.images import vision_settings

        settings, problems = vision_settings(self.model_path, self._mmproj_choice, gpu=bool(gpu_layers))
        self.problems.extend(p for p in problems if p not in self.problems)
        return settings

    def _checkpoint_params(self) -> dict[str, int]:
        settings, problems = checkpoint_settings()
        self.problems.extend(p for p in problems if p not in self.problems)
        return settings

    def _start(self, progress=None) -> dict:
        assert self._params is not None
        return self._worker.start(self._params, progress)

    @property
    def log_path(self) -> Path:
        """llama.cpp's log (the worker's stdout and stderr)."""
        return self._worker.log_path

    def close(self) -> None:
        self._drain_abandoned()
        self._worker.stop()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._worker.alive

    # -- requests ----------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._params is None:
            raise EngineError("no model loaded")
        if not self.alive:
            self._start()

    def _call(self, *msg):
        with self._lock:
            self._ensure_running()
            self._worker.send(msg)
            reply = self._worker.recv()
            if reply is None:
                err = self._worker.crash_error(f"during {msg[0]}")
                self._restart_quietly()
                raise err
            return reply

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        return self._call("tokenize", text, parse_special)[1]

    def perf(self) -> dict:
        return self._call("perf")[1]

    def perf_reset(self) -> None:
        self._call("perf_reset")

    def render(self, messages: list[dict], *, tools: list[dict] | None = None, thinking: bool | None = None) -> str:
        info = self.info
        if info is None:
            raise EngineError("no model loaded")
        return render_chat(
            info.chat_template, messages, tools=tools, thinking=thinking, bos_token=info.bos_token, eos_token=info.eos_token
        )

    def cancel(self) -> None:
        """Stop the running generation (safe from any thread). The engine stays usable."""
        self._cancel[0] = 1

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
        """Stream events for a chat (`messages`) or a raw `prompt`. The last event is Finished."""
        images: list[str] = []
        if prompt is None:
            if messages is None:
                raise ValueError("give messages or prompt")
            from qwen_tui.engine.images import split_images

            messages, images = split_images(messages)  # {"images": [...]} -> Qwen's image content parts
            prompt = self.render(messages, tools=tools, thinking=thinking)
        sampling = sampling or Sampling()
        # The lock is held while the worker is busy with this request, and released before the
        # final event is handed out: a caller that stops iterating at Finished (or abandons the
        # stream earlier) must not leave the engine locked.
        self._lock.acquire()
        held = True
        inner = None
        try:
            self._cancel[0] = 0
            tokens = self._tokenize_prompt(prompt, images)
            splitter = ReasoningSplitter(in_reasoning=prompt_opens_reasoning(prompt))
            inner = self._generate_with_recovery(tokens, max_tokens, sampling, splitter)
            for event in inner:
                if isinstance(event, Finished):
                    held = False
                    self._lock.release()
                yield event
        finally:
            if inner is not None:
                inner.close()
            if held:
                self._drain_abandoned()
                self._lock.release()

    def _drain_abandoned(self) -> None:
        """The caller stopped reading mid-stream: stop the worker and consume what it still sends."""
        if not self._in_flight or self._worker.conn is None:
            return
        self._cancel[0] = 1
        try:
            while True:
                msg = self._worker.recv(time.monotonic() + 30)
                if msg is None or msg[0] in ("finished", "error"):
                    break
        except EngineError:
            pass  # it did not stop in time and was stopped
        self._in_flight = False
        self._cancel[0] = 0

    def _tokenize_prompt(self, prompt: str, images: list[str] | None = None) -> list[int]:
        self._ensure_running()
        # Without images: per message, cached (engine/prompt_tokens.py), so O(new text) a turn.
        tokens = self._worker_tokenize(prompt, images) if images else self._pieces(prompt)
        bos = self.info.extra.get("add_bos") and not (self.info.bos_token and prompt.startswith(self.info.bos_token))
        if bos:
            bos_id = self.info.extra.get("bos_id")
            if bos_id is not None:
                tokens = [bos_id, *tokens]
        return tokens

    def _worker_tokenize(self, prompt: str, images: list[str] | None = None) -> list[int]:
        self._worker.send(("tokenize", prompt, True, images) if images else ("tokenize", prompt, True))
        reply = self._worker.recv()
        if reply is None:
            err = self._worker.crash_error("while tokenizing")
            self._restart_quietly()
            raise err
        if reply[0] == "error":  # an image that could not be read or encoded
            raise EngineError(reply[1])
        return reply[1]

    def _generate_with_recovery(self, tokens, max_tokens, sampling, splitter) -> Iterator[Event]:
        for attempt in range(2):
            produced = False
            self._ensure_running()
            self._worker.mark_log()
            self._worker.send(("generate", tokens, max_tokens, sampling))
            self._in_flight = True
            while True:
                msg = self._worker.recv()
                if msg is None or msg[0] in ("finished", "error"):
                    self._in_flight = False
                if msg is None:
                    err = self._worker.crash_error("while generating")
                    recovered = self._recover_from_crash(err, produced)
                    if recovered and not produced and attempt == 0:
                        yield Notice(recovered)
                        break  # retry the same request once
                    yield Notice(recovered or str(err))
                    yield Finished("error", Usage(len(tokens), 0, 0), Timings(0, 0, 0), error=str(err))
                    return
                kind = msg[0]
                if kind == "text":
                    for event in splitter.feed(msg[1]):
                        produced = True
                        yield event
                elif kind == "finished":
                    yield from splitter.flush()
                    self._cancel[0] = 0
                    if self._unconfirmed_crash:
                        remember_extra_bufts_crash(self._unconfirmed_crash)
                        self._unconfirmed_crash = None
                    if self.info is not None:
                        self.info.note_generation(msg[1].extra)  # threads now in use, draft acceptance
                    yield msg[1]
                    return
                elif kind == "error":
                    yield from splitter.flush()
                    yield Finished("error", Usage(len(tokens), 0, 0), Timings(0, 0, 0), error=msg[1])
                    return

    def _recover_from_crash(self, err: EngineCrashed, produced: bool) -> str:
        """Restart the worker after a crash; return a note on what was done."""
        assert self._params is not None
        note = f"{err}. The model was restarted"
        if self._params.use_extra_bufts and not produced:
            # The AMX / repacked-weights kernels crash batched decode on some Xeons: retry without.
            # Remembered for the machine once the retry without them succeeds.
            self._params = replace(self._params, use_extra_bufts=False)
            self._unconfirmed_crash = str(err)
            note += " without llama.cpp's extra buffer types"
            if self.info is not None:
                self.info.use_extra_bufts = False
        try:
            self._start()
        except EngineError as exc:
            return f"{err}. Restarting the model failed: {exc}"
        return note + "."

    def _restart_quietly(self) -> None:
        try:
            self._start()
        except EngineError:
            pass

    def crash_for_test(self, how: str = "assert") -> None:
        """Make llama.cpp fail inside the worker (tests prove the caller survives)."""
        with self._lock:
            self._ensure_running()
            self._worker.send(("abort_for_test", how))
            msg = self._worker.recv()
            err = self._worker.crash_error("on purpose")
            if msg is not None:
                raise EngineError(f"the worker did not crash: {msg!r}")
        raise err
