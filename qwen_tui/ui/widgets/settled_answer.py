"""The finished part of a streaming answer: one widget, drawn line by line from cached renders.

While an answer streams, its finished top-level blocks (paragraphs, lists, code blocks) leave the
live Markdown widget (markdown_stream.py). They used to become static pieces, one widget per
~1,200 characters; a long answer then had dozens of widgets, every one laid out and composited
on every frame of the stream, and each piece's first render ran on the UI thread (~10-40 ms with
code highlighting) in the middle of a frame (profiled: the frames of a fast stream took 30-85 ms
and held typed keys that long).

Here every finished block is rendered on its own, usually ahead of time by the generation thread
(`AnswerPrerender`), into the shared render cache; this widget only concatenates the cached lines
and hands Textual the few it asks for (the Line API: `render_line`), so the cost of a frame no
longer grows with the answer.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip
from textual.widget import Widget

from qwen_tui.ui.widgets import markdown_stream
from qwen_tui.ui.widgets.markdown_stream import block_source


def _plain_blank(line: list[Segment]) -> bool:
    """An empty line with nothing drawn on it (a code block's padding has a background: kept)."""
    return all(not seg.text.strip() and (seg.style is None or seg.style.bgcolor is None) for seg in line)


class SettledAnswer(Widget):
    """Finished blocks of a streaming answer, a blank line between them, as Rich renders each one.

    The bottom margin is the blank line between the last finished block and the live widget;
    a finished answer has none."""

    DEFAULT_CSS = """
    SettledAnswer {
        height: auto;
        margin: 0 0 1 0;
    }
    SettledAnswer.finished {
        margin: 0;
    }
    """

    def __init__(self) -> None:
        super().__init__(classes="answer settled")
        self.blocks: list[str] = []
        self._width: int | None = None
        self._lines: list[list[Segment]] = []  # every block's lines at _width
        self._strips: dict[int, Strip] = {}  # drawn lines, with the widget's base style, by y
        self._strip_style = None

    @property
    def source(self) -> str:
        return "".join(self.blocks)

    def add_blocks(self, blocks: list[str]) -> None:
        self.blocks += blocks
        if self._width is not None:
            self._append(blocks, self._width)
        self.refresh(layout=True)

    def _append(self, blocks: list[str], width: int) -> None:
        app = self.app
        for block in blocks:
            lines = markdown_stream.rendered_lines(app, block_source(block), width)
            start, end = 0, len(lines)
            # Rich starts some blocks (lists, tables) with the blank line it puts between blocks
            # of one document; here exactly one blank line separates blocks, as in the document.
            while start < end and _plain_blank(lines[start]):
                start += 1
            while end > start and _plain_blank(lines[end - 1]):
                end -= 1
            if self._lines:
                self._lines.append([])
            self._lines.extend(lines[start:end])

    def _lines_at(self, width: int) -> list[list[Segment]]:
        if width != self._width:
            self._width = width
            self._lines, self._strips = [], {}
            self._append(self.blocks, width)
        return self._lines

    def get_content_width(self, container, viewport) -> int:
        return container.width

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines_at(width))

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        lines = self._lines_at(width)
        base = self.visual_style.rich_style
        if base != self._strip_style:  # a new theme: the base style under every line changed
            self._strips, self._strip_style = {}, base
        strip = self._strips.get(y)
        if strip is None:
            if y >= len(lines):
                return Strip.blank(width, base)
            segments = lines[y]
            if base:
                segments = [Segment(text, base + style if style else base, control)
                            for text, style, control in segments]
            strip = self._strips[y] = Strip(segments)
        return strip
