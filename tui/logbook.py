"""Plain-text logs of conversations, to read and grep outside the app: `/export` writes a whole
history once, `/log on` appends each message of a conversation as it is stored (as weechat keeps).

One line a message: an ISO 8601 time with its offset, the sender, the text. Every control
character is escaped (a newline as `\\n`, a backslash as `\\\\`, ESC as `\\x1b`), so a line is one
message and `cat` or `grep` on a log can never drive the terminal. Files are the user's only:
the `logs/` folder is 0700 and every file 0600. A logged line is bounded; an export is not.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from node.storage.files import secure_dir
from node.wire.names import fold_name

LOG_LINE = 8192  # characters of a logged line at most; the rest is cut and said so
PAGE = 500

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL, C1, line and paragraph separators, bidirectional controls, lone surrogates
_CONTROL = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape_one(match: re.Match[str]) -> str:
    c = match.group()
    if c in _ESCAPES:
        return _ESCAPES[c]
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def escape(text: str) -> str:
    """`text` on one line with every control character written as an escape."""
    return _CONTROL.sub(_escape_one, text)


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def log_line(ts: int, sender: str, text: str, limit: int | None = None) -> str:
    """One message as a line (without its newline); `/me` actions as `* sender does`."""
    if text.startswith("/me "):
        body = f"* {escape(sender)} {escape(text[4:])}"
    else:
        body = f"{escape(sender)}: {escape(text)}"
    line = f"{iso_time(ts)} {body}"
    if limit is not None and len(line) > limit:
        cut = len(line) - limit
        line = line[:limit] + f" [… {cut} more characters cut]"
    return line


def file_stem(conversation: str) -> str:
    """A file name for a conversation: the folded name, or `group-ID` for a group ('#ID')."""
    if conversation.startswith("#"):
        stem = "group-" + conversation[1:]
    else:
        stem = fold_name(conversation)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".") or "_"


def open_private(path: Path, append: bool) -> int:
    """A file descriptor for writing `path`, created 0600 (and made 0600 if it existed)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.fchmod(fd, 0o600)
    return fd


class Message(Protocol):
    """What a line needs of a stored message (a person's or a group's)."""

    @property
    def n(self) -> int: ...
    @property
    def ts(self) -> int: ...
    @property
    def sender(self) -> str: ...
    @property
    def text(self) -> str: ...


async def export(pages: Callable[[int], list[Message]], path: Path) -> int:
    """Write the whole history to `path`, oldest first, page by page (the app keeps drawing in
    between); the number of messages written."""
    written = 0
    fd = open_private(path, append=False)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
        after = 0
        while page := pages(after):
            out.write("".join(log_line(m.ts, m.sender, m.text) + "\n" for m in page))
            written += len(page)
            after = page[-1].n
            await asyncio.sleep(0)
    return written


class Logbook:
    """Appends the messages of the conversations the user chose to their log files."""

    def __init__(self, folder: Callable[[], Path], chosen: Callable[[], list[str]]) -> None:
        self.folder = folder
        self.chosen = chosen  # conversation keys: folded names, '#' and id for groups

    def path(self, conversation: str) -> Path:
        return self.folder() / f"{file_stem(conversation)}.log"

    def logging(self, conversation: str) -> bool:
        return key_of(conversation) in self.chosen()

    def append(self, conversation: str, ts: int, sender: str, text: str) -> None:
        """Add one message to the conversation's log, if it is kept; OSError when it cannot be."""
        if not self.logging(conversation):
            return
        secure_dir(self.folder())
        fd = open_private(self.path(conversation), append=True)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(log_line(ts, sender, text, LOG_LINE) + "\n")


def key_of(conversation: str) -> str:
    """How a conversation is named in the settings: groups as they are, people folded."""
    return conversation if conversation.startswith("#") else fold_name(conversation)
