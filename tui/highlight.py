"""What a message line picks out of its text: web addresses and mentions of the user's name.

Both are found in text already made inert by `safe_text`, and shown only as a style over that
literal text: never as markup, never as a terminal hyperlink (an escape sequence a peer could
point anywhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# up to the first space, quote, angle bracket, backslash or control picture (an escaped control
# character, see safe.py); trailing punctuation is the sentence's, not the URL's
_URL = re.compile(r"\bhttps?://[^\s<>\"'`\\\u2400-\u2426]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
MAX_URL = 2048  # a longer run is not highlighted past this many characters


def urls(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each http(s) address in `text`."""
    for match in _URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _TRAILING:
            url = text[start:end]
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break  # (a wiki address with parentheses) keeps its own
            end -= 1
        if end - start > len("https://"):
            yield start, min(end, start + MAX_URL)


def _name_pattern(me: str) -> re.Pattern[str]:
    # a name is a word of A-Z a-z 0-9 _ . -: not part of a longer one ("sally" not in "sallyann")
    return re.compile(rf"(?<![\w.-])@?{re.escape(me)}(?![\w-]|\.\w)", re.IGNORECASE)


def mentions(text: str, me: str) -> list[tuple[int, int]]:
    """(start, end) of each mention of the name `me` in `text` (case-insensitive, '@' optional)."""
    if not me:
        return []
    return [m.span() for m in _name_pattern(me).finditer(text)]
