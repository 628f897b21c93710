"""The models screen: local models with their facts, the recommendation for this machine, pull.

Enter on a model loads it (the conversation stays); Del twice removes it; the pull field takes a
preset or OWNER/REPO[:QUANT] (pre-filled with the recommendation) and downloads in a worker
with a progress bar. Nothing here blocks the UI: the header reads are small, the hardware
probe and the download run in threads and report through messages.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from qwen_tui.models.store import ModelStore


class PullProgress(Message):
    def __init__(self, filename: str, done: int, total: int | None) -> None:
        super().__init__()
        self.filename, self.done, self.total = filename, done, total


class PullFinished(Message):
    def __init__(self, name: str | None, error: str | None = None) -> None:
        super().__init__()
        self.name, self.error = name, error


class Recommended(Message):
    def __init__(self, text: str, spec: str | None) -> None:
        super().__init__()
        self.text, self.spec = text, spec


def _size(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def progress_class(post, min_interval: float = 0.1):
    """A tqdm class for huggingface_hub that reports to the UI instead of drawing on stderr."""
    from tqdm import tqdm

    class UiProgress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._desc = kwargs.get("desc") or ""
            self._done = kwargs.get("initial") or 0
            self._total = kwargs.get("total")
            self._last = 0.0
            post(PullProgress(self._desc, self._done, self._total))

        def update(self, n=1):
            self._done += n or 0
            now = time.monotonic()
            if now - self._last >= min_interval or (self._total and self._done >= self._total):
                self._last = now
                post(PullProgress(self._desc, self._done, self._total))

    return UiProgress


class ModelsScreen(ModalScreen[str | None]):
    """Dismisses with a model path to load, or None."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="models.close"),
        Binding("delete,ctrl+d", "remove", "Remove", id="models.remove"),
        Binding("ctrl+r", "refresh", "Refresh", id="models.refresh"),
    ]
    DEFAULT_CSS = """
    ModelsScreen { align: center middle; }
    #models { width: 92%; height: 90%; padding: 0 1; border: round $primary; background: $surface; }
    #models-body { height: 1fr; }
    #models-list { width: 1fr; height: 1fr; }
    #models-info { width: 1fr; height: 1fr; padding: 0 1; color: $text; }
    #models-recommend { height: auto; color: $text-muted; }
    #models-progress { height: 1; }
    #models-hint { height: auto; color: $warning; }
    """

    def __init__(self, store: ModelStore | None = None) -> None:
        super().__init__()
        self.store = store or ModelStore()
        self._confirm_remove: str | None = None
        self.pulling = False
        self.progress_seen: list[tuple[str, int, int | None]] = []  # what the bar showed (tests read it)

    def compose(self) -> ComposeResult:
        with Vertical(id="models"):
            yield Static(Text("Models: Enter loads, Del removes (twice), Tab to pull (preset or OWNER/REPO[:QUANT]), "
                              "Esc closes", style="bold"))
            with Horizontal(id="models-body"):
                yield OptionList(id="models-list")
                yield Static("", id="models-info")
            yield Static("checking this machine ...", id="models-recommend")
            yield Input(placeholder="pull: qwen3.5:4b, qwen3.5:9b:Q5_K_M, unsloth/Qwen3.5-2B-GGUF:Q8_0",
                        id="models-pull")
            yield ProgressBar(id="models-progress", show_eta=True)
            yield Static("", id="models-hint")

    def on_mount(self) -> None:
        self.refresh_list()
        self.query_one(OptionList).focus()
        self.recommend()

    # -- list and facts ----------------------------------------------------------------------
    def refresh_list(self, highlight: str | None = None) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        for m in self.store.list():
            size = _size(m.to_json()["size"]) if m.exists else "missing"
            label = Text(m.name, style="bold") + Text(
                f"  {m.quant or ''}  {size}{'  vision' if m.vision else ''}  {m.source}", style="dim")
            options.add_option(Option(label, id=m.name))
        if options.option_count:
            index = 0
            if highlight:
                index = next((i for i in range(options.option_count)
                              if options.get_option_at_index(i).id == highlight), 0)
            options.highlighted = index
        else:
            self.query_one("#models-info", Static).update(
                Text("No local models yet. Pull the recommended one below, or add a GGUF you have with "
                     "`qwen-tui models add PATH`."))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._confirm_remove = None
        self.show_info(event.option.id)

    def show_info(self, name: str | None) -> None:
        from qwen_tui.engine.errors import ModelFileError
        from qwen_tui.models.info import format_facts, model_facts
        from qwen_tui.models.store import ModelNotFound

        info = self.query_one("#models-info", Static)
        if not name:
            info.update("")
            return
        try:
            model = self.store.get(name)
            info.update(Text(format_facts(model_facts(model.path, model.mmproj))))
        except (ModelFileError, ModelNotFound, OSError) as exc:
            info.update(Text(str(exc), style="bold"))

    def _selected(self) -> str | None:
        options = self.query_one(OptionList)
        if options.highlighted is None or not options.option_count:
            return None
        return options.get_option_at_index(options.highlighted).id

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        model = self.store.get(event.option.id)
        if not model.exists:
            self.hint(f"{model.path} is missing")
            return
        self.dismiss(model.path)

    def action_remove(self) -> None:
        name = self._selected()
        if name is None:
            return
        if self._confirm_remove != name:
            self._confirm_remove = name
            self.hint(f"Press Del again to remove {name} (files qwen-tui downloaded are deleted).")
            return
        self._confirm_remove = None
        model, deleted = self.store.remove(name)
        self.hint(f"Removed {model.name}" + (f"; deleted {len(deleted)} file(s)" if deleted else "; its files stay"))
        self.refresh_list()

    def action_refresh(self) -> None:
        self.refresh_list(self._selected())

    def action_close(self) -> None:
        self.dismiss(None)

    def hint(self, text: str) -> None:
        self.query_one("#models-hint", Static).update(Text(text))

    # -- recommendation (thread: nvidia-smi can take a second) --------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="models-recommend")
    def recommend(self) -> None:
        from qwen_tui.models.fit import recommend

        try:
            rec = recommend()
        except Exception as exc:  # an estimate must never take the screen down
            self.post_message(Recommended(f"could not check this machine: {exc}", None))
            return
        if rec.choice is None:
            self.post_message(Recommended(" ".join(rec.reasons), None))
            return
        c = rec.choice
        text = (f"Recommended here: Qwen 3.5 {c.preset.label} {c.quant} ({_size(c.weights)}): "
                + "; ".join(rec.reasons))
        self.post_message(Recommended(text, c.pull_spec))

    def on_recommended(self, message: Recommended) -> None:
        self.query_one("#models-recommend", Static).update(Text(message.text))
        field = self.query_one("#models-pull", Input)
        if message.spec and not field.value:
            field.value = message.spec

    # -- pull (thread) -----------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        spec = event.value.strip()
        if not spec:
            return
        if self.pulling:
            self.hint("A pull is already running")
            return
        self.pulling = True
        self.hint(f"Pulling {spec} ...")
        self.pull(spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-pull")
    def pull(self, spec: str) -> None:
        from qwen_tui.models.catalog import SpecError
        from qwen_tui.models.pull import PullError, pull

        try:
            model = pull(spec, store=self.store, progress=progress_class(self.post_message),
                         say=lambda msg: self.app.call_from_thread(self.hint, msg))
        except (PullError, SpecError) as exc:
            self.post_message(PullFinished(None, str(exc)))
            return
        except Exception as exc:  # reported, never fatal
            self.post_message(PullFinished(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(PullFinished(model.name))

    def on_pull_progress(self, message: PullProgress) -> None:
        self.progress_seen.append((message.filename, message.done, message.total))
        bar = self.query_one(ProgressBar)
        bar.update(total=message.total, progress=message.done)
        self.hint(f"{message.filename}: {_size(message.done)} of {_size(message.total)}")

    def on_pull_finished(self, message: PullFinished) -> None:
        self.pulling = False
        if message.error:
            self.hint(f"Pull failed: {message.error}")
            return
        self.hint(f"Pulled {message.name}. Enter loads it.")
        self.refresh_list(message.name)
        self.query_one(OptionList).focus()


class ModelsMixin:
    """QwenApp's side: open the screen (F3, /models, palette) and load what it returns."""

    def action_models(self) -> None:
        self.push_screen(ModelsScreen(), self._after_models)

    def _after_models(self, path: str | None) -> None:
        if not path:
            return
        from qwen_tui.models.first_run import fit_warning

        warning = fit_warning(path, None, lambda _msg: None)
        if warning:
            self.notify(warning, severity="warning", timeout=10)
        self.notify(f"Loading {path}")
        self.switch_model(path)
