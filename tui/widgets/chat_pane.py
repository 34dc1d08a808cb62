"""The chat pane: one conversation with timestamps, senders and live states, paged from history."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from node.user.store import StoredMessage

STATE_MARKS = {
    "queued": ("…", "dim"),
    "sent": ("✓", "dim"),
    "delivered": ("✓✓", "green"),
    "failed": ("✗", "red"),
}


def clock(ms: int) -> str:
    return time.strftime("%H:%M", time.localtime(ms / 1000))


class MessageLine(Static):
    """One message; its state mark changes in place as the node reports progress."""

    def __init__(self, msg: StoredMessage) -> None:
        super().__init__(classes="outgoing" if msg.outgoing else "incoming")
        self.msg = msg
        self.state = msg.state
        self.reason = msg.reason

    def on_mount(self) -> None:
        self.update(self.message_text())

    def set_state(self, state: str, reason: str | None) -> None:
        self.state, self.reason = state, reason
        self.update(self.message_text())

    def message_text(self) -> Text:
        text = Text()
        text.append(clock(self.msg.ts) + " ", style="dim")
        text.append(self.msg.sender, style="bold cyan" if self.msg.outgoing else "bold magenta")
        text.append(": ")
        text.append(self.msg.text)
        if self.msg.outgoing:
            mark, style = STATE_MARKS.get(self.state, ("", ""))
            text.append(f"  {mark} {self.state}", style=style)
            if self.reason and self.state in ("queued", "failed"):
                text.append(f" ({self.reason})", style=style)
        return text


class ChatPane(VerticalScroll):
    class NeedOlder(Message):
        """Scrolled to the top: load the page before message number `before`."""

        def __init__(self, peer: str, before: int) -> None:
            super().__init__()
            self.peer = peer
            self.before = before

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.peer: str | None = None
        self.lines: dict[str, MessageLine] = {}
        self.oldest: int | None = None
        self.complete = False
        self.placeholder: Static | None = None
        self.notes: list[str] = []  # system lines shown, newest last

    def on_mount(self) -> None:
        self.border_title = "Chat"
        self.mount(
            Static(
                "Welcome to p2p-chat. /add NAME adds a contact, /msg NAME TEXT starts a conversation, "
                "/help lists the commands.",
                classes="system",
            )
        )

    def open(self, peer: str, page: list[StoredMessage], page_size: int) -> None:
        self.peer = peer
        self.border_title = f"Chat with {peer}"
        self.lines.clear()
        self.remove_children()
        self.complete = len(page) < page_size
        self.oldest = page[0].n if page else None
        self.placeholder = None
        if not page:
            self.placeholder = Static(f"No messages with {peer} yet.", classes="system")
            self.mount(self.placeholder)
        for msg in page:
            self._add(msg)
        self.scroll_end(animate=False)

    def prepend(self, page: list[StoredMessage], page_size: int) -> None:
        self.complete = len(page) < page_size
        if not page:
            return
        self.oldest = page[0].n
        first = self.children[0] if self.children else None
        widgets = [self._make(m) for m in page]
        self.mount_all(widgets, before=first) if first is not None else self.mount_all(widgets)

    def _make(self, msg: StoredMessage) -> MessageLine:
        line = MessageLine(msg)
        self.lines[msg.id] = line
        return line

    def _add(self, msg: StoredMessage) -> None:
        if self.placeholder is not None:
            self.placeholder.remove()
            self.placeholder = None
        self.mount(self._make(msg))

    def add(self, msg: StoredMessage) -> None:
        if msg.id in self.lines:
            return  # read from disk with its page already
        at_end = self.is_vertical_scroll_end or self.max_scroll_y == 0
        self._add(msg)
        if at_end:
            self.scroll_end(animate=False)

    def set_state(self, msg_id: str, state: str, reason: str | None) -> bool:
        line = self.lines.get(msg_id)
        if line is None:
            return False
        line.set_state(state, reason)
        return True

    def system(self, text: str, classes: str = "system") -> None:
        self.notes.append(text)
        self.mount(Static(text, classes=classes, markup=False))
        self.scroll_end(animate=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        if new <= 0 < old and self.peer and not self.complete and self.oldest is not None:
            self.post_message(self.NeedOlder(self.peer, self.oldest))

    def action_older(self) -> None:
        if self.peer and not self.complete and self.oldest is not None:
            self.post_message(self.NeedOlder(self.peer, self.oldest))
