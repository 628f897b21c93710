"""Markdown for streamed answers, all drawn by Rich: the live tail (its unfinished end, redrawn
as it grows and kept short, LIVE_CHARS), the render cache the finished blocks are drawn from
(settled_answer.py), filled ahead by the generation thread (AnswerPrerender), and a visual for
finished answers that renders once per width.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict

from markdown_it import MarkdownIt
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from textual._context import active_app
from textual.strip import Strip
from textual.visual import Visual
from textual.widgets import Static


class MarkdownVisual(Visual):
    """A finished answer's Markdown (Rich's renderer), rendered once per width.

    A Static holding a Rich renderable renders it twice (once to measure its height for layout,
    once when it comes into view) and again whenever its cached lines are dropped; with code
    blocks that is ~10-20 ms each time, paid on every page of a long transcript (profiled). The
    lines here are kept; the widget's base style is applied on top when it is drawn, as Textual
    does for any Rich renderable.
    """

    def __init__(self, source: str, *, cached: bool = True) -> None:
        self.source = source
        self.cached = cached  # False for a text drawn once (the live tail): kept out of the shared cache
        self._width: int | None = None
        self._lines: list[list[Segment]] = []
        self._strips: tuple[object, int, list[Strip]] | None = None  # (base style, width, strips)

    def lines(self, width: int) -> list[list[Segment]]:
        global last_width
        if width != self._width:
            render = rendered_lines if self.cached else render_markdown
            self._lines = render(active_app.get(), self.source, width)
            self._width = last_width = width
        return self._lines

    def get_optimal_width(self, rules, container_width: int) -> int:
        return container_width

    def get_height(self, rules, width: int) -> int:
        return len(self.lines(width))

    def render_strips(self, width: int, height: int | None, style, options) -> list[Strip]:
        # Kept too: Textual asks again for every line whenever the widget is repainted (a scroll,
        # a layout change around it), and making the strips again was a third of a frame.
        base = style.rich_style
        if self._strips is None or self._strips[:2] != (base, width):
            lines = self.lines(width)
            strips = [Strip([Segment(text, base + seg_style if seg_style else base, control)
                             for text, seg_style, control in line]) if base else Strip(line) for line in lines]
            self._strips = (base, width, strips)
        strips = self._strips[2]
        return strips[:height] if height is not None else strips


# Rendered Markdown lines, shared by every block that shows the same text at the same width: a
# block rebuilt when scrolling brings it back (widgets/transcript.py) is not rendered again, and
# older blocks can be rendered ahead in a thread (`prerender`) before PageUp reaches them.
# Bounded by entries; a block is a few KB of segments. Streamed answers add an entry per block
# (rendered ahead by the generation thread, which can be hundreds of blocks ahead of the screen
# in a fast stream: 400 entries let them be evicted before use).
RENDER_CACHE_ENTRIES = 4000
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
    lines = render_markdown(app, source, width)
    with _rendered_lock:
        _rendered[key] = lines
        while len(_rendered) > RENDER_CACHE_ENTRIES:
            _rendered.popitem(last=False)
    return lines


# Rich builds a new markdown-it parser for every document, which costs more than rendering a
# short block (44 of 106 ms for 120 blocks, measured); one parser serves every render (parsing
# keeps its state per call, so threads can share it).
_TEMPLATE = RichMarkdown("", code_theme="monokai")
_PARSER = MarkdownIt().enable("strikethrough").enable("table")


def rich_markdown(source: str) -> RichMarkdown:
    """Rich's Markdown renderable for `source`, as `RichMarkdown(source, code_theme="monokai")`."""
    markdown = copy.copy(_TEMPLATE)
    markdown.markup = source
    markdown.parsed = _PARSER.parse(source)
    return markdown


def render_markdown(app, source: str, width: int) -> list[list[Segment]]:
    """`source` as Rich renders it at `width`, in lines (not cached)."""
    options = app.console_options.update(highlight=False).update_width(width)
    segments = app.console.render(rich_markdown(source), options)
    return list(Segment.split_and_crop_lines(segments, width, include_new_lines=False, pad=False))


def clear_render_cache() -> None:
    with _rendered_lock:
        _rendered.clear()


def is_rendered(source: str, width: int) -> bool:
    with _rendered_lock:
        return (source, width) in _rendered


def prerender(app, sources: list[str], width: int) -> None:
    """Render `sources` at `width` into the cache (run in a thread worker: the UI stays free)."""
    for source in sources:
        rendered_lines(app, source, width)


def frozen_markdown(text: str, classes: str = "answer") -> Static:
    return Static(MarkdownVisual(text), classes=classes)

class LiveTail(Static):
    """The unfinished end of a streaming answer, drawn by Rich like everything else of the answer
    and redrawn whole when it grows.

    It holds at most about LIVE_CHARS (or one long unfinished block): finished blocks leave it for
    the answer's SettledAnswer as soon as it is past that. Textual's Markdown widget fed through
    `Markdown.get_stream()` was used here before; it makes a widget per block and, while it mounts
    them, holds every frame back (App.batch_update), 25-40 ms a time, and replacing it when
    blocks left took 30-95 ms in the app's message handler. In a fast stream that kept typed keys
    off the screen: key latency p95 110-130 ms, against 36-61 ms with this widget and the rest of
    the code the same; at 200 tok/s 31-41 ms and 33-35% of a core, against 15-28 ms and 20%
    (benchmarks/tui_stream.py, two runs each). Re-rendering a few hundred characters costs 1-3 ms; it also looks the same before and
    after a block settles, which the Markdown widget did not."""

    def __init__(self) -> None:
        super().__init__("", classes="answer live")
        self.source = ""

    def show(self, text: str) -> None:
        self.source = text
        self.update(MarkdownVisual(drawn_tail(text), cached=False))


# An unfinished code block in the live tail shows at most this many of its last lines: Rich
# highlights a code block whole, 24 ms for 100 lines and 72 ms for 300 here, on every update.
TAIL_CODE_LINES = 40


def drawn_tail(text: str, code_lines: int = TAIL_CODE_LINES) -> str:
    """The live tail as drawn: an unfinished code block longer than `code_lines` shows its opening
    line and its last `code_lines` lines, with a note above it; all of it shows once complete."""
    lines = text.split("\n")
    opened = None  # index of the open fence's first line
    for i, line in enumerate(lines):
        if line.lstrip().startswith(_FENCES):
            opened = i if opened is None else None
    if opened is None or len(lines) - opened - 1 <= code_lines:
        return text
    hidden = len(lines) - opened - 1 - code_lines
    note = f"*… {hidden} more lines of this code block above; all of it shows when it is complete*"
    return "\n".join([*lines[:opened], note, "", lines[opened], *lines[-code_lines:]])


# The live tail keeps about this much text at most while finished blocks can leave it (it is
# redrawn whole as it grows); finished blocks go to the answer's SettledAnswer
# (settled_answer.py), each rendered on its own.
LIVE_CHARS = 400
_FENCES = ("```", "~~~")


_LIST_ITEM = re.compile(r"([-*+]|\d{1,9}[.)])(\s|$)")
_LONGEST_ITEM_MARKER = 11  # "123456789. "


def block_starts(text: str) -> list[int]:
    """Offsets where a new top-level block starts after a finished one, in streamed Markdown.

    A block is finished when a blank line follows it, outside a code fence, and what comes after
    is not indented (an indented line continues a list item or is code), nor the next item of a
    list the block is (a loose list is one list: its items are rendered, and numbered, together).
    A start is only given once it is certain: text streamed later never moves or removes it, so
    the generation thread (AnswerPrerender) and the UI, seeing different prefixes, cut alike."""
    in_fence = False
    starts: list[int] = []
    offset = 0
    lines = text.split("\n")
    block_is_list = bool(lines) and bool(_LIST_ITEM.match(lines[0]))
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
            if i + 1 == len(lines) - 1 and len(following) < _LONGEST_ITEM_MARKER:
                break  # still arriving: "1" may yet become "1. item"; decided when more is known
            following_is_item = bool(_LIST_ITEM.match(following))
            if block_is_list and following_is_item:
                continue
            starts.append(offset)
            block_is_list = following_is_item
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


class AnswerPrerender:
    """Renders a streaming answer's finished blocks as they arrive, in the thread that receives
    the model's text, so the UI thread finds their lines in the cache when they leave the live
    tail (rendering a block with code highlighting on the UI thread held a frame for 10-40 ms).

    Its blocks are the ones the UI settles: `block_starts` over the answer from the start of the
    first unrendered block, which is where the UI's live text starts too (a block start outside a
    code fence). A miss (the width changed meanwhile) only means the UI renders it itself."""

    def __init__(self, app) -> None:
        self.app = app
        self._text = ""  # the answer from the first block not rendered yet

    def answer(self, text: str) -> None:
        self._text += text
        starts = block_starts(self._text)
        if starts:
            self._render(split_blocks(self._text[:starts[-1]]))
            self._text = self._text[starts[-1]:]

    def step_finished(self) -> None:
        """The step's answer is complete: its last block is rendered too (the UI settles it when
        the answer is frozen), and the next step's answer starts afresh, in a new message."""
        text, self._text = self._text, ""
        self._render(split_blocks(text))

    def _render(self, blocks: list[str]) -> None:
        width = last_width
        if width is not None:
            for block in blocks:
                rendered_lines(self.app, block_source(block), width)


def block_source(block: str) -> str:
    """A finished block as it is rendered and cached: without the blank lines that end it."""
    return block.rstrip()


WARM_UP = "A **warm-up** with `code`:\n\n- item\n\n```python\ndef f(x):\n    return x\n```\n"


def warm_up(app) -> None:
    """Render a small answer once (in a thread worker at start-up): the first real one would
    otherwise pay for importing Rich's Markdown parts and Pygments' lexers and styles mid-frame.
    A language Pygments does not know (or one still being typed in a streaming fence, "```pyt")
    makes it look through installed plugins once per process: 0.4 s, measured in a frame."""
    options = app.console_options.update(highlight=False).update_width(80)
    list(app.console.render(rich_markdown(WARM_UP), options))
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        get_lexer_by_name("qwen-tui-warm-up")
    except ClassNotFound:
        pass
