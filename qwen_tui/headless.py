"""Headless mode: `qwen-tui -p PROMPT` streams one answer to stdout and exits.

For scripts and pipes (`cat file | qwen-tui -p "summarise"`) and for our own end-to-end tests.
The answer goes to stdout, reasoning and notices to stderr, so `> answer.txt` captures just
the answer; `--json` prints every event as one JSON object per line instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from qwen_tui.engine.errors import EngineError
from qwen_tui.engine.events import Finished, Notice, ReasoningDelta, TextDelta, ToolCallRequest

STDIN_LIMIT = 16 * 1024 * 1024  # bytes of piped input we read; the rest is cut with a marker


def resolve_model(args: argparse.Namespace, say=lambda msg: print(msg, file=sys.stderr)) -> str:
    if args.demo:
        from qwen_tui.models.demo import ensure_demo_model

        return str(ensure_demo_model(say))
    from qwen_tui.models.first_run import choose_model, fit_warning, is_interactive, resolve_name

    if args.model:
        path = resolve_name(args.model)  # a path, or a local model's name (qwen3.5:4b)
    else:  # [models] default, the newest local model, or (first run) the offer to pull one
        path = choose_model(say, interactive=args.prompt is None and is_interactive())
    args.fit_warning = fit_warning(path, args.ctx, say)  # a model too big for the GPU: said before loading
    return path


def sampling_for(args: argparse.Namespace, thinking: bool | None):
    from qwen_tui.engine.params import Sampling

    # Qwen 3.5's recommended settings: thinking 0.6 / top-p 0.95, direct answers 0.7 / top-p 0.8.
    base = Sampling(temperature=0.6, top_p=0.95) if thinking else Sampling()
    changes = {}
    if args.temperature is not None:
        changes["temperature"] = args.temperature
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.grammar_file:
        with open(args.grammar_file, encoding="utf-8") as f:
            changes["grammar"] = f.read()
    return Sampling(**{**asdict(base), **changes})


def read_stdin() -> str:
    if sys.stdin is None or sys.stdin.isatty():
        return ""
    data = sys.stdin.buffer.read(STDIN_LIMIT + 1)
    text = data[:STDIN_LIMIT].decode("utf-8", "replace")
    if len(data) > STDIN_LIMIT:
        print(f"qwen-tui: note: piped input cut at {STDIN_LIMIT // (1024 * 1024)} MiB", file=sys.stderr)
        text += "\n[... input truncated ...]"
    return text


def _check_images(paths: list[str]) -> list[str]:
    from qwen_tui.engine.images import IMAGE_SUFFIXES

    checked = []
    for path in paths:
        p = Path(path).expanduser()
        if not p.is_file():
            raise EngineError(f"image not found: {path}")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise EngineError(f"{path} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        checked.append(str(p.resolve()))
    return checked


def build_prompt(args: argparse.Namespace, piped: str) -> str:
    return args.prompt if not piped else f"{args.prompt}\n\n{piped}"


def _emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run_headless(args: argparse.Namespace) -> int:
    from qwen_tui.conversation import Conversation
    from qwen_tui.engine.factory import resolve_engine
    from qwen_tui.session_log import SessionLog
    from qwen_tui.store import StoreError

    try:
        piped = read_stdin()
        sampling = sampling_for(args, args.think)
        images = _check_images(getattr(args, "image", []))  # --image PATH: one-line error before loading
        spec = resolve_engine(args)  # a local GGUF, or a server (--endpoint/--profile/[endpoint])
        log, history = SessionLog.open(save=not args.no_save, model=spec.label, kind="headless",
                                       resume=args.resume, settings={"thinking": args.think})
        engine = spec.make()
        info = engine.load()
        log.model = spec.loaded_label(info)  # a server's model is known once connected
    except (EngineError, StoreError) as exc:
        print(f"qwen-tui: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the demo fetch and friends: still one line, no traceback
        print(f"qwen-tui: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _emit_json({
            "type": "model", "name": info.name, "path": str(info.path), "architecture": info.architecture,
            "n_ctx": info.n_ctx, "context": info.context_reason, "n_threads": info.threads.n_threads,
            "n_threads_batch": info.threads.n_threads_batch, "threads": info.threads.reason,
            "n_gpu_layers": info.n_gpu_layers,
        })
    if log.problem:
        print(f"qwen-tui: {log.problem}", file=sys.stderr)
    conversation = Conversation(system_prompt=args.system, messages=list(history))
    prompt = build_prompt(args, piped)
    conversation.add_user(prompt, images=images)
    log.user(prompt, images=images)
    log.start_answer()
    log.start_autoflush()
    from qwen_tui.toolset import build_toolset

    toolset = build_toolset(workspace=Path.cwd(), model=info.name, plugin_paths=args.plugin, allow=args.allow,
                            yolo=args.yolo, interactive=False, enabled=not args.no_tools)
    for problem in toolset.problems:
        print(f"qwen-tui: plugin problem: {problem}", file=sys.stderr)
    status = 0
    try:
        compactor = _fit_context(engine, toolset, conversation, args, log)  # context/compaction.py
        if compactor is None:
            status = 2
        elif toolset.registry is not None and toolset.registry.names():
            status = _run_agent(engine, toolset, conversation, args, sampling, log, fit=compactor.fit_request)
        else:
            events = engine.generate(conversation.for_template(), thinking=args.think, max_tokens=args.max_tokens,
                                     sampling=sampling)
            status = _stream(events, args.json, log)
    except KeyboardInterrupt:
        engine.cancel()
        log.finish_answer("cancelled")
        status = 130
    except EngineError as exc:
        print(f"\nqwen-tui: error: {exc}", file=sys.stderr)
        log.finish_answer("error")
        status = 1
    finally:
        engine.close()
        log.close()
        if toolset.host is not None:
            toolset.host.close()  # plugins release their servers and threads
    if log.session_id and args.json:
        _emit_json({"type": "session", "id": log.session_id})
    return status


def _stream(events, as_json: bool, log) -> int:
    at_line_start = True
    for event in events:
        if isinstance(event, TextDelta):
            log.answer_delta(content=event.text)
        elif isinstance(event, ReasoningDelta):
            log.answer_delta(reasoning=event.text)
        elif isinstance(event, Finished):
            log.finish_answer(event.reason, event.usage, event.timings)
        if as_json:
            _emit_json(_event_json(event))
        elif isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
            at_line_start = event.text.endswith("\n")
        elif isinstance(event, ReasoningDelta):
            sys.stderr.write(event.text)
            sys.stderr.flush()
        elif isinstance(event, Notice):
            print(f"qwen-tui: {event.text}", file=sys.stderr)
        if isinstance(event, Finished):
            if not as_json and not at_line_start:
                sys.stdout.write("\n")
            if event.reason == "error":
                if not as_json:
                    print(f"qwen-tui: error: {event.error}", file=sys.stderr)
                return 1
            return 130 if event.reason == "cancelled" else 0
    return 1


def _fit_context(engine, toolset, conversation, args, log):
    """Compact the conversation (a resumed session, a huge piped input) to fit the window, before
    anything is sent. Returns the Compactor, or None when it cannot fit (said on stderr)."""
    from qwen_tui.context import persist
    from qwen_tui.context.budget import ContextSettings
    from qwen_tui.context.compaction import Compactor, ContextOverflow

    settings, problems = ContextSettings.from_config()
    for problem in problems:
        print(f"qwen-tui: {problem}", file=sys.stderr)
    compactor = Compactor(engine, settings)
    tools = toolset.registry.openai_schemas() if toolset.registry is not None and toolset.registry.names() else None
    try:
        if log.store is not None and log.session_id is not None:
            log.flush()
            persist.assign_store_ids(log.store, log.session_id, conversation)
        report = compactor.ensure_fits(conversation, tools=tools, thinking=args.think, max_tokens=args.max_tokens)
    except ContextOverflow as exc:
        print(f"qwen-tui: error: {exc}", file=sys.stderr)
        log.finish_answer("error")
        return None
    if report is not None and report.changed:
        problem = persist.save_compaction(log, conversation, report.number)
        if args.json:
            _emit_json({"type": "compaction", "tokens_before": report.tokens_before, "tokens_after": report.tokens_after,
                        "summarised": len(report.summary.replaced) if report.summary else 0,
                        "elided": len(report.elided), "truncated": len(report.truncated)})
        else:
            print(f"qwen-tui: {report.describe()}", file=sys.stderr)
        if problem:
            print(f"qwen-tui: {problem}", file=sys.stderr)
    return compactor


def _run_agent(engine, toolset, conversation, args, sampling, log, fit=None) -> int:
    """Answer with tools: the agent loop, tool calls reported on stderr (or as JSON events)."""
    from qwen_tui.agent import events as ev
    from qwen_tui.agent.loop import Agent

    agent = Agent(engine, toolset.registry, toolset.policy, toolset.host, context=toolset.context,
                  max_steps=args.max_steps, sampling_for_step=lambda step, reasoning_open: sampling,
                  constrain_tool_calls=args.constrain_tools, fit=fit)
    at_line_start = True
    status = 1
    answer_open = True  # run_headless started the first step's message

    def open_answer() -> None:
        # One stored assistant message per step, started when that step first produces anything.
        nonlocal answer_open
        if not answer_open:
            log.start_answer()
            answer_open = True
    for event in agent.run(conversation.for_template(), thinking=args.think, max_tokens=args.max_tokens):
        if isinstance(event, (ev.AnswerDelta, ev.ReasoningDelta, ev.StepFinished)):
            open_answer()
        if isinstance(event, ev.AnswerDelta):
            log.answer_delta(content=event.text)
            if args.json:
                _emit_json({"type": "text", "text": event.text})
            else:
                sys.stdout.write(event.text)
                sys.stdout.flush()
                at_line_start = event.text.endswith("\n")
        elif isinstance(event, ev.ReasoningDelta):
            log.answer_delta(reasoning=event.text)
            if args.json:
                _emit_json({"type": "reasoning", "text": event.text})
            else:
                sys.stderr.write(event.text)
                sys.stderr.flush()
        elif isinstance(event, ev.StepFinished):
            log.finish_answer(event.finished.reason, event.finished.usage, event.finished.timings,
                              tool_calls=event.tool_calls or None)
            answer_open = False
            if args.json:
                _emit_json({**_event_json(event.finished), "step": event.step})
        elif isinstance(event, ev.ToolCallRequested):
            if args.json:
                _emit_json({"type": "tool_call", "name": event.call.name, "arguments": event.call.arguments})
            else:
                print(f"qwen-tui: tool call {event.call.name}({json.dumps(event.call.arguments, ensure_ascii=False)})",
                      file=sys.stderr)
        elif isinstance(event, ev.ToolCallDecided) and event.verdict == "deny":
            if args.json:
                _emit_json({"type": "tool_denied", "name": event.call.name, "reason": event.reason})
            else:
                print(f"qwen-tui: tool {event.call.name} denied: {event.reason} (use --allow {event.call.name} or --yolo)",
                      file=sys.stderr)
        elif isinstance(event, ev.ToolCallResult):
            result = event.result
            log.tool_result(event.call.name, result.for_model())
            if args.json:
                _emit_json({"type": "tool_result", "name": event.call.name, "ok": result.ok, "content": result.content,
                            "error": result.error})
            elif not result.denied:
                print(f"qwen-tui: tool {event.call.name} {'ok' if result.ok else 'failed'}: "
                      f"{(result.content if result.ok else result.error or '')[:200]}", file=sys.stderr)
        elif isinstance(event, ev.Notice):
            if args.json:
                _emit_json({"type": "notice", "text": event.text})
            else:
                print(f"qwen-tui: {event.text}", file=sys.stderr)
        elif isinstance(event, ev.AgentFinished):
            if args.json:
                _emit_json({"type": "done", "reason": event.reason, "error": event.error})
            elif not at_line_start:
                sys.stdout.write("\n")
            if event.error and not args.json:
                print(f"qwen-tui: error: {event.error}", file=sys.stderr)
            status = {"answered": 0, "cancelled": 130, "step_limit": 1}.get(event.reason, 1)
    return status


def _event_json(event) -> dict:
    if isinstance(event, TextDelta):
        return {"type": "text", "text": event.text}
    if isinstance(event, ReasoningDelta):
        return {"type": "reasoning", "text": event.text}
    if isinstance(event, Notice):
        return {"type": "notice", "text": event.text}
    if isinstance(event, ToolCallRequest):  # a server's native call, with no agent to run it
        return {"type": "tool_call", "name": event.name, "arguments": event.arguments}
    assert isinstance(event, Finished)
    timings = asdict(event.timings)
    timings["decode_tokens_per_s"] = round(event.timings.tokens_per_s(event.usage.completion_tokens), 2)
    return {"type": "finished", "reason": event.reason, "usage": asdict(event.usage), "timings": timings, "error": event.error}
