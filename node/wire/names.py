"""The name rule: which strings are user names, and when two of them are the same name."""

from __future__ import annotations

import re

from ..errors import InvalidInput

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
NAME_RULE = "1-32 of A-Z a-z 0-9 _ . - starting with a letter or digit"


def is_valid_name(name: str) -> bool:
    """True when `name` is a protocol-valid user name."""
    return NAME_RE.fullmatch(name) is not None


def fold_name(name: str) -> str:
    """The case-insensitive identity of a name ('Sally' and 'sally' are one name).

    Names are ASCII, so lower() is exact. Code calls the result `folded`, never `key`: a key is
    always a public key.
    """
    return name.lower()


def require_name(name: str | None) -> str:
    """The name itself when it is valid; InvalidInput naming the rule otherwise (local input)."""
    if not name:
        raise InvalidInput(f"a name is needed: {NAME_RULE}")
    if not is_valid_name(name):
        raise InvalidInput(f"invalid name {name!r}: {NAME_RULE}")
    return name
