"""Lists cut to fit the frame limit of their reader: items are taken in order while they fit.

Every answer or push that carries a list is built from already encoded items, so its size is
known before it is sent; what does not fit is left out (the list is ordered best first). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .protocol import MAX_FRAME

# room kept for a frame's own fields around its list: type, an id (64 characters, up to 6 bytes
# each once escaped), a seed's name, key, nonces and auth in a hello or welcome
ENVELOPE = 4096
MAX_SEEDS_LISTED = 64  # entries of a `seed_list`, and URLs a hello or welcome passes on


def fitting(texts: Iterable[str], room: int = MAX_FRAME - ENVELOPE, most: int | None = None) -> int:
    """How many of the leading encoded items fit, comma-separated, in `room` bytes (at most `most`)."""
    size = 0
    count = 0
    for text in texts:
        if most is not None and count >= most:
            break
        size += len(text.encode()) + 1
        if size > room:
            break
        count += 1
    return count


def batches(texts: list[str], room: int = MAX_FRAME - ENVELOPE, most: int = 500) -> Iterator[range]:
    """Index ranges of `texts`, in order, each fitting `room` bytes and `most` items; an item too
    large to fit alone is skipped."""
    start, size = 0, 0
    for i, text in enumerate(texts):
        cost = len(text.encode()) + 1
        if cost > room:  # never fits: leave it out
            if start < i:
                yield range(start, i)
            start, size = i + 1, 0
            continue
        if size + cost > room or i - start >= most:
            yield range(start, i)
            start, size = i, 0
        size += cost
    if start < len(texts):
        yield range(start, len(texts))
