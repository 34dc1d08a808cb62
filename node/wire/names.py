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


# Characters of the name alphabet that look alike, after case folding (r3): each maps to the one
# that stands for its class. `I` folds to `i`, so `I`, `i`, `l` and `1` are one class.
_LOOKALIKE = str.maketrans(
    {
        "i": "l",
        "1": "l",
        "0": "o",
        "5": "s",
        "2": "z",
        "8": "b",
        "_": "-",
        ".": "-",
    }
)
# sequences that read as one letter, replaced after the single characters (longest first)
_LOOKALIKE_SEQUENCES = (("rn", "m"), ("vv", "w"))


def skeleton(name: str) -> str:
    """The confusable skeleton of a name (the idea of Unicode TR39, for this name alphabet).

    Two names with one skeleton look alike on a screen: case is folded; `i`, `l`, `1` (and so
    `I`, `L`) are one letter, as are `o`/`0`, `s`/`5`, `z`/`2`, `b`/`8`; `_`, `.` and `-` are one
    mark; `rn` reads as `m` and `vv` as `w`. Pure, and total on any string (only names are given).
    """
    out = fold_name(name).translate(_LOOKALIKE)
    for seq, letter in _LOOKALIKE_SEQUENCES:
        out = out.replace(seq, letter)
    return out


def looks_alike(a: str, b: str) -> bool:
    """True when two different names look alike (same skeleton, different folded names)."""
    return fold_name(a) != fold_name(b) and skeleton(a) == skeleton(b)
