"""alt+digit as keys, not text: Textual reads ESC followed by a digit (what terminals send for
alt+1 when Option/Alt is a meta key) as the characters a Mac keyboard's Option+digit types
(`¡™£¢∞§¶•ªº`), which the input would insert and Enter would send.

The app jumps to a conversation with alt+1..9 and alt+0, as weechat and irssi do, so it reads
those escape sequences as the keys `alt+1`..`alt+0` with no character. A `£` or `¡` typed on a
keyboard that has them arrives as the character itself, not as ESC and a digit, and stays text.
"""

from __future__ import annotations

from typing import NamedTuple, cast

from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

# (conversation number, key) in the order of the Contacts pane: alt+0 is the tenth
ALT_DIGITS = [(n, f"alt+{n % 10}") for n in range(1, 11)]


class _Key(NamedTuple):
    """What the parser reads from a key tuple in its table: the key's name as `value`."""

    value: str


def alt_digits_as_keys() -> None:
    """Make ESC+digit the key alt+digit (idempotent; Textual's table is module-wide)."""
    table = cast(dict[str, object], ANSI_SEQUENCES_KEYS)
    for digit in "0123456789":
        table[f"\x1b{digit}"] = (_Key(f"alt+{digit}"),)
