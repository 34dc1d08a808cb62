"""The Contacts pane: presence mark, last seen, unread count; selecting one opens the conversation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option


@dataclass
class ContactEntry:
    name: str
    online: bool = False
    last_seen: int | None = None
    unread: int = 0
    new: bool = False
    held: bool = False  # its key changed and is not accepted yet


def ago(ms: int | None, now: float | None = None) -> str:
    if ms is None:
        return "never seen"
    seconds = max(0, (now or time.time()) - ms / 1000)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"seen {int(seconds // size)}{unit} ago"
    return "seen just now"


class ContactsPane(OptionList):
    class Opened(Message):
        """The user picked a contact: open its conversation."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.entries: dict[str, ContactEntry] = {}

    def on_mount(self) -> None:
        self.border_title = "Contacts"

    def on_focus(self) -> None:
        if self.highlighted is None and self.option_count:
            self.highlighted = 0

    def entry(self, name: str) -> ContactEntry:
        key = name.lower()
        if key not in self.entries:
            self.entries[key] = ContactEntry(name)
            self._rebuild()
        return self.entries[key]

    def forget(self, name: str) -> None:
        if self.entries.pop(name.lower(), None) is not None:
            self._rebuild()

    def names(self) -> list[str]:
        return [e.name for e in self.entries.values()]

    def render_entry(self, entry: ContactEntry) -> Text:
        text = Text()
        text.append("● " if entry.online else "○ ", style="green" if entry.online else "dim")
        text.append(entry.name, style="bold" if entry.unread else "")
        if entry.unread:
            text.append(f" ({entry.unread})", style="bold yellow")
        if entry.new:
            text.append(" new", style="italic cyan")
        if entry.held:
            text.append(" key changed", style="bold red")
        if not entry.online:
            text.append(f"  {ago(entry.last_seen)}", style="dim")
        return text

    def changed(self, name: str) -> None:
        entry = self.entry(name)
        self.replace_option_prompt(entry.name.lower(), self.render_entry(entry))

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
