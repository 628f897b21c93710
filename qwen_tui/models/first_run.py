"""Which model to run when the command line names none, and the first-run offer.

Order: `[models] default` in config.toml (a name or a path); else the newest model in the local
registry; else, on a terminal, the recommendation for this machine with an offer to pull it;
otherwise (scripts, `-p`, offline) a one-line message pointing to `--demo` and `--model PATH`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from qwen_tui.engine.errors import EngineError


def resolve_name(name: str) -> str:
    """`--model` takes a path or a local model's name (`qwen3.5:4b`)."""
    if Path(name).expanduser().exists():
        return name
    from qwen_tui.models.catalog import PRESETS_BY_NAME
    from qwen_tui.models.store import ModelNotFound, ModelStore

    try:
        return str(ModelStore().resolve(name))
    except ModelNotFound:
        base = name.lower().split("-q")[0]
        if base in PRESETS_BY_NAME:
            raise EngineError(f"{name} is not downloaded yet: qwen-tui models pull {name}") from None
        return name  # the engine says "model file not found" for a path


def choose_model(
    say: Callable[[str], None],
    *,
    interactive: bool,
    ask: Callable[[str], str] = input,
) -> str:
    from qwen_tui.models.store import ModelStore, default_model

    configured = default_model()
    if configured:
        return resolve_name(configured)
    from qwen_tui.models.demo import DEMO_FILENAME

    models = [m for m in ModelStore().list() if m.exists and Path(m.path).name != DEMO_FILENAME]
    if models:
        newest = max(models, key=lambda m: m.added)
        say(f"using {newest.name} ({newest.path}); `--model NAME` or [models] default in config.toml picks another")
        return newest.path
    return offer(say, interactive=interactive, ask=ask)


def offer(say: Callable[[str], None], *, interactive: bool, ask: Callable[[str], str] = input) -> str:
    from qwen_tui.models.fit import recommend

    rec = recommend()
    fallback = "or `qwen-tui --demo` for the small embedded model, or `--model PATH` for a GGUF you have"
    if rec.choice is None:
        raise EngineError(f"no model yet, and no Qwen 3.5 size fits this machine ({rec.reasons[-1]}); {fallback}")
    c = rec.choice
    what = f"Qwen 3.5 {c.preset.label} {c.quant} (about {c.weights / 1e9:.1f} GB)"
    if not interactive:
        raise EngineError(f"no model given: `qwen-tui models pull {c.pull_spec}` gets {what}, "
                          f"the best fit for this machine; {fallback}")
    say("No model yet. For this machine qwen-tui recommends " + what + ":")
    for reason in rec.reasons:
        say(f"  - {reason}")
    try:
        answer = ask(f"Download {c.pull_spec} from the Hugging Face Hub now? [Y/n] ").strip().lower()
    except EOFError:
        answer = "n"
    if answer not in ("", "y", "yes"):
        raise EngineError(f"no model chosen: `qwen-tui models pull {c.pull_spec}` later, {fallback}")
    from qwen_tui.models.cli import progress_bar
    from qwen_tui.models.pull import PullError, pull

    try:
        model = pull(c.pull_spec, progress=progress_bar(), say=say)
    except PullError as exc:
        raise EngineError(f"{exc}") from None
    except KeyboardInterrupt:
        raise EngineError(f"download interrupted: `qwen-tui models pull {c.pull_spec}` resumes it") from None
    say(f"Ready: {model.name} ({model.path})")
    return model.path


def fit_warning(path: str, n_ctx: int | None, say: Callable[[str], None]) -> str | None:
    """Say (and return) a warning when the model will not fit the GPU's memory."""
    from qwen_tui.models.fit import load_warning

    try:
        warning = load_warning(path, n_ctx, gpu_only=True)
    except Exception:  # never stop a launch over an estimate
        return None
    if warning:
        say(f"qwen-tui: warning: {warning}")
    return warning


def is_interactive() -> bool:
    return bool(sys.stdin and sys.stdin.isatty() and sys.stdout and sys.stdout.isatty())
