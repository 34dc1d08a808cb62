"""The storage seam: what the seed's replicated-state core needs of wherever its state lives.

Three parts, each async so that a backend may live across the network: records (get, put with
an expected revision, changes since a revision), presence (latest per name and home seed,
heartbeats, watch) and mail (deposit within quotas and with dedup, pending oldest first, take,
expire). SQLite (the embedded default) and a NATS JetStream cluster (a fleet of seeds with no
state of their own) implement it; one contract suite checks both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from ...errors import ErrorCode, ProtocolError, StoreError
from ...wire.protocol import MailItem, Record, Taken

Known = Literal["held", "taken", "absent"]
T = TypeVar("T")

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
    that changed nothing) or refused with `refusal` the reason. `revision` is the seed's change
    number the held item is stored under (0: the backend keeps none of the seed's)."""

    held: bool = False
    duplicate: bool = False
    refusal: str | None = None
    revision: int = 0


HELD = Deposited(held=True)
DUPLICATE = Deposited(duplicate=True)


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a take did: `count` items held were deleted (0: it deletes nothing, and is not
    kept), or it is refused with `refusal` the reason; `revision` as for `Deposited`."""

    count: int = 0
    refusal: str | None = None
    revision: int = 0


class Underway(Generic[T]):
    """A write under way. `decided` is its outcome when the backend knew it at once (the
    embedded store decides in memory and commits later, so the seed passes a change on in the
    order it made it); None when the outcome is known only once durable (a shared store).
    `durable` resolves once it is durable, to the outcome or to what `outcome` makes of its
    result (no second future: a commit's waiters are told in the loop turn it lands); awaiting
    the write awaits that."""

    __slots__ = ("decided", "durable", "outcome")

    def __init__(
        self,
        decided: T | None,
        durable: asyncio.Future[Any],
        outcome: Callable[[Any], T] | None = None,
    ) -> None:
        self.decided = decided
        self.durable = durable
        self.outcome = outcome

    @classmethod
    def settled(cls, outcome: T) -> Underway[T]:
        """A write that changes nothing: decided and durable at once."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        fut.set_result(outcome)
        return cls(outcome, fut)

    def __await__(self) -> Generator[Any, None, T]:
        result = yield from self.durable.__await__()
        return result if self.outcome is None else self.outcome(result)

    def follow(self, decided: Callable[[T], None], durable: Callable[[T | None], None]) -> None:
        """Call `decided` with the outcome as soon as it is known (now, when it is), then
        `durable` with it once durable (None: the write failed; the store logged why). Nothing
        waits on the loop when the write is settled already."""
        if self.decided is not None:
            decided(self.decided)

        def done(fut: asyncio.Future[Any]) -> None:
            outcome: T | None = None
            if not fut.cancelled() and fut.exception() is None:
                outcome = fut.result() if self.outcome is None else self.outcome(fut.result())
            if self.decided is None and outcome is not None:
                decided(outcome)
            durable(outcome)

        if self.durable.done():
            done(self.durable)
        else:
            self.durable.add_done_callback(done)


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

    def save(self, folded: str, accepted: Stored, now: int, lease_ms: int) -> asyncio.Future[Any]:
        """Keep a record the seed's directory accepted at `now` (its `revision`: the change
        number there); resolves once durable. A store this seed alone writes keeps it as it is;
        a store shared by many writers applies the rule again with compare-and-set."""
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
    def known(self, to: str, ident: tuple[str, str, str]) -> Known | None:
        """Whether the item `ident` (folded sender, type, id) for `to` is held, taken or
        absent, when that is known without a round trip (a cheap early answer, before a
        signature is checked); None when only a round trip would tell."""
        ...

    def deposit(
        self,
        item: MailItem,
        text: str,
        now: int,
        source: str = "",
        sender_age_ms: int | None = None,
        source_cap: int | None = None,
    ) -> Underway[Deposited]:
        """Hold a checked item (signature and parties are the caller's) within the quotas: a
        sender name `sender_age_ms` old has its age's quota (None: the full one), and `source`
        may hold `source_cap` bytes of the seed's mail where the backend keeps such shares."""
        ...

    async def pending(self, recipient: str) -> list[str]:
        """The JSON of every item held for `recipient`, oldest first (StoreError when it
        cannot be read)."""
        ...

    async def changes(self, kind: str, since: int, limit: int) -> list[tuple[int, str]]:
        """(change number, JSON) of at most `limit` mail items (`kind` "mail") or takes
        ("taken") written after `since`, oldest first: what a sync streams, a page at a time.
        A store that keeps none of the seed's change numbers has none to give."""
        ...

    def take(self, taken: Taken, text: str) -> Underway[Deleted]:
        """Delete the items a (verified) take names (`text` its JSON), and remember them
        taken."""
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
    an identical resend or a record its owner's later one superseded while this one was being
    written (two renewals in flight: the later landed first, and it is what the owner wants)."""
    for attempt in range(tries):
        stored = await records.get(folded)
        if attempt and stored is not None and _superseded(stored.record, record):
            return None
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


def _superseded(held: Record, record: Record) -> bool:
    return held.key == record.key and held.seq > record.seq


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
