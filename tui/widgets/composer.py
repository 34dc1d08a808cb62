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
from ..drafts import bounded

NEWLINE_KEYS = {"ctrl+j", "shift+enter", "shift+\r", "alt+enter", "ctrl+enter"}
COUNT_FROM = MAX_TEXT - 500  # show the length once a message gets near the limit


def complete(
    value: str, cursor: int, names: list[str], commands: bool = True
) -> tuple[str, int] | list[str] | None:
    """Complete the word before the cursor to the longest prefix shared by the candidates
    (`names`: what fits there); the candidates when nothing can be added, None when none fits.

    Commands complete only at the very start of the text (`commands`).
    """
    start = value.rfind(" ", 0, cursor) + 1
    word = value[start:cursor]
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
        return matches
    new = value[:start] + common + value[cursor:]
    return new, start + len(common)


class Composer(TextArea):
    BINDINGS = [
        Binding("tab", "complete", "Complete", show=False),
        Binding("ctrl+u", "delete_before", "Delete before the cursor", show=False),
    ]

    class Submitted(Message):
        """The user sent `text` (already taken out of the composer)."""

        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

    class Choices(Message):
        """Tab found several completions and none could be added: `choices` lists them."""

        def __init__(self, choices: list[str]) -> None:
            super().__init__()
            self.choices = choices

    class Refused(Message):
        """Enter was pressed on a text that cannot go: it stays in the composer; `reason` says why."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(
        self,
        names: Callable[[str], list[str]],
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
        self.names = names  # what completes after this text (the text before the word)
        self.check = check
        self.sent: list[str] = []  # what was sent in this conversation, for Up and Down
        self.recalled: int | None = None

    def switch(self, draft: str, sent: list[str]) -> None:
        """Another conversation: its draft and its lines sent, in place of this one's."""
        self.sent = sent
        self.recalled = None
        self.load_text(draft)
        self.move_cursor(self.document.end)

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
        elif event.key.startswith("alt+") and event.is_printable:
            event.prevent_default()  # an unbound alt+letter is a key, not text to send
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
        self.sent[:] = bounded(self.sent)
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

    def action_delete_before(self) -> None:
        """ctrl+u: everything before the cursor goes, however many lines it wraps to."""
        self.delete((0, 0), self.cursor_location)

    def action_complete(self) -> None:
        """Complete the word before the cursor, or the argument a command expects after a
        space; with nothing to complete, Tab moves to the next pane."""
        row, col = self.cursor_location
        line = self.document.get_line(row)
        start = line.rfind(" ", 0, col) + 1
        pool = self.names(line[:start] if row == 0 else "")
        command = row == 0 and line.startswith("/")
        if not line[start:col] and not (command and pool):  # plain text: names need a letter
            self.screen.focus_next()
            return
        done = complete(line, col, pool, commands=row == 0)
        if isinstance(done, tuple):
            new_line, new_col = done
            self.replace(new_line, (row, 0), (row, len(line)))
            self.move_cursor((row, new_col))
        elif done:
            self.post_message(self.Choices(done))
