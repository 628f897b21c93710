"""Which engine a run uses: a server (`--endpoint`, `--profile`, or `[endpoint]` in the config
when no --model/--demo is given) or the local GGUF. Headless mode and the app both call
`resolve_engine(args)` and then `spec.make()`, so the choice is made in one place."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qwen_tui.engine.errors import EngineError


@dataclass
class EngineSpec:
    label: str  # what sessions record as the model: a path, or "MODEL @ URL" (never a key)
    make: Callable[[], object]  # a new, unloaded engine (LocalEngine or RemoteEngine)
    remote: bool = False
    path: Path | str | None = None  # the GGUF, for a local engine
    problems: list[str] = field(default_factory=list)  # config problems to show

    def loaded_label(self, info) -> str:
        """The label once the engine is loaded (a server's default model is known by then)."""
        if self.remote and info is not None:
            return f"{info.name} @ {info.extra.get('endpoint', '')}"
        return self.label


def local_engine(path, args):
    from qwen_tui.engine.local import LocalEngine

    return LocalEngine(path, n_ctx=args.ctx, n_threads=args.threads, n_threads_batch=args.threads_batch,
                       n_gpu_layers=args.gpu_layers)


def resolve_engine(args, say=lambda msg: print(msg, file=sys.stderr)) -> EngineSpec:
    """Raises EngineError (one line) for a bad endpoint or profile, or no model at all."""
    from qwen_tui.engine.remote_profiles import resolve_endpoint

    endpoint, profile = getattr(args, "endpoint", None), getattr(args, "profile", None)
    key_env, remote_model = getattr(args, "api_key_env", None), getattr(args, "remote_model", None)
    settings, problems = resolve_endpoint(endpoint, profile=profile, api_key_env=key_env, model=remote_model,
                                          use_default=not (getattr(args, "model", None) or getattr(args, "demo", False)))
    if settings is not None:
        from qwen_tui.engine.remote import RemoteEngine

        return EngineSpec(settings.label, lambda: RemoteEngine(settings), remote=True, problems=problems)
    if key_env or remote_model:
        raise EngineError("--api-key-env and --remote-model need a server: add --endpoint URL or --profile NAME")
    from qwen_tui.headless import resolve_model

    path = resolve_model(args, say)
    return EngineSpec(str(path), lambda: local_engine(path, args), path=path, problems=problems)
