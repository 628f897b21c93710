"""The scrolling transcript, windowed: only the messages near what is on screen are widgets.

Why: every mounted message costs layout and compositor time on every repaint and scroll. A
1,000-message session mounted whole took 19 s to open and 259 ms per page-up here (measured,
benchmarks/tui_stream.py). Blocks away from the view are kept as *factories* (cheap callables
that rebuild a finished block) in `older` (above) and `newer` (below), and are rebuilt when
scrolling comes near that edge, while the far edge is trimmed. Blocks still changing (a streaming
answer, a tool call not yet finished) are never trimmed. Appending at the end (a new message)
first brings the newest blocks back, so the live part of the conversation is always mounted and
in order.

What stays mounted is measured in screen heights, not blocks: about KEEP_SCREENS screens above
the view's top and below its bottom (WINDOW blocks is only an upper bound). Why: every frame of a
stream re-lays out every *mounted* block, so a count window of 60 blocks made a stream after 50
earlier messages 1.15-1.58x slower than in an empty chat, and a PageUp that mounted older blocks
paid a reflow of ~60 blocks; yet a fixed small count is wrong either way (8 one-line messages
don't fill a screen; 8 long answers are pages). Heights are only known after layout, so the
window is adjusted after a refresh (`_rebalance`): at the bottom (opening a session, a new
message, a stream) chunks come back above until KEEP_SCREENS are filled, and blocks wholly more
than KEEP_SCREENS + SLACK_SCREENS above the view leave; while paging, a chunk comes back when
the view is within KEEP_SCREENS of the mounted edge, and before it is mounted the blocks that far
beyond the other edge leave, so each mount lays out a small set. Chunks stay CHUNK blocks: chunks
sized by height to about a screen (~3 blocks) made nearly every PageUp a loading one (median
61 ms, p95 189 ms vs 10.5 ms and 108 ms with 10 blocks, same build), and 6 blocks gave p95
158-177 ms vs 128-164 ms with 10 (400 messages at 120x40, measured). With 1,000 messages:
PageUp p95 160 -> 117 ms, first screen 0.33 -> 0.16 s, 60 -> 14 blocks mounted (same run).

The view is kept in place within the layout pass (scroll anchoring, as browsers do; `arrange`):
when blocks above the view come, go or change height, `scroll_y` moves by as much as the first
block in view moved, before the compositor places anything, as Textual itself keeps an anchored
view at the bottom. Correcting it after a refresh drew a frame with the lines jumped on every
PageUp that loaded blocks, and blocks still composing their parts moved the view again later.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.scrollbar import ScrollBar
from textual.widget import Widget

Factory = Callable[[], Widget]


def factory_for(widget: Widget) -> Factory | None:
    """How to rebuild this block later, or None when it can't leave the screen (still changing)."""
    rebuild = getattr(widget, "rebuild", None)
    return rebuild() if rebuild is not None else None


class Transcript(VerticalScroll):
    WINDOW = 60  # blocks mounted at most, give or take a chunk (an upper bound: see KEEP_SCREENS)
    CHUNK = 10  # blocks brought back at a time at most (each chunk costs one short pause to lay out)
    EDGE = 2  # lines from the top/bottom that count as "at the edge", plus the kept screens
    # Screens of content kept mounted above the view's top and below its bottom.
    KEEP_SCREENS = 2
    # Blocks leave only once they are this many screens more than KEEP_SCREENS away from the view,
    # so they don't come back at once (and trimming doesn't run every frame of a stream).
    SLACK_SCREENS = 1
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
        self._rebalance_pending = False
        self._view_anchor: tuple[Widget, int] | None = None  # the first block in view, its y
        self._placed: dict[Widget, int] = {}  # each block's y in the latest arrangement

    # -- what the app calls --------------------------------------------------------------------

    async def show_history(self, factories: list[Factory]) -> None:
        """Put earlier messages above everything shown; the newest of them are mounted at once
        (one chunk: after layout, as many more come back as the kept screens need)."""
        if self.older or len(self.children) >= self.WINDOW:
            self.older[:0] = factories
            self._schedule_rebalance()
            return
        room = min(self.WINDOW - len(self.children), self.CHUNK)
        cut = max(0, len(factories) - room)
        self.older[:0] = factories[:cut]
        newest = [make() for make in factories[cut:]]
        if newest:
            await super().mount(*newest, before=0 if self.children else None)
        self.scroll_end(animate=False)
        self._schedule_rebalance()

    @property
    def total_blocks(self) -> int:
        return len(self.older) + len(self.children) + len(self.newer)

    def mount(self, *widgets, before=None, after=None):
        # Appending at the end while the newest blocks are trimmed away: rebuild them first so the
        # new block lands after them, not in a gap.
        at_end = before is None and after is None
        if at_end and self.newer:
            widgets = (*self._window_at_end(), *widgets)
            self.anchor()
        result = super().mount(*widgets, before=before, after=after)
        if at_end:
            self._schedule_rebalance()
        return result

    def remove_children(self, selector="*"):
        if selector == "*":  # emptied (a new chat): what was trimmed goes too
            self.older, self.newer = [], []
            self._view_anchor = None
        return super().remove_children(selector)

    # -- the view kept in place within the frame -----------------------------------------------

    def arrange(self, size: Size, *args, **kwargs):
        """Scroll anchoring (as browsers do): when blocks above the view come, go or change height,
        scroll by as much as the first block in view moved, in this same layout pass."""
        arrangement = super().arrange(size, *args, **kwargs)
        if (args and args[0]) or kwargs.get("optimal"):  # a sizing question, not the layout
            return arrangement
        self._placed = placed = {p.widget: p.region.y for p in arrangement.placements}
        anchor, self._view_anchor = self._view_anchor, None
        moved = 0
        if anchor is not None and not self.is_anchored:  # anchored, the compositor keeps the end
            moved = placed.get(anchor[0], anchor[1]) - anchor[1]
        scroll_y = max(0, self.scroll_y + moved)
        for placement in arrangement.placements:  # the block in view to keep there next time
            if placement.region.bottom > scroll_y:
                self._view_anchor = (placement.widget, placement.region.y)
                break
        if moved:  # state first: setting these may lay out again (and come back here)
            self.set_reactive(Widget.scroll_y, scroll_y)
            self.set_reactive(Widget.scroll_target_y, max(0, self.scroll_target_y + moved))
            self.vertical_scrollbar.set_reactive(ScrollBar.position, scroll_y)
        return arrangement

    def _y(self, widget: Widget) -> int | None:
        return self._placed.get(widget)

    # -- keeping the window around the view ----------------------------------------------------

    def _screen(self) -> int:
        return max(1, self.scrollable_content_region.height)

    def _load_edge(self) -> float:
        """Less than this much content past an edge of the view: bring the next chunk back."""
        return self.EDGE + self.KEEP_SCREENS * self._screen()

    def _far(self) -> float:
        """Blocks wholly further than this from the view may leave."""
        return (self.KEEP_SCREENS + self.SLACK_SCREENS) * self._screen()

    @property
    def _at_bottom(self) -> bool:
        return self.is_anchored or self.scroll_y >= self.max_scroll_y - self.EDGE

    def watch_virtual_size(self, old_value, new_value) -> None:
        # The content grew or shrank (a streaming answer, blocks in or out): heights are known now.
        if not self._busy:
            self._schedule_rebalance()

    def _schedule_rebalance(self) -> None:
        if self._rebalance_pending:
            return
        self._rebalance_pending = True
        self.call_after_refresh(self._rebalance)

    def _rebalance(self) -> None:
        """After layout: bring blocks back where less than the kept screens is left, or let the
        blocks far above go when at the bottom (a stream, new messages)."""
        self._rebalance_pending = False
        if self._busy or not self.is_attached:
            return
        if not self._at_bottom:
            # Paging loads at the edge it reaches (watch_scroll_y). Not from here: blocks just
            # mounted look short until their parts are laid out, and loading on that account
            # brought a second chunk per PageUp (measured), only to let it go again.
            return
        if self.older and self.scroll_y <= self._load_edge():
            self._start(self._load_older)
        elif self._piled_up_above():
            self._start(self._trim_top)

    def _start(self, job) -> None:
        self._busy = True
        self.call_later(job)

    def _piled_up_above(self) -> bool:
        children = self.children
        if len(children) > self.WINDOW + self.CHUNK:
            return True
        if len(children) < 2:
            return False
        second = self._y(children[1])  # where the first block ends, give or take a margin
        return second is not None and second <= self.scroll_y - self._far()

    # -- scrolling to an edge brings back what was trimmed -------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._busy:
            return
        # Blocks are built before the edge is reached, so paging never shows a gap.
        edge = self._load_edge()
        if new_value <= edge + self.PREFETCH_SCREENS * self.size.height and self.older:
            self._prefetch_older()
        if new_value <= edge and self.older:
            self._start(self._load_older)
        elif new_value >= self.max_scroll_y - edge and self.newer:
            self._start(self._load_newer)

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
            if not self.is_anchored:
                # Far-below blocks leave first: the mount then lays out only what is kept.
                self._trim_bottom()
            part, self.older = self.older[-self.CHUNK:], self.older[: -self.CHUNK]
            await super().mount(*[make() for make in part], before=0)  # the view stays: see arrange
        except Exception:
            self._busy = False
            raise

        def done() -> None:
            self._busy = False
            if self.older:
                self._prefetch_older()  # the next chunk up, ready before paging reaches it
            self._schedule_rebalance()

        self.call_after_refresh(done)

    async def _load_newer(self) -> None:
        try:
            self.release_anchor()  # reaching the window's bottom is not the conversation's end
            part, self.newer = self.newer[: self.CHUNK], self.newer[self.CHUNK:]
            await super().mount(*[make() for make in part])
            await self._trim_top_now()
        finally:
            self._busy = False
        self._schedule_rebalance()

    # -- trimming the far edge ------------------------------------------------------------------

    def _trim_bottom(self) -> None:
        """Rebuildable blocks beyond the window at the bottom leave (they are off screen): past
        WINDOW blocks, or wholly more than the kept screens (and slack) below the view."""
        children = list(self.children)
        below = self.scroll_y + self._screen() + self._far()
        leaving: list[Widget] = []
        for index in range(len(children) - 1, -1, -1):
            widget = children[index]
            if index < self.WINDOW:
                y = self._y(widget)
                if y is None or y < below:
                    break
            make = factory_for(widget)
            if make is None:
                break
            leaving.append(widget)
            self.newer.insert(0, make)
        if leaving:
            self.release_anchor()
            super().remove_children(leaving)

    async def _trim_top(self) -> None:
        try:
            await self._trim_top_now()
        finally:
            self._busy = False

    async def _trim_top_now(self) -> None:
        """Rebuildable blocks beyond the window at the top leave (past WINDOW blocks, or wholly
        more than the kept screens and slack above the view); the view doesn't move."""
        children = list(self.children)
        above = self.scroll_y - self._far()
        over = len(children) - self.WINDOW
        leaving: list[Widget] = []
        for index, widget in enumerate(children[:-1]):  # the last one is at or below the view
            if index >= over:
                end = self._y(children[index + 1])  # where this block ends, give or take a margin
                if end is None or end > above:
                    break
            make = factory_for(widget)
            if make is None:
                break
            leaving.append(widget)
            self.older.append(make)
        if leaving:
            await super().remove_children(leaving)  # the view stays: see arrange

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
        # One chunk is rebuilt; after layout, as many more as the kept screens need come back.
        everything, self.newer = makes + self.newer, []
        keep = everything[-self.CHUNK:]
        self.older.extend(everything[:-self.CHUNK])
        super().remove_children(mounted)
        return [make() for make in keep]
