"""The chat pane: one conversation, read from history page by page as the user scrolls.

It keeps a bounded window of message widgets (a long history would make every update slow), and
loads the page before or after that window when the user scrolls past either end, keeping the
lines on screen where they were, so no message is ever skipped. While the window holds the
newest message and the view is at its end, new messages keep it there; otherwise they are
counted as "new below" and the view does not move.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from textual import events, work
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from node.user.store import StoredMessage

from ..safe import safe_content, safe_text
from .message_line import DayLine, MessageLine, ReadMarker, day_of

log = logging.getLogger("p2p.tui")

PAGE = 100
WINDOW = 300  # message widgets kept at most; the far end is dropped and read again when needed
WELCOME = (
    "Welcome to p2p-chat. /add NAME adds a contact, /msg NAME TEXT starts a conversation, "
    "/help lists the commands and keys."
)


class HistorySource(Protocol):
    """Where pages of a conversation come from (the user node, reading its store)."""

    def history(
        self, peer: str, before: int | None = None, limit: int = 100
    ) -> list[StoredMessage]: ...

    def history_after(self, peer: str, after: int, limit: int = 100) -> list[StoredMessage]: ...

    def history_around(self, peer: str, n: int, limit: int = 100) -> list[StoredMessage]: ...


class ChatPane(VerticalScroll):
    class Below(Message):
        """The number of messages below the view that the user has not seen changed."""

        def __init__(self, peer: str | None, count: int) -> None:
            super().__init__()
            self.peer = peer
            self.count = count

    class CaughtUp(Message):
        """The user is looking at the newest message of `peer` (number `upto`)."""

        def __init__(self, peer: str, upto: int) -> None:
            super().__init__()
            self.peer = peer
            self.upto = upto

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.peer: str | None = None
        self.me = ""
        self.source: HistorySource | None = None
        self.lines: dict[str, MessageLine] = {}
        self.read_upto = 0
        self.marker: ReadMarker | None = None
        self.has_older = False
        self.has_newer = False
        self.new_below = 0
        self.paging = False
        self.queued_pages = 0  # PageUp/PageDown pressed while a page was read
        self.full_times = False
        self.notes: list[str] = []  # system lines shown, newest last
        self.placeholder: Static | None = None
        # r3: sets a line's quote, edit mark and reactions as it is built (tui/acts_ui.py)
        self.decorator: Callable[[MessageLine], None] | None = None

    def on_mount(self) -> None:
        self.border_title = "Chat"
        self.mount(Static(WELCOME, classes="system", markup=False))

    # ------------------------------------------------------------------ what is shown

    def message_lines(self) -> list[MessageLine]:
        return [c for c in self.children if isinstance(c, MessageLine)]

    def visible_lines(self) -> list[MessageLine]:
        """The message lines at least partly in view (from the layout and the scroll offset, so
        it is right as soon as the view has moved, before the screen is painted again)."""
        top = self.scroll_y
        bottom = top + self.scrollable_content_region.height
        return [
            line
            for line in self.message_lines()
            if line.virtual_region.y < bottom and line.virtual_region.bottom > top
        ]

    def newest_n(self) -> int:
        return max((line.msg.n for line in self.lines.values()), default=0)

    def at_end(self) -> bool:
        return self.pinned() or self.scroll_y >= self.max_scroll_y

    def pinned(self) -> bool:
        """Anchored to the end and not released by the user scrolling away.

        Textual keeps the end in view on every layout while this holds, but has no public flag
        for it; between layouts `scroll_y` alone can lag behind a new `max_scroll_y`.
        """
        return self.is_anchored and not self._anchor_released

    def following(self) -> bool:
        """The user sees the newest messages as they come: newest loaded, view at its end."""
        return self.peer is not None and not self.has_newer and self.at_end()

    # ------------------------------------------------------------------ opening

    def respell(self, peer: str) -> None:
        """The open conversation's name as its owner spells it."""
        self.peer = peer
        self.border_title = safe_content(f"Chat with {peer}")

    def open(
        self,
        peer: str,
        me: str,
        source: HistorySource,
        read_upto: int = 0,
        around: int | None = None,
    ) -> None:
        """Show the conversation with `peer`: its newest page, or the page around message `around`."""
        self.peer, self.me, self.source, self.read_upto = peer, me, source, read_upto
        self.border_title = safe_content(f"Chat with {peer}")
        self.remove_children()
        self.lines.clear()
        self.notes = []
        self.marker = None
        if around is None:
            page = source.history(peer, None, PAGE)
        else:
            page = source.history_around(peer, around, PAGE)
        self._probe(page)
        widgets = self._build(page, None)
        self.placeholder = None
        if not page:
            self.placeholder = Static(
                f"No messages with {safe_text(peer)} yet.", classes="system", markup=False
            )
            widgets.append(self.placeholder)
        self.mount_all(widgets)
        self._set_below(0)
        if around is None or not self.has_newer:
            self.anchor()  # pinned to the end on every layout, from the palette too
        else:
            self.anchor(False)
        if around is not None:
            self.call_after_refresh(self._show_hit, around)

    def close(self) -> None:
        """No conversation open: the welcome line again."""
        self.peer = None
        self.border_title = "Chat"
        self.remove_children()
        self.lines.clear()
        self.marker = self.placeholder = None
        self.has_older = self.has_newer = False
        self.anchor(False)
        self.scroll_home(animate=False, immediate=True)  # not left where the last one was
        self.mount(Static(WELCOME, classes="system", markup=False))
        self._set_below(0)

    def clear_view(self) -> None:
        """/clear: an empty view of the open conversation; its history stays on disk."""
        self.remove_children()
        self.lines.clear()
        self.notes = []
        self.marker = self.placeholder = None
        self.has_older = self.has_newer = False
        self.scroll_home(animate=False, immediate=True)
        self.anchor()
        self._set_below(0)

    def _show_hit(self, n: int) -> None:
        for line in self.message_lines():
            line.set_class(line.msg.n == n, "-hit")
            if line.msg.n == n:
                self.scroll_to_center(line, animate=False, immediate=True)

    def _probe(self, page: list[StoredMessage]) -> None:
        """Whether there is history before and after `page` (two indexed one-row reads)."""
        if not page or self.source is None or self.peer is None:
            self.has_older = self.has_newer = False
            return
        self.has_older = bool(self.source.history(self.peer, page[0].n, 1))
        self.has_newer = bool(self.source.history_after(self.peer, page[-1].n, 1))

    def _build(
        self, page: list[StoredMessage], prev: MessageLine | None, mark: bool = True
    ) -> list[Widget]:
        """Widgets for `page` (oldest first), with day lines and the read marker where they go.

        The marker goes only into pages read from history (`mark`): a message arriving while the
        conversation is open is new to nobody, or counted below the view.
        """
        widgets: list[Widget] = []
        day = day_of(prev.msg.ts) if prev is not None else None
        for msg in page:
            if msg.id in self.lines:
                continue
            if day_of(msg.ts) != day:
                widgets.append(DayLine(msg.ts))
                day = day_of(msg.ts)
            if mark and self.marker is None and not msg.outgoing and msg.n > self.read_upto:
                self.marker = ReadMarker()
                widgets.append(self.marker)
            line = MessageLine(msg, self.me, self.full_times)
            if self.decorator is not None:  # r3: quotes, edits, reactions (tui/acts_ui.py)
                self.decorator(line)
            self.lines[msg.id] = line
            widgets.append(line)
        return widgets

    # ------------------------------------------------------------------ live changes

    def add(self, msg: StoredMessage) -> bool:
        """A message just sent or received in this conversation; True when the user sees it now."""
        if msg.id in self.lines:
            return self.following()
        if self.has_newer:  # the window is away from the end: it is read when scrolled to
            self._set_below(self.new_below + 1)
            return False
        following = self.at_end()
        lines = self.message_lines()
        if self.placeholder is not None:  # "No messages yet"
            self.placeholder.remove()
            self.placeholder = None
        self.mount_all(self._build([msg], lines[-1] if lines else None, mark=False))
        if not following:
            self._set_below(self.new_below + 1)
        elif len(lines) >= WINDOW:
            self._trim_top_quietly()
        return following

    def set_state(self, msg_id: str, state: str, reason: str | None, path: str | None) -> bool:
        line = self.lines.get(msg_id)
        if line is None:
            return False
        line.set_state(state, reason, path)
        return True

    def system(self, text: str, classes: str = "system") -> None:
        """A line from the app itself; anything in it that came from the network is made inert."""
        self.notes.append(text)
        self.mount(Static(safe_content(text, multiline=True), classes=classes))
        if not self.has_newer:
            self.scroll_end(animate=False)
            # and once the line is laid out: a long one (/help) is seen to its end
            self.call_after_refresh(self.scroll_end, animate=False)

    def internal_error(self, worker: Worker[Any]) -> None:
        """A worker failed on a bug: the traceback goes to the log file, and a line here says so
        (a worker that may not end the app must not fail unseen either)."""
        log.error("worker %s failed", worker.name, exc_info=worker.error)
        self.system("internal error (the details are in tui.log)", classes="error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.internal_error(event.worker)

    def set_full_times(self, full: bool) -> None:
        self.full_times = full
        for line in self.message_lines():
            line.set_full_times(full)

    def _set_below(self, count: int) -> None:
        if count != self.new_below or count == 0:
            self.new_below = count
            self.post_message(self.Below(self.peer, count))

    def _trim_top_quietly(self) -> None:
        """At the end and following: drop the oldest widgets (the view is pinned to the end)."""
        lines = self.message_lines()
        keep_from = lines[len(lines) - WINDOW]
        drop = []
        for child in self.children:
            if child is keep_from:
                break
            drop.append(child)
        self.remove_children(drop)
        if self.marker in drop:
            self.marker = None
        for child in drop:
            if isinstance(child, MessageLine):
                self.lines.pop(child.msg.id, None)
        self.has_older = True

    # ------------------------------------------------------------------ scrolling and paging

    async def _refreshed(self) -> None:
        """Wait for the next refresh of the screen."""
        done = asyncio.Event()
        self.call_after_refresh(done.set)
        try:
            await asyncio.wait_for(done.wait(), 2.0)
        except TimeoutError:  # the screen is not on show: measure what there is
            pass

    async def _laid_out(self, old_height: int) -> None:
        """Wait until the layout has caught up with what was just mounted or removed.

        Paging runs in a worker, never in a key handler: Textual holds layout back while it
        handles a key, so a handler would wait for a height that cannot change yet.
        """
        for _ in range(20):
            await self._refreshed()
            if self.virtual_size.height != old_height:
                return

    def _drop(self, widgets: list[Widget]) -> None:
        for child in widgets:
            if isinstance(child, MessageLine):
                self.lines.pop(child.msg.id, None)
        if self.marker in widgets:
            self.marker = None

    async def load_older(self) -> bool:
        """Read the page before the window and put it above, the view staying where it is."""
        lines = self.message_lines()
        if not lines or not self.has_older or self.source is None or self.peer is None:
            return False
        page = self.source.history(self.peer, lines[0].msg.n, PAGE)
        self.has_older = bool(page) and bool(self.source.history(self.peer, page[0].n, 1))
        old_marker, self.marker = self.marker, None
        widgets = self._build(page, None)
        if not widgets:
            self.marker = old_marker
            return False
        old_height = self.virtual_size.height
        if self.marker is None:
            self.marker = old_marker
        elif old_marker is not None:
            await old_marker.remove()  # the first unread message is further up
        first = self.children[0] if self.children else None
        if isinstance(first, DayLine) and first.day == day_of(page[-1].ts):
            await first.remove()  # the day goes on across the pages
        await self.mount_all(widgets, before=0)
        await self._laid_out(old_height)
        grown = self.virtual_size.height - old_height
        self.scroll_to(y=self.scroll_y + grown, animate=False, immediate=True)
        await self._trim_bottom()
        return True

    async def _trim_bottom(self) -> None:
        lines = self.message_lines()
        if len(lines) <= WINDOW:
            return
        children = list(self.children)
        drop = children[children.index(lines[WINDOW - 1]) + 1 :]
        self._drop(drop)
        await self.remove_children(drop)
        self.has_newer = True
        self.anchor(False)

    async def load_newer(self) -> bool:
        """Read the page after the window and put it below; the oldest widgets go, the view stays."""
        if not self.has_newer or self.source is None or self.peer is None:
            return False
        page = self.source.history_after(self.peer, self.newest_n(), PAGE)
        self.has_newer = bool(page) and bool(self.source.history_after(self.peer, page[-1].n, 1))
        lines = self.message_lines()
        old_height = self.virtual_size.height
        await self.mount_all(self._build(page, lines[-1] if lines else None))
        await self._laid_out(old_height)
        lines = self.message_lines()
        if len(lines) > WINDOW:
            keep_from = lines[len(lines) - WINDOW]
            shift = keep_from.virtual_region.y
            drop = list(self.children)[: list(self.children).index(keep_from)]
            self._drop(drop)
            old_height = self.virtual_size.height
            await self.remove_children(drop)
            await self._laid_out(old_height)
            self.scroll_to(y=max(0, self.scroll_y - shift), animate=False, immediate=True)
            self.has_older = True
        if not self.has_newer:
            self.anchor()
            self.release_anchor()  # engaged again once the user reaches the end
        return True

    def scroll_pages(self, pages: int) -> None:
        """Scroll by whole pages at once (Textual's own page scroll waits for a refresh, so keys
        pressed quickly one after the other would move one page in all)."""
        height = self.scrollable_content_region.height
        self.scroll_to(y=self.scroll_y + pages * height, animate=False, immediate=True)

    def page_up(self) -> None:
        if self.paging:  # a page is being read: go on from where it leaves the view
            self.queued_pages -= 1
        elif self.scroll_y < self.scrollable_content_region.height and self.has_older:
            self.page_in("older", then_scroll=True)
        else:
            self.scroll_pages(-1)

    def page_down(self) -> None:
        if self.paging:
            self.queued_pages += 1
        elif self.at_end() and self.has_newer:
            self.page_in("newer", then_scroll=True)
        else:
            self.scroll_pages(+1)

    def jump_to_newest(self) -> None:
        """The newest line, at the bottom of the pane (reading the last page again if needed)."""
        if self.peer is None or self.source is None:
            self.scroll_end(animate=False)  # no conversation: the newest of the app's own lines
            return
        if self.has_newer:
            self.open(self.peer, self.me, self.source, self.read_upto)
        else:
            self.anchor()
        self._check_caught_up()

    def _check_caught_up(self) -> None:
        if self.following() and self.peer is not None:
            self._set_below(0)
            self.post_message(self.CaughtUp(self.peer, self.newest_n()))

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)  # moves the view and the scrollbar; it must run
        if self.paging or self.peer is None:
            return
        if new >= self.max_scroll_y and new > old:
            if self.has_newer:
                self.page_in("newer")
            elif self.new_below:
                self._check_caught_up()
        elif new <= 0 < old and self.has_older:
            self.page_in("older")

    def page_in(self, which: str, then_scroll: bool = False) -> None:
        """Read the page before or after the window, then scroll on by the pages asked for.

        `paging` is set here, before the worker runs, so keys that come meanwhile are counted
        (not lost, nor starting a second read).
        """
        self.paging = True
        self.queued_pages = (-1 if which == "older" else 1) if then_scroll else 0
        self._page_in(which)

    @work(group="page", exit_on_error=False)
    async def _page_in(self, which: str) -> None:
        """A worker, never a key handler: see _laid_out."""
        try:
            if which == "older":
                await self.load_older()
            else:
                await self.load_newer()
        finally:
            self.paging = False
        pages, self.queued_pages = self.queued_pages, 0
        if pages:
            self.scroll_pages(pages)
        self._check_caught_up()

    def on_message_line_jump(self, event: MessageLine.Jump) -> None:
        """r3: a reply was clicked: show the line it quotes, reading its page when not shown."""
        event.stop()
        self.jump_to(event.n)

    def jump_to(self, n: int) -> None:
        if any(line.msg.n == n for line in self.message_lines()):
            self._show_hit(n)
        elif self.peer is not None and self.source is not None:
            self.open(self.peer, self.me, self.source, self.read_upto, around=n)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        # the wheel at the top of the window reads the page before, so it never sticks there
        if self.scroll_y <= 0 and self.has_older and not self.paging:
            self.page_in("older")

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if self.at_end() and self.has_newer and not self.paging:
            self.page_in("newer")
