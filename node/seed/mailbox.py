"""Mail: frames the seeds hold for offline users, on disk, within quotas, deleted only by a signed take.

The items themselves live in SQLite (the seed's memory does not grow with the mail it holds);
memory holds only counters per recipient, sender, pair and source for the quotas, and the few
items accepted but not yet committed. A sender name minutes old may hold little (throwaway names
cannot fill the store), and no one source (a user address, a linked seed) more than its share.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..wire.names import fold_name
from ..wire.protocol import MailItem, Taken, dump
from .store import SeedStore

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
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
    new_sender_items: int = 128
    new_sender_bytes: int = 64 * 1024
    sender_grown_days: float = 1.0

    @property
    def keep_ms(self) -> int:
        return int(self.days * DAY_MS)

    def sender_quota(self, age_ms: int) -> tuple[int, int]:
        """(items, bytes) a sender name `age_ms` old here may hold: the new-sender quota for its
        first hour, growing linearly to the full per-sender quota at `sender_grown_days`."""
        full = (self.per_sender_items, self.per_sender_bytes)
        grown = self.sender_grown_days * DAY_MS
        if age_ms >= grown:
            return full
        part = max(0.0, (age_ms - HOUR_MS) / max(1.0, grown - HOUR_MS))
        new = (self.new_sender_items, self.new_sender_bytes)
        return (
            min(full[0], int(new[0] + (full[0] - new[0]) * part)),
            min(full[1], int(new[1] + (full[1] - new[1]) * part)),
        )


class Quotas:
    """Items and bytes held per recipient, per sender, per pair and in all. No I/O."""

    def __init__(self, limits: MailLimits) -> None:
        self.limits = limits
        self.items: Counter[tuple[str, ...]] = Counter()
        self.bytes: Counter[tuple[str, ...]] = Counter()
        self.takes: Counter[str] = Counter()  # bytes of the takes kept per recipient
        self.total = 0

    @staticmethod
    def _keys(to: str, sender: str, source: str = "") -> tuple[tuple[str, ...], ...]:
        keys = (("to", to), ("from", sender), ("pair", sender, to))
        return (*keys, ("src", source)) if source else keys

    def refusal(
        self,
        to: str,
        sender: str,
        size: int,
        sender_quota: tuple[int, int] | None = None,
        source: str = "",
        source_cap: int | None = None,
    ) -> str | None:
        """Why an item of `size` bytes from `sender` to `to` would break a limit, or None.
        `sender_quota` is what the sender may hold by its name's age (default: the full quota);
        `source_cap` the share of the seed's mail that `source` may hold."""
        lim = self.limits
        rcpt, snd, pair = self._keys(to, sender)
        if (
            self.items[rcpt] + 1 > lim.per_recipient_items
            or self.bytes[rcpt] + self.takes[to] + size > lim.per_recipient_bytes
        ):
            return f"the mailbox of {to} is full"
        items, max_bytes = sender_quota or (lim.per_sender_items, lim.per_sender_bytes)
        if self.items[snd] + 1 > items or self.bytes[snd] + size > max_bytes:
            if (items, max_bytes) != (lim.per_sender_items, lim.per_sender_bytes):
                return f"{sender} is a new name and has all the mail held it may have yet"
            return f"{sender} has too much mail held already"
        if (
            self.items[pair] + 1 > lim.per_pair_items
            or self.bytes[pair] + size > lim.per_pair_bytes
        ):
            return f"{sender} has too much mail held for {to} already"
        if source_cap is not None and self.bytes[("src", source)] + size > source_cap:
            return "the mail this seed holds from your address or link is at its share"
        if self.total + size > lim.seed_bytes:
            return "this seed holds all the mail it can"
        return None

    def add(self, to: str, sender: str, size: int, count: int = 1, source: str = "") -> None:
        for key in self._keys(to, sender, source):
            self.items[key] += count
            self.bytes[key] += size
        self.total += size

    def remove(self, to: str, sender: str, size: int, source: str = "") -> None:
        for key in self._keys(to, sender, source):
            self.items[key] -= 1
            self.bytes[key] -= size
            if self.items[key] <= 0:
                del self.items[key]
                self.bytes.pop(key, None)
        self.total -= size

    def add_take(self, to: str, size: int) -> None:
        """A kept take counts against its recipient's bytes (and the seed's) until it expires."""
        self.takes[to] += size
        self.total += size

    def remove_take(self, to: str, size: int) -> None:
        self.takes[to] -= size
        if self.takes[to] <= 0:
            del self.takes[to]
        self.total -= size


def ident_of(item: MailItem) -> Ident:
    return fold_name(item.from_), item.frame.type, item.frame.id


class Mailbox:
    """The mail a seed holds: checks, quotas, the disk, and what a sync or a recipient is sent."""

    def __init__(self, store: SeedStore, limits: MailLimits) -> None:
        self.store = store
        self.limits = limits
        self.quotas = Quotas(limits)
        # accepted, not yet committed: (folded recipient, ident) -> (encoded size, source)
        self.unsaved: dict[tuple[str, Ident], tuple[int, str]] = {}
        self.untaken: set[tuple[str, Ident]] = set()  # (recipient, ident) taken, not yet committed

    def load(self) -> None:
        """Count what the disk holds (at start)."""
        rows = self.store.read(
            "SELECT recipient, sender, source, COUNT(*), SUM(size) FROM mail "
            "GROUP BY recipient, sender, source"
        )
        for to, sender, source, count, size in rows:
            self.quotas.add(to, sender, size, count, source)
        for to, size in self.store.read(
            "SELECT recipient, SUM(LENGTH(taken)) FROM takes GROUP BY recipient"
        ):
            self.quotas.add_take(to, size)

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

    def refusal(
        self,
        item: MailItem,
        size: int,
        now: int,
        sender_age_ms: int | None = None,
        source: str = "",
        source_cap: int | None = None,
    ) -> str | None:
        """Why the item cannot be held here (expired or over a quota), or None. A sender name
        `sender_age_ms` old has the quota of its age; `source` may hold `source_cap` bytes."""
        if item.at < now - self.limits.keep_ms:
            return "the item is older than the mail lifetime"
        quota = None if sender_age_ms is None else self.limits.sender_quota(sender_age_ms)
        return self.quotas.refusal(
            fold_name(item.to), fold_name(item.from_), size, quota, source, source_cap
        )

    def add(self, item: MailItem, text: str, rev: int, source: str = "") -> asyncio.Future[Any]:
        """Hold an item checked by the caller (`text` its JSON, `source` the address group or
        link it came from); resolves once it is on disk."""
        ident = ident_of(item)
        to, sender = fold_name(item.to), ident[0]
        self.quotas.add(to, sender, len(text), source=source)
        self.unsaved[(to, ident)] = (len(text), source)
        fut = self.store.submit(
            "mail", (sender, ident[1], ident[2], to, item.at, len(text), rev, text, source)
        )

        def saved(f: asyncio.Future[Any]) -> None:
            self.unsaved.pop((to, ident), None)
            if f.cancelled() or f.exception() is not None or not f.result():
                if (to, ident) not in self.untaken:  # a take counted it off already
                    # not stored (or held already)
                    self.quotas.remove(to, sender, len(text), source)

        fut.add_done_callback(saved)
        return fut

    def held_of(self, taken: Taken) -> dict[Ident, tuple[int, str]]:
        """What a take would delete here: (size, source) of each item it names that is held for
        its recipient, on disk or accepted and on its way there (a take can come first by
        gossip), and not taken already."""
        to = fold_name(taken.to)
        held: dict[Ident, tuple[int, str]] = {}
        for sender, mtype, mid in taken.ids:
            ident: Ident = (fold_name(sender), mtype, mid)
            if (to, ident) in self.untaken or ident in held:
                continue
            found = self.unsaved.get((to, ident))
            if found is None:
                rows = self.store.read(
                    "SELECT size, source FROM mail "
                    "WHERE recipient = ? AND sender = ? AND type = ? AND id = ?",
                    (to, *ident),
                )
                found = (rows[0][0], rows[0][1]) if rows else None
            if found is not None:
                held[ident] = found
        return held

    def take_refusal(
        self, taken: Taken, text: str, held: dict[Ident, tuple[int, str]]
    ) -> str | None:
        """Why a take may not be kept: it deletes nothing here, or keeping it (it counts against
        its recipient's bytes until it expires) would leave the recipient over its quota."""
        if not held:
            return "the take deletes nothing held here"
        to = fold_name(taken.to)
        freed = sum(size for size, _ in held.values())
        after = self.quotas.bytes[("to", to)] + self.quotas.takes[to] - freed + len(text)
        if after > self.limits.per_recipient_bytes:
            return f"the takes kept for {to} fill its quota; take more items at once"
        return None

    def take(
        self,
        taken: Taken,
        rev: int,
        held: dict[Ident, tuple[int, str]] | None = None,
        text: str | None = None,
    ) -> asyncio.Future[Any] | None:
        """Delete the items a recipient took and remember their ids; resolves once on disk.
        Only the ids held here are remembered; a take that deletes nothing is not kept (None)."""
        to = fold_name(taken.to)
        if held is None:
            held = self.held_of(taken)
        if not held:
            return None
        for ident, (size, source) in held.items():
            self.quotas.remove(to, ident[0], size, source)
            self.untaken.add((to, ident))
        text = dump(taken) if text is None else text  # the take's JSON
        self.quotas.add_take(to, len(text))
        until = taken.at + self.limits.keep_ms + MINUTE_MS
        idents = list(held)
        fut = self.store.submit("take", rev, to, until, text, idents)
        self.store.queue("taken_trim", to, self.limits.taken_per_recipient)

        def saved(f: asyncio.Future[Any]) -> None:
            self.untaken.difference_update((to, ident) for ident in idents)
            if f.cancelled() or f.exception() is not None:  # not taken: the items count again
                for ident, (size, source) in held.items():
                    self.quotas.add(to, ident[0], size, source=source)
                self.quotas.remove_take(to, len(text))

        fut.add_done_callback(saved)
        return fut

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
        for to, sender, size, source in self.store.read(
            "SELECT recipient, sender, size, source FROM mail WHERE at < ?", (before,)
        ):
            self.quotas.remove(to, sender, size, source)
        for to, size in self.store.read(
            "SELECT recipient, LENGTH(taken) FROM takes WHERE until < ?", (now,)
        ):
            self.quotas.remove_take(to, size)
        self.store.queue("expire", before, now)

    def held_for(self, name: str) -> int:
        """How many items are held for `name`."""
        return self.quotas.items.get(("to", fold_name(name)), 0)

    def held_count(self) -> int:
        return sum(n for key, n in self.quotas.items.items() if key[0] == "to")
