"""Showing text that came from the network: every character visible and inert, nothing parsed.

Textual and Rich strip only a few control characters (BEL, BS, VT, FF, CR): ESC, C1 codes, NUL
and DEL would reach the terminal and could recolour the screen, set its title or move the cursor.
So every string from a peer, a seed or the store goes through `safe_text` before it is drawn, and
is drawn as `Content`/`Text` or with `markup=False`, never parsed as markup.
"""

from __future__ import annotations

from textual.content import Content

# bidirectional overrides and isolates: they can make a name or a line read as something else
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _table(keep_newlines: bool) -> dict[int, str]:
    table = {o: chr(0x2400 + o) for o in range(0x20)}  # C0 as control pictures: ESC is ␛
    table[0x7F] = "\u2421"  # DEL as ␡
    table.update({o: f"\\x{o:02x}" for o in range(0x80, 0xA0)})  # C1, such as the 8-bit CSI
    table.update({ord(c): f"<U+{ord(c):04X}>" for c in _BIDI})
    table.update({o: "\ufffd" for o in range(0xD800, 0xE000)})  # lone surrogates
    table[0x2028] = table[0x2029] = "\u21b5"
    table[0x09] = "    "
    if keep_newlines:
        table[0x0A] = "\n"
    return table


_MULTI = _table(keep_newlines=True)
_SINGLE = _table(keep_newlines=False)


def safe_text(text: object, *, multiline: bool = False) -> str:
    """`text` with every control character shown visibly escaped; one cell per character.

    Newlines are kept only with `multiline` (a message body); a name or a title shows them as ␊.
    """
    s = text if isinstance(text, str) else str(text)
    if multiline:
        s = s.replace("\r\n", "\n")
    return s.translate(_MULTI if multiline else _SINGLE)


def safe_content(text: object, *, multiline: bool = False) -> Content:
    """`safe_text` as Content, for border titles and widgets that would otherwise parse markup."""
    return Content(safe_text(text, multiline=multiline))


def osc_safe(text: str, limit: int) -> str:
    """Text fit for a field of a terminal escape: printable only, no `;` separator, bounded."""
    printable = "".join(c if c.isprintable() else " " for c in safe_text(text))
    return printable.replace(";", ",")[:limit]
