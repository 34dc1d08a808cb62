"""The input line: text and slash commands, with Tab completing names and commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.binding import Binding
from textual.widgets import Input

from ..commands import COMMANDS


def complete(value: str, cursor: int, names: list[str]) -> tuple[str, int] | None:
    """Complete the word before the cursor to the longest prefix shared by the candidates."""
    start = value.rfind(" ", 0, cursor) + 1
    word = value[start:cursor]
    if not word:
        return None
    if start == 0 and word.startswith("/"):
        pool = [f"/{c}" for c in COMMANDS]
    else:
        prefix = "@" if word.startswith("@") else ""
        pool = [prefix + n for n in names]
    matches = [c for c in pool if c.lower().startswith(word.lower())]
    if not matches:
        return None
    common = matches[0]
    for m in matches[1:]:
        while not m.lower().startswith(common.lower()):
            common = common[:-1]
    if len(matches) == 1:
        common += " "
    if len(common) <= len(word) and len(matches) > 1:
        return None
    new = value[:start] + common + value[cursor:]
    return new, start + len(common)


class ChatInput(Input):
    BINDINGS = [Binding("tab", "complete", "Complete", show=False, priority=True)]

    def __init__(self, names: Callable[[], list[str]], **kw: Any) -> None:
        super().__init__(placeholder="message, or /help", **kw)
        self.names = names

    def action_complete(self) -> None:
        done = complete(self.value, self.cursor_position, self.names())
        if done is not None:
            self.value, self.cursor_position = done
