"""The storage seam: what the seed's replicated-state core needs of wherever its state lives.

Three parts, each async so that a backend may live across the network: records (get, put with
an expected revision, changes since a revision), presence (latest per name and home seed,
heartbeats, watch) and mail (deposit within quotas and with dedup, pending oldest first, take,
expire). SQLite (the embedded default) and a NATS JetStream cluster (a fleet of seeds with no
state of their own) implement it; one contract suite checks both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import ErrorCode, ProtocolError, StoreError
from ...wire.protocol import MailItem, Record, Taken

HEARTBEAT_MS = 10_000  # how often a seed of a fleet says it is alive
SILENT_MS = 30_000  # a home seed silent this long counts offline (the contract's rule)


class Conflict(StoreError):
    """A put's expected revision is not the current one: someone else wrote first."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as the backend holds it. `revision` is the backend's number for this write (the
    token a compare-and-set names); `renewed`/`claimed` are as in the directory."""

    record: Record
    renewed: int
    claimed: int
    revision: int


@dataclass(frozen=True, slots=True)
class Seen:
    """One home seed's latest word on a name (folded): online or not, at its clock, with the
    session auth's time; `text` is the presence item's JSON as the home seed signed it off."""

    name: str
    seed_key: str
    online: bool
    at: int
    auth_at: int = 0
    text: str = ""


@dataclass(frozen=True, slots=True)
class Deposited:
    """What a deposit did: `held` (new here), `duplicate` (held or taken already: a success
    that changed nothing) or refused with `refusal` the reason."""

    held: bool = False
    duplicate: bool = False
    refusal: str | None = None


HELD = Deposited(held=True)
DUPLICATE = Deposited(duplicate=True)


class RecordStore(Protocol):
    async def get(self, folded: str) -> Stored | None: ...

    async def put(
        self, folded: str, record: Record, renewed: int, claimed: int, expected: int
    ) -> int:
        """Write the name's record if its current revision is `expected` (0: none is held);
        the new revision, or Conflict."""
        ...

    async def changes(self, since: int, limit: int) -> list[Stored]:
        """The latest record of each name written after revision `since`, oldest first."""
        ...

    def save(
        self,
        folded: str,
        record: Record,
        renewed: int,
        claimed: int,
        rev: int,
        now: int,
        lease_ms: int,
    ) -> asyncio.Future[Any]:
        """Keep a record the seed's directory accepted at `now` (`rev`: its change number
        there); resolves once durable. A store this seed alone writes keeps it as it is; a store
        shared by many writers applies the rule again with compare-and-set (`apply_record`)."""
        ...


class PresenceStore(Protocol):
    async def put(self, seen: Seen) -> bool:
        """Keep `seen` unless the same home seed said something later about the name (latest
        wins by `at`); whether it was kept."""
        ...

    async def latest(self, folded: str) -> list[Seen]:
        """Each home seed's latest word on the name."""
        ...

    async def heartbeat(self, seed_key: str, now: int, name: str = "") -> None:
        """The seed `seed_key` (called `name`) is alive at `now`."""
        ...

    def name_of(self, seed_key: str) -> str | None:
        """The name a seed heard from gave with its heartbeat."""
        ...

    async def alive(self, now: int) -> set[str]:
        """Keys of the home seeds heard from within the last SILENT_MS."""
        ...

    def watch(self, since: int = 0) -> AsyncIterator[tuple[int, Seen]]:
        """Every change after revision `since` (a replay of those held), then each new one."""
        ...


class MailStore(Protocol):
    async def deposit(
        self,
        item: MailItem,
        text: str,
        now: int,
        source: str = "",
        sender_age_ms: int | None = None,
    ) -> Deposited:
        """Hold a checked item (signature and parties are the caller's) within the quotas."""
        ...

    async def pending(self, recipient: str) -> list[str]:
        """The JSON of every item held for `recipient`, oldest first."""
        ...

    async def take(self, taken: Taken) -> int:
        """Delete the items a (verified) take names; how many were held."""
        ...

    async def expire(self, now: int) -> None:
        """Drop the items older than the mail lifetime."""
        ...

    async def held_for(self, recipient: str) -> int: ...


class SeedStorage(Protocol):
    @property
    def records(self) -> RecordStore: ...

    @property
    def presence(self) -> PresenceStore: ...

    @property
    def mail(self) -> MailStore: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------- the directory's own rule


def wins(stored: Stored | None, record: Record, now: int, lease_ms: int) -> bool:
    """Whether `record` (verified by the caller) replaces `stored`: the owning key's higher seq
    does; another key only once the owner's lease has run out. Raises ProtocolError (stale,
    name_taken) when it does not; an identical record is no change (False)."""
    if stored is None:
        return True
    held = stored.record
    if held.key == record.key:
        if record.seq == held.seq and record.sig == held.sig and record.endpoint == held.endpoint:
            return False
        if record.seq <= held.seq:
            raise ProtocolError(
                ErrorCode.STALE, f"seq {record.seq} is not greater than the stored {held.seq}"
            )
        return True
    if stored.renewed + lease_ms < now:
        return True
    raise ProtocolError(ErrorCode.NAME_TAKEN, f"the name {held.name!r} belongs to another key")


async def apply_record(
    records: RecordStore, folded: str, record: Record, now: int, lease_ms: int, tries: int = 64
) -> Stored | None:
    """Apply the rule against the shared store with compare-and-set, reading again after each
    lost race (another writer's record may make this one stale); what was written, or None for
    an identical resend."""
    for _ in range(tries):
        stored = await records.get(folded)
        if not wins(stored, record, now, lease_ms):
            return None
        renewed = min(record.seq, now)
        claimed = stored.claimed if stored is not None and stored.record.key == record.key else now
        try:
            revision = await records.put(
                folded, record, renewed, claimed, stored.revision if stored else 0
            )
        except Conflict:
            continue
        return Stored(record, renewed, claimed, revision)
    raise StoreError(f"the record of {folded!r} kept changing under {tries} writes")


def converge(history: list[Stored], lease_ms: int) -> Stored | None:
    """The record a name's history settles on by the directory's rule (owning key, then highest
    seq), replayed in the order the writes landed: a write that slipped past compare-and-set (a
    leader change) cannot make a stale or foreign record the answer. A write by another key
    counts only if the owner's lease had run out when it was made (its `claimed` time)."""
    best: Stored | None = None
    for entry in history:
        try:
            if wins(best, entry.record, entry.claimed, lease_ms):
                best = entry
        except ProtocolError:
            continue
    return best
