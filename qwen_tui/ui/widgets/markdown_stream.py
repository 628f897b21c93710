"""Markdown for streamed answers: the live tail, the static pieces it settles into, and a
Rich-Markdown visual that renders once per width.

The live part is a Textual Markdown widget fed through `MarkdownStream`; each of its blocks is a
widget laid out on every repaint, so it is kept short (LIVE_CHARS) and finished blocks leave it
for static pieces, which render once and stay cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from textual._context import active_app
from textual.strip import Strip
from textual.visual import Visual
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence


class _LiveFence(MarkdownFence):
    """A code block in the live answer. A fence without a language (as it is while "```" has
    arrived but its info string hasn't, or when the model gives none) is shown as plain text:
    Textual would otherwise guess the language with Pygments, ~100 ms per repaint (profiled)."""

    @classmethod
    def highlight(cls, code: str, language: str, ansi: bool = False, dark: bool = False):
        return super().highlight(code, language or "text", ansi=ansi, dark=dark)


class MarkdownVisual(Visual):
    """A finished answer's Markdown (Rich's renderer), rendered once per width.

    A Static holding a Rich renderable renders it twice (once to measure its height for layout,
    once when it comes into view) and again whenever its cached lines are dropped; with code
    blocks that is ~10-20 ms each time, paid on every page of a long transcript (profiled). The
    lines here are kept; the widget's base style is applied on top when it is drawn, as Textual
    does for any Rich renderable.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._width: int | None = None
        self._lines: list[list[Segment]] = []

    def lines(self, width: int) -> list[list[Segment]]:
        global last_width
        if width != self._width:
            self._lines = rendered_lines(active_app.get(), self.source, width)
            self._width = last_width = width
        return self._lines

    def get_optimal_width(self, rules, container_width: int) -> int:
        return container_width

    def get_height(self, rules, width: int) -> int:
        return len(self.lines(width))

    def render_strips(self, width: int, height: int | None, style, options) -> list[Strip]:
        base = style.rich_style
        lines = self.lines(width)[:height] if height is not None else self.lines(width)
        if not base:
            return [Strip(line) for line in lines]
        return [Strip([Segment(text, base + seg_style if seg_style else base, control)
                       for text, seg_style, control in line]) for line in lines]


# Rendered Markdown lines, shared by every block that shows the same text at the same width: a
# block rebuilt when scrolling brings it back (widgets/transcript.py) is not rendered again, and
# older blocks can be rendered ahead in a thread (`prerender`) before PageUp reaches them.
# Bounded by entries; a long transcript's blocks are a few KB of segments each.
RENDER_CACHE_ENTRIES = 400
_rendered: OrderedDict[tuple[str, int], list[list[Segment]]] = OrderedDict()
_rendered_lock = threading.Lock()
# Renders done on the UI thread because the lines were not ready (tests count them).
ui_thread_renders = 0
last_width: int | None = None  # the width finished answers were last rendered at


def rendered_lines(app, source: str, width: int) -> list[list[Segment]]:
    """`source` as Rich renders it at `width`, cached. Safe from a worker thread (Rich's console
    keeps its per-render state in thread locals)."""
    global ui_thread_renders
    key = (source, width)
    with _rendered_lock:
        lines = _rendered.get(key)
        if lines is not None:
            _rendered.move_to_end(key)
            return lines
    if threading.current_thread() is threading.main_thread():
        ui_thread_renders += 1
    options = app.console_options.update(highlight=False).update_width(width)
    segments = app.console.render(RichMarkdown(source, code_theme="monokai"), options)
    lines = list(Segment.split_and_crop_lines(segments, width, include_new_lines=False, pad=False))
    with _rendered_lock:
        _rendered[key] = lines
        while len(_rendered) > RENDER_CACHE_ENTRIES:
            _rendered.popitem(last=False)
    return lines


def is_rendered(source: str, width: int) -> bool:
    with _rendered_lock:
        return (source, width) in _rendered


def prerender(app, sources: list[str], width: int) -> None:
    """Render `sources` at `width` into the cache (run in a thread worker: the UI stays free)."""
    for source in sources:
        rendered_lines(app, source, width)


def frozen_markdown(text: str, classes: str = "answer") -> Static:
    return Static(MarkdownVisual(text), classes=classes)

class SettledPiece(Static):
    """Finished blocks of a streaming answer, rendered once as a Rich Markdown renderable. The
    bottom margin stands for the blank line Rich puts between blocks of one document."""

    DEFAULT_CSS = """
    SettledPiece {
        height: auto;
        margin: 0 0 1 0;
    }
    """

    def __init__(self, source: str) -> None:
        super().__init__(MarkdownVisual(source), classes="answer settled")
        self.source = source


class LiveStream:
    """Feeds the live Markdown widget through Textual's `MarkdownStream` (Markdown.get_stream), and
    replaces its whole text when finished blocks leave it."""

    def __init__(self, widget: LiveMarkdown) -> None:
        self.widget = widget
        # Made at the first write: stopping a stream whose task never ran would cancel the caller.
        self._stream = None

    async def write(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.widget)
        await self._stream.write(text)

    async def restart(self, text: str) -> None:
        """Replace the widget's whole text (the settled blocks left it)."""
        await self.stop()
        await self.widget.update(text)

    async def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()


class LiveMarkdown(Markdown):
    BLOCKS = {**Markdown.BLOCKS, "fence": _LiveFence, "code_block": _LiveFence}


# The live Markdown widget keeps about this much text at most while finished blocks can leave it
# (each of its blocks is a widget laid out on every repaint); a static piece of finished blocks is
# at most about PIECE_CHARS (bigger only when one block is), so rendering one stays short.
LIVE_CHARS = 400
PIECE_CHARS = 1200
_FENCES = ("```", "~~~")


def block_starts(text: str) -> list[int]:
    """Offsets where a new top-level block starts after a finished one, in streamed Markdown.

    A block is finished when a blank line follows it, outside a code fence, and what comes after
    is not indented (an indented line continues a list item or is code)."""
    in_fence = False
    starts: list[int] = []
    offset = 0
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        offset += len(line) + 1
        stripped = line.lstrip()
        if stripped.startswith(_FENCES):
            in_fence = not in_fence
            continue
        if in_fence or line.strip():
            continue
        following = lines[i + 1]
        if following and not following[0].isspace() and following.strip():
            starts.append(offset)
    return starts


def settled_prefix_end(text: str) -> int:
    """Where the finished top-level blocks of streamed Markdown end (0: none yet).

    The last block is kept live even if it ends in a blank line, so the live widget is never empty.
    """
    starts = block_starts(text)
    best = starts[-1] if starts else 0
    return best if best < len(text) - 1 else 0


def split_blocks(settled: str) -> list[str]:
    """Finished Markdown cut into its top-level blocks (each with its trailing blank lines)."""
    cuts = [0, *block_starts(settled), len(settled)]
    return [settled[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
