"""The composer: where messages and commands are written, on as many lines as they need.

Enter sends; ctrl+j (the one newline key every terminal sends) adds a line, as do shift+enter and
alt+enter where the terminal tells them apart from Enter; a paste is kept whole, line breaks
and all. Text is taken and cleared in the same key press that sends it, so lines typed quickly
one after the other are sent one by one; a text the app cannot send (too long, no conversation
open) is refused before anything is cleared, so no typed word is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from node.wire.protocol import MAX_TEXT

from ..commands import completions

NEWLINE_KEYS = {"ctrl+j", "shift+enter", "shift+\r", "alt+enter", "ctrl+enter"}
COUNT_FROM = MAX_TEXT - 500  # show the length once a message gets near the limit


def complete(
    value: str, cursor: int, names: list[str], commands: bool = True
) -> tuple[str, int] | None:
    """Complete the word before the cursor to the longest prefix shared by the candidates.

    Commands complete only at the very start of the text (`commands`), names anywhere.
    """
    start = value.rfind(" ", 0, cursor) + 1
    word = value[start:cursor]
    if not word:
        return None
    if commands and start == 0 and word.startswith("/"):
        pool = [f"/{c}" for c in completions()]
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


class Composer(TextArea):
    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    class Submitted(Message):
        """The user sent `text` (already taken out of the composer)."""

        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    class Refused(Message):
        """Enter was pressed on a text that cannot go: it stays in the composer; `reason` says why."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(
        self,
        names: Callable[[], list[str]],
        check: Callable[[str], str | None],
        **kw: Any,
    ) -> None:
        super().__init__(
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder="message, or /help · Enter sends · ctrl+j new line",
            **kw,
        )
        self.names = names
        self.check = check
        self.sent: list[str] = []  # what was sent, for Up and Down
        self.recalled: int | None = None

    @property
    def value(self) -> str:
        return self.text

    async def _on_key(self, event: events.Key) -> None:
        # runs before TextArea's own handler, which prevent_default() keeps from running
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
        elif event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
        elif event.key == "up" and self.cursor_location[0] == 0 and self.recall(-1):
            event.stop()
            event.prevent_default()
        elif (
            event.key == "down"
            and self.recalled is not None
            and self.cursor_location[0] == self.document.line_count - 1
            and self.recall(+1)
        ):
            event.stop()
            event.prevent_default()

    def submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        reason = self.check(text)
        if reason is not None:
            self.post_message(self.Refused(reason))
            return
        self.sent.append(text)
        self.recalled = None
        self.clear()
        self.post_message(self.Submitted(self, text))

    def recall(self, step: int) -> bool:
        """Up and Down walk through what was sent (from an empty composer, or while walking)."""
        if not self.sent or (self.recalled is None and (step > 0 or self.text)):
            return False
        index = len(self.sent) if self.recalled is None else self.recalled
        index += step
        if index >= len(self.sent):
            self.recalled = None
            self.load_text("")
            return True
        self.recalled = max(0, index)
        self.load_text(self.sent[self.recalled])
        self.move_cursor(self.document.end)
        return True

    async def _on_paste(self, event: events.Paste) -> None:
        # terminals often send a paste's line breaks as CR; the whole paste is one edit
        event.stop()
        event.prevent_default()
        if self.read_only:
            return
        text = event.text.replace("\r\n", "\n").replace("\r", "\n")
        result = self.replace(text, *self.selection)
        self.move_cursor(result.end_location)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        length = len(self.text)
        over = length > MAX_TEXT
        self.set_class(over, "-over")
        self.border_subtitle = f"{length:,} / {MAX_TEXT:,}" if length >= COUNT_FROM else ""

    def action_complete(self) -> None:
        """Complete the word before the cursor; with no word there, Tab moves to the next pane."""
        row, col = self.cursor_location
        line = self.document.get_line(row)
        if not line[:col].rsplit(" ", 1)[-1]:
            self.screen.focus_next()
            return
        done = complete(line, col, self.names(), commands=row == 0)
        if done is not None:
            new_line, new_col = done
            self.replace(new_line, (row, 0), (row, len(line)))
            self.move_cursor((row, new_col))
