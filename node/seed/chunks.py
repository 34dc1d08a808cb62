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


class Assembler:
    """`sync` or `gossip` frames built item by item, so a sync can be streamed from the store:
    `add` returns a finished frame when the next item would not fit, `finish` the last one.

    Each frame carries the rev of the last change it includes; with `last_done` set (a sync),
    every frame says `done: false` but the last, which says `done: true` and carries `rev`.
    An empty sync is still one frame, so the other side learns it is done.
    """

    def __init__(self, kind: str, rev: tuple[str, int], limit: int, last_done: bool | None):
        self.kind = kind
        self.epoch, self.final = rev
        self.limit = limit
        self.last_done = last_done
        self.lists: dict[str, list[str]] = {k: [] for k in KINDS}
        self.size = ENVELOPE
        self.high = 0
        self.pending = False
        self.skipped = 0  # items too large for any frame (never sent: they would close the link)

    def _emit(self, done: bool, at: int) -> str:
        body = ",".join(f'"{k}":[{",".join(v)}]' for k, v in self.lists.items() if v)
        head = f'{{"type":"{self.kind}"' + (f",{body}" if body else "")
        tail = f',"rev":{json.dumps([self.epoch, at])}'
        if self.last_done is not None:
            tail += f',"done":{"true" if done else "false"}'
        for v in self.lists.values():
            v.clear()
        self.size, self.pending = ENVELOPE, False
        return head + tail + "}"

    def add(self, name: str, text: str, change: int) -> str | None:
        """Take one item ((list name, JSON text, change number)); a full frame when one is cut."""
        out = None
        if len(text.encode()) + len(name) + 6 + ENVELOPE > self.limit:
            self.skipped += 1
            return None
        cost = len(text.encode()) + 1 + (len(name) + 5 if not self.lists[name] else 0)
        if self.pending and self.size + cost > self.limit:
            out = self._emit(False, self.high)
            cost = len(text.encode()) + 1 + len(name) + 5
        self.lists[name].append(text)
        self.size += cost
        self.high = max(self.high, change)
        self.pending = True
        return out

    def finish(self) -> str | None:
        """The last frame (a sync always has one), or None for a gossip with nothing in it."""
        if self.last_done is not None:
            return self._emit(True, max(self.high, self.final))
        if self.pending:
            return self._emit(False, max(self.high, self.final))
        return None


def frames(
    kind: str,
    items: Iterable[tuple[str, str, int]],
    rev: tuple[str, int],
    limit: int,
    last_done: bool | None,
) -> Iterator[str]:
    """`sync` or `gossip` frames holding `items` ((list name, JSON text, change number)) in order
    (see Assembler)."""
    assembler = Assembler(kind, rev, limit, last_done)
    for name, text, change in items:
        out = assembler.add(name, text, change)
        if out is not None:
            yield out
    last = assembler.finish()
    if last is not None:
        yield last


def mail_frame(texts: list[str]) -> str:
    """One `mail` frame holding the encoded items `texts`."""
    return '{"type":"mail","items":[' + ",".join(texts) + "]}"


def mail_frames(texts: Iterable[str], limit: int) -> Iterator[str]:
    """`mail` frames holding the encoded items `texts` in order, each frame within `limit`."""
    batch: list[str] = []
    size = ENVELOPE
    for text in texts:
        cost = len(text.encode()) + 1
        if ENVELOPE + cost > limit:
            continue  # fits no frame: never sent (it would close the socket)
        if batch and size + cost > limit:
            yield mail_frame(batch)
            batch, size = [], ENVELOPE
        batch.append(text)
        size += cost
    if batch:
        yield mail_frame(batch)
