"""The seed's directory state, with no I/O: which key owns each name, its latest record, and presence.

Both user registrations and records from peer seeds go through `Directory.accept`, so a seed applies
exactly one set of rules (signature, first-key ownership with a lease, growing seq) whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..crypto.keys import b64, unb64
from ..crypto.signing import verify_record
from ..errors import ErrorCode, ProtocolError
from ..wire.names import fold_name
from ..wire.protocol import PresenceItem, Record


class Outcome(Enum):
    NEW = "new"
    SAME = "same"  # an identical resend: success, nothing changed


@dataclass(frozen=True, slots=True)
class Effective:
    """What a `found` or `presence` frame says about a name."""

    online: bool
    seed: str | None
    last_seen: int | None

    def changed_from(self, other: Effective | None) -> bool:
        if other is None:
            return True
        if (self.online, self.seed) != (other.online, other.seed):
            return True
        # while online last_seen is 'now' and always moves; only an offline time is news
        return not self.online and self.last_seen != other.last_seen


class Entry:
    """One name's latest record, stored compactly (raw key and signature bytes): a seed holds millions."""

    __slots__ = ("name", "key", "endpoint", "seq", "sig", "renewed")

    def __init__(self, record: Record, renewed: int) -> None:
        self.name = record.name
        self.key = unb64(record.key)
        self.endpoint = record.endpoint
        self.seq = record.seq
        self.sig = unb64(record.sig)
        self.renewed = renewed

    def record(self) -> Record:
        return Record.model_construct(
            name=self.name,
            key=b64(self.key),
            endpoint=self.endpoint,
            seq=self.seq,
            sig=b64(self.sig),
        )

    def same_as(self, r: Record) -> bool:
        return (
            self.seq == r.seq
            and self.name == r.name
            and self.endpoint == r.endpoint
            and b64(self.key) == r.key
            and b64(self.sig) == r.sig
        )


# presence per name: a tuple of (home seed, online, at), one item per home seed (usually one)
Items = tuple[tuple[str, bool, int], ...]


class Directory:
    """Records by case-insensitive name, with the time each was last renewed here, and presence items."""

    def __init__(self, lease_ms: int) -> None:
        self.lease_ms = lease_ms
        self.entries: dict[str, Entry] = {}
        self.presence: dict[str, Items] = {}
        # home seeds whose items count as offline (unreachable for too long) -> when they were lost
        self.lost_seeds: dict[str, int] = {}

    def seed_lost(self, seed: str, now: int) -> set[str]:
        """A home seed was unreachable for too long: its users count as offline. The names affected."""
        self.lost_seeds[seed] = now
        return self.names_homed_at(seed)

    def seed_back(self, seed: str) -> set[str]:
        """A lost home seed linked again: its items count once more. The names affected."""
        if self.lost_seeds.pop(seed, None) is None:
            return set()
        return self.names_homed_at(seed)

    # ------------------------------------------------------------------ records

    def load(self, record: Record, renewed: int) -> None:
        """Put back a record read from disk (it was verified when first accepted)."""
        self.entries[fold_name(record.name)] = Entry(record, renewed)

    def get(self, name: str) -> Record | None:
        entry = self.entries.get(fold_name(name))
        return entry.record() if entry is not None else None

    def display_name(self, folded: str) -> str | None:
        entry = self.entries.get(folded)
        return entry.name if entry is not None else None

    def records(self) -> list[Record]:
        return [entry.record() for entry in self.entries.values()]

    def accept(self, record: Record, now: int) -> Outcome:
        """Apply the protocol's rules to a record; raise ProtocolError with the refusal code."""
        folded = fold_name(record.name)
        stored = self.entries.get(folded)
        if stored is not None and stored.same_as(record):
            return Outcome.SAME
        if not verify_record(record):
            raise ProtocolError(
                ErrorCode.BAD_SIGNATURE, "record signature does not verify for its key"
            )
        if stored is not None:
            if b64(stored.key) != record.key:
                if self.is_online(folded) or now - stored.renewed < self.lease_ms:
                    raise ProtocolError(
                        ErrorCode.NAME_TAKEN, f"the name {stored.name!r} belongs to another key"
                    )
            elif record.seq <= stored.seq:
                raise ProtocolError(
                    ErrorCode.STALE, f"seq {record.seq} is not greater than the stored {stored.seq}"
                )
        self.entries[folded] = Entry(record, now)
        return Outcome.NEW

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ presence

    def item(self, folded: str, seed: str) -> tuple[bool, int] | None:
        for home, online, at in self.presence.get(folded, ()):
            if home == seed:
                return online, at
        return None

    def _put(self, folded: str, seed: str, online: bool, at: int) -> None:
        others = tuple(i for i in self.presence.get(folded, ()) if i[0] != seed)
        self.presence[folded] = (*others, (seed, online, at))

    def apply_presence(self, item: PresenceItem) -> bool:
        """Keep the latest item per (name, home seed); True when it changed our state."""
        folded = fold_name(item.name)
        current = self.item(folded, item.seed)
        if current is not None and item.at <= current[1]:
            return False
        self._put(folded, item.seed, item.online, item.at)
        return True

    def replace_seed_online_set(self, seed: str, online: dict[str, int]) -> set[str]:
        """A seed's sync names its whole online set: everything else of that seed is offline now."""
        touched: set[str] = set()
        for folded in list(self.presence):
            current = self.item(folded, seed)
            if current is not None and current[0] and folded not in online:
                self._put(folded, seed, False, current[1])
                touched.add(folded)
        for folded, at in online.items():
            current = self.item(folded, seed)
            if current is None or current[1] <= at:
                if current != (True, at):
                    touched.add(folded)
                self._put(folded, seed, True, at)
        return touched

    def names_homed_at(self, seed: str) -> set[str]:
        return {
            folded
            for folded, items in self.presence.items()
            if any(h == seed and on for h, on, _ in items)
        }

    def is_online(self, folded: str) -> bool:
        return self.effective(folded, 0).online

    def effective(self, folded: str, now: int) -> Effective:
        """Online while any reachable home seed's latest item says so; last_seen the latest time."""
        items = self.presence.get(folded)
        if not items:
            return Effective(False, None, None)
        best_seed: str | None = None
        best_at = -1
        last_seen: int | None = None
        for seed, online, at in items:
            lost_at = self.lost_seeds.get(seed)
            if online and lost_at is not None:
                online, at = False, max(at, lost_at)
            if online and at > best_at:
                best_seed, best_at = seed, at
            if last_seen is None or at > last_seen:
                last_seen = at
        if best_seed is not None:
            return Effective(True, best_seed, now)
        return Effective(False, None, last_seen)
