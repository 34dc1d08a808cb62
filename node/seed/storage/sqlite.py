"""The storage seam over the seed's own SQLite database (the embedded default).

It wraps today's store (group commit: a write's future resolves once it is on disk) and the
mailbox (quotas counted in memory, items on disk), so a seed that uses it behaves exactly as
before. Presence was never on disk (a restarted seed hears it again from its peers and its
users): it is kept in memory here, with a change number for watch replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ...errors import InternalError
from ...wire.names import fold_name
from ...wire.protocol import MailItem, Record, Taken
from ..mailbox import Ident, Mailbox, MailLimits, ident_of
from ..revs import Revs
from ..store import SeedStore
from .base import (
    DUPLICATE,
    SILENT_MS,
    Conflict,
    Deleted,
    Deposited,
    Known,
    Seen,
    Stored,
    Underway,
)

WATCH_QUEUE = 4096  # changes a watcher may fall behind by before it replays from its last one


class SqliteRecords:
    def __init__(self, store: SeedStore, next_rev: Callable[[], int]) -> None:
        self.store = store
        self.next_rev = next_rev

    async def get(self, folded: str) -> Stored | None:
        rows = self.store.read(
            "SELECT name, key, endpoint, seq, sig, renewed, claimed, rev FROM records "
            "WHERE nkey = ?",
            (folded,),
        )
        return _stored(rows[0]) if rows else None

    async def put(
        self, folded: str, record: Record, renewed: int, claimed: int, expected: int
    ) -> int:
        rev = self.next_rev()
        row = (folded, record.name, record.key, record.endpoint, record.seq, record.sig)
        if not await self.store.submit("record_cas", (*row, renewed, claimed, rev), expected):
            raise Conflict(f"the record of {folded!r} changed since revision {expected}")
        return rev

    async def changes(self, since: int, limit: int) -> list[Stored]:
        rows = self.store.read(
            "SELECT name, key, endpoint, seq, sig, renewed, claimed, rev FROM records "
            "WHERE rev > ? ORDER BY rev LIMIT ?",
            (since, limit),
        )
        return [_stored(row) for row in rows]

    def save(self, folded: str, accepted: Stored, now: int, lease_ms: int) -> asyncio.Future[Any]:
        """This seed's directory is the only writer: the record goes to the next group commit
        as it was accepted (no read, no compare-and-set)."""
        a = accepted
        return self.store.save_record(a.record, folded, a.renewed, a.claimed, a.revision)


def _stored(row: tuple[str, str, str, int, str, int, int, int]) -> Stored:
    name, key, endpoint, seq, sig, renewed, claimed, rev = row
    record = Record.model_construct(name=name, key=key, endpoint=endpoint, seq=seq, sig=sig)
    return Stored(record, renewed, claimed, rev)


class MemoryPresence:
    """Presence in memory: the latest word of each home seed on each name, numbered."""

    def __init__(self) -> None:
        self.n = 0
        self.items: dict[tuple[str, str], tuple[int, Seen]] = {}
        self.beats: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.watchers: set[asyncio.Queue[tuple[int, Seen] | None]] = set()

    async def put(self, seen: Seen) -> bool:
        slot = (seen.name, seen.seed_key)
        held = self.items.get(slot)
        if held is not None and held[1].at >= seen.at:
            return False
        self.n += 1
        self.items[slot] = (self.n, seen)
        for queue in self.watchers:
            try:
                queue.put_nowait((self.n, seen))
            except asyncio.QueueFull:  # it replays from its last change instead
                _overflow(queue)
        return True

    async def latest(self, folded: str) -> list[Seen]:
        return [seen for (name, _), (_, seen) in self.items.items() if name == folded]

    async def heartbeat(self, seed_key: str, now: int, name: str = "") -> None:
        self.beats[seed_key] = max(now, self.beats.get(seed_key, 0))
        self.names[seed_key] = name

    def name_of(self, seed_key: str) -> str | None:
        return self.names.get(seed_key) or None

    async def alive(self, now: int) -> set[str]:
        return {key for key, at in self.beats.items() if at >= now - SILENT_MS}

    async def watch(self, since: int = 0) -> AsyncIterator[tuple[int, Seen]]:
        queue: asyncio.Queue[tuple[int, Seen] | None] = asyncio.Queue(WATCH_QUEUE)
        self.watchers.add(queue)
        try:
            last = since
            while True:
                for n, seen in sorted(v for v in self.items.values() if v[0] > last):
                    last = n
                    yield n, seen
                while True:
                    change = await queue.get()
                    if change is None:
                        break  # fell behind: replay what changed since `last`
                    if change[0] > last:
                        last = change[0]
                        yield change
        finally:
            self.watchers.discard(queue)


def _overflow(queue: asyncio.Queue[tuple[int, Seen] | None]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


class SqliteMail:
    """Mail in the seed's own database: decided in memory at once (quotas, dedup, the change
    number), durable at the next group commit."""

    def __init__(self, store: SeedStore, mailbox: Mailbox, next_rev: Callable[[], int]) -> None:
        self.store = store
        self.mailbox = mailbox
        self.next_rev = next_rev
        # items accepted and not yet on disk: a copy deposited meanwhile is answered with them
        self.committing: dict[tuple[str, Ident], asyncio.Future[Any]] = {}

    def known(self, to: str, ident: Ident) -> Known | None:
        if self.mailbox.holds(to, ident):
            return "held"
        return "taken" if self.mailbox.was_taken(to, ident) else "absent"

    def deposit(
        self,
        item: MailItem,
        text: str,
        now: int,
        source: str = "",
        sender_age_ms: int | None = None,
        source_cap: int | None = None,
    ) -> Underway[Deposited]:
        key = (fold_name(item.to), ident_of(item))
        if self.known(item.to, key[1]) != "absent":
            first = self.committing.get(key)
            if first is not None:  # a success only once the first copy is durable
                return Underway(DUPLICATE, first, lambda _: DUPLICATE)
            return Underway.settled(DUPLICATE)
        refusal = self.mailbox.refusal(item, len(text), now, sender_age_ms, source, source_cap)
        if refusal is not None:
            return Underway.settled(Deposited(refusal=refusal))
        rev = self.next_rev()
        held = Deposited(held=True, revision=rev)
        # not taken at the commit: held already (then a success that changed nothing)
        fut = self.mailbox.add(item, text, rev, source)
        self.committing[key] = fut
        fut.add_done_callback(lambda _: self.committing.pop(key, None))
        return Underway(held, fut, lambda took: held if took else DUPLICATE)

    async def pending(self, recipient: str) -> list[str]:
        return await self.mailbox.items_for(recipient)

    async def changes(self, kind: str, since: int, limit: int) -> list[tuple[int, str]]:
        return await self.mailbox.changed_page(kind, since, limit)

    def take(self, taken: Taken, text: str) -> Underway[Deleted]:
        held = self.mailbox.held_of(taken)
        if not held:  # nothing here to delete: neither kept nor passed on
            return Underway.settled(Deleted())
        refusal = self.mailbox.take_refusal(taken, text, held)
        if refusal is not None:
            return Underway.settled(Deleted(refusal=refusal))
        rev = self.next_rev()
        deleted = Deleted(len(held), revision=rev)
        fut = self.mailbox.take(taken, rev, held, text)
        if fut is None:  # never: held is not empty
            raise InternalError("a take that deletes something was not kept")
        return Underway(deleted, fut, lambda _: deleted)

    async def expire(self, now: int) -> None:
        self.mailbox.expire(now)
        await self.store.submit("barrier")

    async def held_for(self, recipient: str) -> int:
        return self.mailbox.held_for(fold_name(recipient))


class SqliteStorage:
    """The seam over one seed's SQLite database. `next_rev` hands out the seed's change numbers
    (the seed's own counter when it runs one; `open` makes one for a store used alone)."""

    def __init__(self, store: SeedStore, mailbox: Mailbox, next_rev: Callable[[], int]) -> None:
        self.store = store
        self.records = SqliteRecords(store, next_rev)
        self.presence = MemoryPresence()
        self.mail = SqliteMail(store, mailbox, next_rev)

    @classmethod
    def open(cls, path: Path, limits: MailLimits) -> SqliteStorage:
        """A store of its own at `path`, started (call from the event loop)."""
        store = SeedStore(path)
        epoch, reserved = store.epoch_and_reserved()
        revs = Revs(epoch, reserved)
        store.save_reserved_now(revs.first_reservation())
        mailbox = Mailbox(store, limits)
        mailbox.load()
        store.start()

        def next_rev() -> int:
            rev = revs.next()
            ceiling = revs.reservation_due()
            if ceiling is not None:
                store.save_reserved(ceiling).add_done_callback(
                    lambda f: revs.reserved(ceiling) if not f.exception() else None
                )
            return rev

        return cls(store, mailbox, next_rev)

    async def close(self) -> None:
        await self.store.close()
