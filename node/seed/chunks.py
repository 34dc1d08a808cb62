"""Sync, gossip and mail frames cut by encoded size, never by count: every frame fits the frame limit.

Items arrive already encoded (a record, a presence item, a mail item, a take, each a JSON text),
so a frame is assembled by concatenation and its size is known exactly. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

KINDS = ("records", "presence", "mail", "taken")
# room kept for the frame's own fields: type, rev (an epoch and a 16-digit counter), done
ENVELOPE = 200


def frames(
    kind: str,
    items: Iterable[tuple[str, str, int]],
    rev: tuple[str, int],
    limit: int,
    last_done: bool | None,
) -> Iterator[str]:
    """`sync` or `gossip` frames holding `items` ((list name, JSON text, change number)) in order.

    Each frame carries the rev of the last change it includes; with `last_done` set (a sync),
    every frame says `done: false` but the last, which says `done: true` and carries `rev`.
    An empty sync is still one frame, so the other side learns it is done.
    """
    epoch, final = rev
    lists: dict[str, list[str]] = {k: [] for k in KINDS}
    size = ENVELOPE
    high = 0
    pending = False

    def emit(done: bool, at: int) -> str:
        body = ",".join(f'"{k}":[{",".join(v)}]' for k, v in lists.items() if v)
        head = f'{{"type":"{kind}"' + (f",{body}" if body else "")
        tail = f',"rev":{json.dumps([epoch, at])}'
        if last_done is not None:
            tail += f',"done":{"true" if done else "false"}'
        return head + tail + "}"

    for name, text, change in items:
        cost = len(text.encode()) + 1 + (len(name) + 5 if not lists[name] else 0)
        if pending and size + cost > limit:
            yield emit(False, high)
            for v in lists.values():
                v.clear()
            size, pending = ENVELOPE, False
        lists[name].append(text)
        size += cost
        high = max(high, change)
        pending = True
    if last_done is not None:
        yield emit(True, max(high, final))
    elif pending:
        yield emit(False, max(high, final))


def mail_frame(texts: list[str]) -> str:
    """One `mail` frame holding the encoded items `texts`."""
    return '{"type":"mail","items":[' + ",".join(texts) + "]}"


def mail_frames(texts: Iterable[str], limit: int) -> Iterator[str]:
    """`mail` frames holding the encoded items `texts` in order, each frame within `limit`."""
    batch: list[str] = []
    size = ENVELOPE
    for text in texts:
        cost = len(text.encode()) + 1
        if batch and size + cost > limit:
            yield mail_frame(batch)
            batch, size = [], ENVELOPE
        batch.append(text)
        size += cost
    if batch:
        yield mail_frame(batch)
