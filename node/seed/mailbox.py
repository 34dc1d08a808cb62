"""Mail: frames the seeds hold for offline users, on disk, within quotas, deleted only by a signed take.

The items themselves live in SQLite (the seed's memory does not grow with the mail it holds);
memory holds only counters per recipient, sender and pair for the quotas, and the few items
accepted but not yet committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..wire.names import fold_name
from ..wire.protocol import MailItem, Taken, dump
from .store import SeedStore

DAY_MS = 86_400_000
MINUTE_MS = 60_000

Ident = tuple[str, str, str]  # (folded sender, frame type, frame id)


@dataclass(frozen=True)
class MailLimits:
    per_recipient_items: int = 1000
    per_recipient_bytes: int = 8 * 1024 * 1024
    per_sender_items: int = 1000
    per_sender_bytes: int = 8 * 1024 * 1024
    per_pair_items: int = 128
    per_pair_bytes: int = 1024 * 1024
    seed_bytes: int = 1024 * 1024 * 1024
    days: float = 21.0
    taken_per_recipient: int = 2000

    @property
    def keep_ms(self) -> int:
        return int(self.days * DAY_MS)


class Quotas:
    """Items and bytes held per recipient, per sender, per pair and in all. No I/O."""

    def __init__(self, limits: MailLimits) -> None:
        self.limits = limits
        self.items: Counter[tuple[str, ...]] = Counter()
        self.bytes: Counter[tuple[str, ...]] = Counter()
        self.total = 0

    @staticmethod
    def _keys(to: str, sender: str) -> tuple[tuple[str, ...], ...]:
        return ("to", to), ("from", sender), ("pair", sender, to)

    def refusal(self, to: str, sender: str, size: int) -> str | None:
        """Why an item of `size` bytes from `sender` to `to` would break a limit, or None."""
        lim = self.limits
        rcpt, snd, pair = self._keys(to, sender)
        if (
            self.items[rcpt] + 1 > lim.per_recipient_items
            or self.bytes[rcpt] + size > lim.per_recipient_bytes
        ):
            return f"the mailbox of {to} is full"
        if (
            self.items[snd] + 1 > lim.per_sender_items
            or self.bytes[snd] + size > lim.per_sender_bytes
        ):
            return f"{sender} has too much mail held already"
        if (
            self.items[pair] + 1 > lim.per_pair_items
            or self.bytes[pair] + size > lim.per_pair_bytes
        ):
            return f"{sender} has too much mail held for {to} already"
        if self.total + size > lim.seed_bytes:
            return "this seed holds all the mail it can"
        return None

    def add(self, to: str, sender: str, size: int, count: int = 1) -> None:
        for key in self._keys(to, sender):
            self.items[key] += count
            self.bytes[key] += size
        self.total += size

    def remove(self, to: str, sender: str, size: int) -> None:
        for key in self._keys(to, sender):
            self.items[key] -= 1
            self.bytes[key] -= size
            if self.items[key] <= 0:
                del self.items[key]
                self.bytes.pop(key, None)
        self.total -= size


def ident_of(item: MailItem) -> Ident:
    return fold_name(item.from_), item.frame.type, item.frame.id


class Mailbox:
    """The mail a seed holds: checks, quotas, the disk, and what a sync or a recipient is sent."""

    def __init__(self, store: SeedStore, limits: MailLimits) -> None:
        self.store = store
        self.limits = limits
        self.quotas = Quotas(limits)
        # accepted, not yet committed: (folded recipient, ident) -> encoded size
        self.unsaved: dict[tuple[str, Ident], int] = {}
        self.untaken: set[tuple[str, Ident]] = set()  # (recipient, ident) taken, not yet committed

    def load(self) -> None:
        """Count what the disk holds (at start)."""
        rows = self.store.read(
            "SELECT recipient, sender, COUNT(*), SUM(size) FROM mail GROUP BY recipient, sender"
        )
        for to, sender, count, size in rows:
            self.quotas.add(to, sender, size, count)

    def holds(self, to: str, ident: Ident) -> bool:
        """Whether the item `ident` for `to` is held. Items are told apart by recipient as well:
        an ack's id is chosen by the other party, so (from, type, id) alone would let a third
        party's ack with a borrowed id stand in for the real one."""
        folded = fold_name(to)
        if (folded, ident) in self.unsaved:
            return True
        return bool(
            self.store.read(
                "SELECT 1 FROM mail WHERE recipient = ? AND sender = ? AND type = ? AND id = ?",
                (folded, *ident),
            )
        )

    def was_taken(self, to: str, ident: Ident) -> bool:
        """Whether `to` took this item (only the recipient's own take counts)."""
        folded = fold_name(to)
        if (folded, ident) in self.untaken:
            return True
        return bool(
            self.store.read(
                "SELECT 1 FROM taken_ids WHERE recipient = ? AND sender = ? AND type = ? AND id = ?",
                (folded, *ident),
            )
        )

    def refusal(self, item: MailItem, size: int, now: int) -> str | None:
        """Why the item cannot be held here (expired or over a quota), or None."""
        if item.at < now - self.limits.keep_ms:
            return "the item is older than the mail lifetime"
        return self.quotas.refusal(fold_name(item.to), fold_name(item.from_), size)

    def add(self, item: MailItem, text: str, rev: int) -> asyncio.Future[Any]:
        """Hold an item checked by the caller (`text` its JSON); resolves once it is on disk."""
        ident = ident_of(item)
        to, sender = fold_name(item.to), ident[0]
        self.quotas.add(to, sender, len(text))
        self.unsaved[(to, ident)] = len(text)
        fut = self.store.submit(
            "mail", (sender, ident[1], ident[2], to, item.at, len(text), rev, text)
        )

        def saved(f: asyncio.Future[Any]) -> None:
            self.unsaved.pop((to, ident), None)
            if f.cancelled() or f.exception() is not None or not f.result():
                if (to, ident) not in self.untaken:  # a take counted it off already
                    self.quotas.remove(to, sender, len(text))  # not stored (or held already)

        fut.add_done_callback(saved)
        return fut

    def take(self, taken: Taken, rev: int) -> asyncio.Future[Any]:
        """Delete the items a recipient took and remember their ids; resolves once on disk."""
        to = fold_name(taken.to)
        idents: list[Ident] = [(fold_name(s), t, i) for s, t, i in taken.ids]
        sizes = self._sizes(to, idents)
        counted_off: list[tuple[Ident, int]] = []
        for ident in idents:
            # on disk, or accepted and still on its way there (a take can come first by gossip)
            size = sizes.get(ident, self.unsaved.get((to, ident)))
            if size is not None and (to, ident) not in self.untaken:
                self.quotas.remove(to, ident[0], size)
                counted_off.append((ident, size))
            self.untaken.add((to, ident))
        until = taken.at + self.limits.keep_ms + MINUTE_MS
        fut = self.store.submit("take", rev, to, until, dump(taken), idents)
        self.store.queue("taken_trim", to, self.limits.taken_per_recipient)

        def saved(f: asyncio.Future[Any]) -> None:
            self.untaken.difference_update((to, ident) for ident in idents)
            if f.cancelled() or f.exception() is not None:  # not taken: the items count again
                for ident, size in counted_off:
                    self.quotas.add(to, ident[0], size)

        fut.add_done_callback(saved)
        return fut

    def _sizes(self, to: str, idents: Sequence[Ident]) -> dict[Ident, int]:
        """The sizes of the items held for `to` among `idents` (what a take of them frees)."""
        sizes = {}
        for ident in idents:
            rows = self.store.read(
                "SELECT size FROM mail WHERE recipient = ? AND sender = ? AND type = ? AND id = ?",
                (to, *ident),
            )
            if rows:
                sizes[ident] = rows[0][0]
        return sizes

    async def items_for(self, name: str) -> list[str]:
        """The JSON of every item held for `name`, oldest first (read off the event loop)."""
        rows = await asyncio.to_thread(
            self._read_fresh,
            "SELECT item FROM mail WHERE recipient = ? ORDER BY at, rev",
            (fold_name(name),),
        )
        return [text for (text,) in rows]

    async def changed_page(self, kind: str, rev: int, limit: int) -> list[tuple[int, str]]:
        """(rev, JSON) of at most `limit` mail items ("mail") or takes ("taken") changed after
        `rev`, oldest first (a sync streams the store a page at a time, never all of it)."""
        sql = {
            "mail": "SELECT rev, item FROM mail WHERE rev > ? ORDER BY rev LIMIT ?",
            "taken": "SELECT rev, taken FROM takes WHERE rev > ? ORDER BY rev LIMIT ?",
        }[kind]
        return await asyncio.to_thread(self._read_fresh, sql, (rev, limit))

    def _read_fresh(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """A read on its own short-lived connection, so a worker thread never shares one."""
        from ..storage.sqlite import open_db

        db = open_db(self.store.path)
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the mail in {self.store.path}: {exc}") from None
        finally:
            db.close()

    def expire(self, now: int) -> None:
        """Drop items past their lifetime and takes past theirs (the quotas follow)."""
        before = now - self.limits.keep_ms
        for to, sender, size in self.store.read(
            "SELECT recipient, sender, size FROM mail WHERE at < ?", (before,)
        ):
            self.quotas.remove(to, sender, size)
        self.store.queue("expire", before, now)

    def held_for(self, name: str) -> int:
        """How many items are held for `name`."""
        return self.quotas.items.get(("to", fold_name(name)), 0)

    def held_count(self) -> int:
        return sum(n for key, n in self.quotas.items.items() if key[0] == "to")
