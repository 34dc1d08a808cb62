"""The Contacts pane: presence, last seen, unread count and marks; selecting one opens it.

"seen 5m ago" is redrawn every `SEEN_EVERY` seconds, so it stays true while the app runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from node.wire.names import fold_name, looks_alike

from ..safe import safe_text


@dataclass
class ContactEntry:
    name: str
    online: bool = False
    last_seen: int | None = None
    unread: int = 0
    new: bool = False  # wrote first and was not looked at yet
    held: bool = False  # its key changed and is not accepted yet
    verified: bool = False  # the user compared its key's fingerprint
    blocked: bool = False  # its messages are refused (it stays a contact until removed)
    topic: str | None = None  # a group (its name is '#' and its id): the group's topic


def ago(ms: int | None, now: float) -> str:
    if ms is None:
        return "never seen"
    seconds = max(0.0, now - ms / 1000)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"seen {int(seconds // size)}{unit} ago"
    return "seen just now"


class ContactsPane(OptionList):
    SEEN_EVERY: ClassVar[float] = 30.0

    class UnreadChanged(Message):
        """The total of unread messages over all contacts changed (the header shows it)."""

        def __init__(self, total: int) -> None:
            super().__init__()
            self.total = total

    class Opened(Message):
        """The user picked a contact: open its conversation."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.entries: dict[str, ContactEntry] = {}
        self.clock: Callable[[], float] = time.time
        self.unread_total = 0

    def on_mount(self) -> None:
        self.border_title = "Contacts"
        self.set_interval(self.SEEN_EVERY, self.refresh_seen)

    def on_focus(self) -> None:
        if self.highlighted is None and self.option_count:
            self.highlighted = 0

    def entry(self, name: str) -> ContactEntry:
        key = fold_name(name)
        if key not in self.entries:
            self.entries[key] = ContactEntry(name)
            self._rebuild()
        return self.entries[key]

    def get(self, name: str) -> ContactEntry | None:
        return self.entries.get(fold_name(name))

    def respell(self, name: str) -> None:
        """Show a contact as its owner spells the name."""
        entry = self.get(name)
        if entry is not None:
            entry.name = name
            self.changed(name)

    def forget(self, name: str) -> None:
        if self.entries.pop(fold_name(name), None) is not None:
            self._rebuild()
            self._count_unread()

    def names(self) -> list[str]:
        return [e.name for e in self.entries.values()]

    def numbered(self, number: int) -> str | None:
        """The name shown as `number` (1 is the first in the pane), or None."""
        keys = sorted(self.entries)
        return self.entries[keys[number - 1]].name if 1 <= number <= len(keys) else None

    def number_of(self, entry: ContactEntry) -> int | None:
        """The number alt+N opens `entry` with (1..10), or None past the tenth."""
        keys = sorted(self.entries)[:10]
        key = fold_name(entry.name)
        return keys.index(key) + 1 if key in keys else None

    def lookalike(self, entry: ContactEntry) -> str | None:
        """Another contact whose name looks like this one's (`Sa1ly` beside `Sally`), or None."""
        for other in self.entries.values():
            if looks_alike(other.name, entry.name):
                return other.name
        return None

    def render_entry(self, entry: ContactEntry) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        number = self.number_of(entry)  # alt+1..9, alt+0 for the tenth
        text.append(f"{number % 10} " if number is not None else "  ", style="dim")
        if entry.topic is not None:  # a group, marked '#', by its topic
            text.append("# ", style="bold magenta")
            text.append(safe_text(entry.topic), style="bold" if entry.unread else "")
            if entry.unread:
                text.append(f" ({entry.unread})", style="bold yellow")
            return text
        text.append("● " if entry.online else "○ ", style="green" if entry.online else "dim")
        text.append(safe_text(entry.name), style="bold" if entry.unread else "")
        if entry.verified:
            text.append(" ✔", style="green")
        if entry.unread:
            text.append(f" ({entry.unread})", style="bold yellow")
        if entry.blocked:
            text.append(" (blocked)", style="dim red")
        if entry.new:
            text.append(" new", style="italic cyan")
        if entry.held:
            text.append(" key changed", style="bold red")
        similar = self.lookalike(entry)
        if similar is not None:
            text.append(f" ⚠ looks like {safe_text(similar)}", style="bold magenta")
        if not entry.online:
            text.append(f"  {ago(entry.last_seen, self.clock())}", style="dim")
        return text

    def changed(self, name: str) -> None:
        entry = self.entry(name)
        self.replace_option_prompt(fold_name(entry.name), self.render_entry(entry))
        self._count_unread()

    def _count_unread(self) -> None:
        total = sum(e.unread for e in self.entries.values())
        if total != self.unread_total:
            self.unread_total = total
            self.post_message(self.UnreadChanged(total))

    def refresh_seen(self) -> None:
        """Redraw every offline contact's "seen … ago" against the clock now."""
        for entry in self.entries.values():
            if not entry.online:
                self.changed(entry.name)

    def _rebuild(self) -> None:
        highlighted = self.highlighted
        self.clear_options()
        for key in sorted(self.entries):
            self.add_option(Option(self.render_entry(self.entries[key]), id=key))
        if highlighted is not None and self.option_count:
            self.highlighted = min(highlighted, self.option_count - 1)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        entry = self.entries.get(event.option_id or "")
        if entry is not None:
            self.post_message(self.Opened(entry.name))
