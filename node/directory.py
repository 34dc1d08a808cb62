"""The seed's directory state, with no I/O: which key owns each name, its latest record, and presence.

Both user registrations and records from peer seeds go through `Directory.accept`, so a seed applies
exactly one set of rules (signature, first-key ownership with a lease, growing seq) whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import ProtocolError
from .identity import b64, unb64, verify_record
from .protocol import PresenceItem, Record, name_key


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
        return Record.model_construct(name=self.name, key=b64(self.key), endpoint=self.endpoint, seq=self.seq,
                                      sig=b64(self.sig))

    def same_as(self, r: Record) -> bool:
        return (self.seq == r.seq and self.name == r.name and self.endpoint == r.endpoint
                and b64(self.key) == r.key and b64(self.sig) == r.sig)


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

    # ------------------------------------------------------------------ records

    def load(self, record: Record, renewed: int) -> None:
        """Put back a record read from disk (it was verified when first accepted)."""
        self.entries[name_key(record.name)] = Entry(record, renewed)

    def get(self, name: str) -> Record | None:
        entry = self.entries.get(name_key(name))
        return entry.record() if entry is not None else None

    def display_name(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return entry.name if entry is not None else None

    def records(self) -> list[Record]:
        return [entry.record() for entry in self.entries.values()]

    def accept(self, record: Record, now: int) -> Outcome:
        """Apply the protocol's rules to a record; raise ProtocolError with the refusal code."""
        key = name_key(record.name)
        stored = self.entries.get(key)
        if stored is not None and stored.same_as(record):
            return Outcome.SAME
        if not verify_record(record):
            raise ProtocolError("bad_signature", "record signature does not verify for its key")
        if stored is not None:
            if b64(stored.key) != record.key:
                if self.is_online(key) or now - stored.renewed < self.lease_ms:
                    raise ProtocolError(
                        "name_taken", f"the name {stored.name!r} belongs to another key"
                    )
            elif record.seq <= stored.seq:
                raise ProtocolError(
                    "stale", f"seq {record.seq} is not greater than the stored {stored.seq}"
                )
        self.entries[key] = Entry(record, now)
        return Outcome.NEW

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ presence

    def item(self, key: str, seed: str) -> tuple[bool, int] | None:
        for home, online, at in self.presence.get(key, ()):
            if home == seed:
                return online, at
        return None

    def _put(self, key: str, seed: str, online: bool, at: int) -> None:
        others = tuple(i for i in self.presence.get(key, ()) if i[0] != seed)
        self.presence[key] = (*others, (seed, online, at))

    def apply_presence(self, item: PresenceItem) -> bool:
        """Keep the latest item per (name, home seed); True when it changed our state."""
        key = name_key(item.name)
        current = self.item(key, item.seed)
        if current is not None and item.at <= current[1]:
            return False
        self._put(key, item.seed, item.online, item.at)
        return True

    def replace_seed_online_set(self, seed: str, online: dict[str, int]) -> set[str]:
        """A seed's sync names its whole online set: everything else of that seed is offline now."""
        touched: set[str] = set()
        for key in list(self.presence):
            current = self.item(key, seed)
            if current is not None and current[0] and key not in online:
                self._put(key, seed, False, current[1])
                touched.add(key)
        for key, at in online.items():
            current = self.item(key, seed)
            if current is None or current[1] <= at:
                if current != (True, at):
                    touched.add(key)
                self._put(key, seed, True, at)
        return touched

    def names_homed_at(self, seed: str) -> set[str]:
        return {key for key, items in self.presence.items() if any(h == seed and on for h, on, _ in items)}

    def is_online(self, key: str) -> bool:
        return self.effective(key, 0).online

    def effective(self, key: str, now: int) -> Effective:
        """Online while any reachable home seed's latest item says so; last_seen the latest time."""
        items = self.presence.get(key)
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
