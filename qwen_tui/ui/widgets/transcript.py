"""The scrolling transcript, windowed: only the messages near what is on screen are widgets.

Why: every mounted message costs layout and compositor time on every repaint and scroll. A
1,000-message session mounted whole took 19 s to open and 259 ms per page-up here (measured,
benchmarks/tui_stream.py). So the transcript keeps at most about WINDOW blocks mounted. Blocks
beyond the window are kept as *factories* (cheap callables that rebuild a finished block) in
`older` (above) and `newer` (below), and are rebuilt when scrolling reaches that edge, while the
far edge is trimmed. Blocks still changing (a streaming answer, a tool call not yet finished)
are never trimmed. Appending at the end (a new message) first brings the newest blocks back, so
the live part of the conversation is always mounted and in order.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.containers import VerticalScroll
from textual.widget import Widget

Factory = Callable[[], Widget]


def factory_for(widget: Widget) -> Factory | None:
    """How to rebuild this block later, or None when it can't leave the screen (still changing)."""
    rebuild = getattr(widget, "rebuild", None)
    return rebuild() if rebuild is not None else None


class Transcript(VerticalScroll):
    WINDOW = 60  # blocks mounted at most, give or take a chunk
    CHUNK = 10  # blocks brought back at a time (each chunk costs one short pause to lay out)
    EDGE = 2  # lines from the top/bottom that count as "at the edge", plus one screen: see edge
    # Within this many screens of the top, the next older chunk's Markdown is rendered ahead in a
    # thread worker, so reaching the edge only mounts blocks whose lines are ready (rendering 10
    # blocks with code highlighting on the UI thread held a PageUp for 90-190 ms, measured).
    PREFETCH_SCREENS = 4

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.older: list[Factory] = []  # oldest first
        self.newer: list[Factory] = []  # oldest first
        self._busy = False
        self._prefetching = False

    # -- what the app calls --------------------------------------------------------------------

    async def show_history(self, factories: list[Factory]) -> None:
        """Put earlier messages above everything shown; the newest of them are mounted at once."""
        if self.older or len(self.children) >= self.WINDOW:
            self.older[:0] = factories
            return
        room = self.WINDOW - len(self.children)
        cut = max(0, len(factories) - room)
        self.older[:0] = factories[:cut]
        newest = [make() for make in factories[cut:]]
        if newest:
            await super().mount(*newest, before=0 if self.children else None)
        self.scroll_end(animate=False)

    @property
    def total_blocks(self) -> int:
        return len(self.older) + len(self.children) + len(self.newer)

    def mount(self, *widgets, before=None, after=None):
        # Appending at the end while the newest blocks are trimmed away: rebuild them first so the
        # new block lands after them, not in a gap.
        if before is None and after is None and self.newer:
            widgets = (*self._window_at_end(), *widgets)
            self.anchor()
        result = super().mount(*widgets, before=before, after=after)
        if before is None and after is None and len(self.children) > self.WINDOW + self.CHUNK:
            self.call_after_refresh(self._trim_top_if_at_bottom)
        return result

    def remove_children(self, selector="*"):
        if selector == "*":  # emptied (a new chat): what was trimmed goes too
            self.older, self.newer = [], []
        return super().remove_children(selector)

    # -- scrolling to an edge brings back what was trimmed -------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._busy:
            return
        # Blocks are built a screen before the edge is reached, so paging never shows a gap.
        edge = self.EDGE + self.size.height
        if new_value <= edge + self.PREFETCH_SCREENS * self.size.height and self.older:
            self._prefetch_older()
        if new_value <= edge and self.older:
            self._busy = True
            self.call_later(self._load_older)
        elif new_value >= self.max_scroll_y - edge and self.newer:
            self._busy = True
            self.call_later(self._load_newer)

    def _prefetch_older(self) -> None:
        """Render the Markdown of the next older chunk in a thread (see PREFETCH_SCREENS)."""
        from qwen_tui.ui.widgets import markdown_stream
        from qwen_tui.ui.widgets.messages import markdown_sources

        width = markdown_stream.last_width
        if self._prefetching or width is None:
            return
        sources = [s for make in self.older[-self.CHUNK:] for s in markdown_sources(make)
                   if not markdown_stream.is_rendered(s, width)]
        if not sources:
            return
        self._prefetching = True
        app = self.app

        def render() -> None:
            try:
                markdown_stream.prerender(app, sources, width)
            finally:
                self._prefetching = False  # a plain flag: read on the UI thread, a hint only

        self.run_worker(render, thread=True, group="transcript-prefetch", exit_on_error=False)

    async def _load_older(self) -> None:
        try:
            part, self.older = self.older[-self.CHUNK:], self.older[: -self.CHUNK]
            y_before = self.scroll_y
            added = [make() for make in part]
            await super().mount(*added, before=0)
            self._trim_bottom()
        except Exception:
            self._busy = False
            raise

        def keep_view() -> None:
            # The blocks went in above: scroll down by their height so the same lines stay in view.
            grown = sum(w.virtual_region_with_margin.height for w in added)
            self.scroll_to(y=y_before + grown, animate=False, immediate=True)
            self._busy = False

        self.call_after_refresh(keep_view)

    async def _load_newer(self) -> None:
        try:
            self.release_anchor()  # reaching the window's bottom is not the conversation's end
            part, self.newer = self.newer[: self.CHUNK], self.newer[self.CHUNK:]
            await super().mount(*[make() for make in part])
            await self._trim_top()
        finally:
            self._busy = False

    # -- trimming the far edge ------------------------------------------------------------------

    def _trim_bottom(self) -> None:
        """Rebuildable blocks beyond the window at the bottom leave (they are off screen)."""
        children = list(self.children)
        leaving: list[Widget] = []
        for widget in reversed(children[self.WINDOW:]):
            make = factory_for(widget)
            if make is None:
                break
            leaving.append(widget)
            self.newer.insert(0, make)
        if leaving:
            self.release_anchor()
            super().remove_children(leaving)

    async def _trim_top(self) -> None:
        """Rebuildable blocks beyond the window at the top leave; the view doesn't move."""
        children = list(self.children)
        leaving: list[Widget] = []
        for widget in children[: max(0, len(children) - self.WINDOW)]:
            make = factory_for(widget)
            if make is None:
                break
            leaving.append(widget)
            self.older.append(make)
        if not leaving:
            return
        removed = sum(w.virtual_region_with_margin.height for w in leaving)
        y = self.scroll_y
        anchored = self.is_anchored
        await super().remove_children(leaving)
        if anchored:
            self.scroll_end(animate=False, immediate=True)
        else:
            self.scroll_to(y=max(0, y - removed), animate=False, immediate=True)

    async def _trim_top_if_at_bottom(self) -> None:
        if self.is_anchored or self.scroll_y >= self.max_scroll_y - self.EDGE:
            await self._trim_top()

    @property
    def is_anchored(self) -> bool:
        return bool(self._anchored and not self._anchor_released)

    def _window_at_end(self) -> list[Widget]:
        """Move the window to the newest blocks (to append after them); returns them rebuilt."""
        mounted = list(self.children)
        makes = [factory_for(w) for w in mounted]
        if any(make is None for make in makes):  # a block still changing: keep everything mounted
            newer, self.newer = self.newer, []
            return [make() for make in newer]
        everything, self.newer = makes + self.newer, []
        keep = everything[-self.WINDOW:]
        self.older.extend(everything[: -self.WINDOW])
        super().remove_children(mounted)
        return [make() for make in keep]
