"""The seed's directory state, with no I/O: which key owns each name, its latest record, and presence.

Both user registrations and records from peer seeds go through `Directory.accept`, so a seed applies
exactly one set of rules (signature, first-key ownership with a lease, growing seq) whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import ProtocolError
from .identity import verify_record
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


class Directory:
    """Records by case-insensitive name, with the time each was last renewed here, and presence items."""

    def __init__(self, lease_ms: int) -> None:
        self.lease_ms = lease_ms
        self.records: dict[str, Record] = {}
        self.renewed: dict[str, int] = {}
        # name key -> home seed -> (online, at)
        self.presence: dict[str, dict[str, tuple[bool, int]]] = {}
        # home seeds whose items count as offline (unreachable for too long) -> when they were lost
        self.lost_seeds: dict[str, int] = {}

    # ------------------------------------------------------------------ records

    def load(self, record: Record, renewed: int) -> None:
        """Put back a record read from disk (it was verified when first accepted)."""
        key = name_key(record.name)
        self.records[key] = record
        self.renewed[key] = renewed

    def get(self, name: str) -> Record | None:
        return self.records.get(name_key(name))

    def accept(self, record: Record, now: int) -> Outcome:
        """Apply the protocol's rules to a record; raise ProtocolError with the refusal code."""
        key = name_key(record.name)
        stored = self.records.get(key)
        if stored == record:
            return Outcome.SAME
        if not verify_record(record):
            raise ProtocolError("bad_signature", "record signature does not verify for its key")
        if stored is not None:
            if stored.key != record.key:
                if self.is_online(key) or now - self.renewed[key] < self.lease_ms:
                    raise ProtocolError(
                        "name_taken", f"the name {stored.name!r} belongs to another key"
                    )
            elif record.seq <= stored.seq:
                raise ProtocolError(
                    "stale", f"seq {record.seq} is not greater than the stored {stored.seq}"
                )
        self.records[key] = record
        self.renewed[key] = now
        return Outcome.NEW

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------ presence

    def apply_presence(self, item: PresenceItem) -> bool:
        """Keep the latest item per (name, home seed); True when it changed our state."""
        per_seed = self.presence.setdefault(name_key(item.name), {})
        current = per_seed.get(item.seed)
        if current is not None and item.at <= current[1]:
            return False
        per_seed[item.seed] = (item.online, item.at)
        return True

    def replace_seed_online_set(self, seed: str, online: dict[str, int]) -> set[str]:
        """A seed's sync names its whole online set: everything else of that seed is offline now."""
        touched: set[str] = set()
        for key, per_seed in self.presence.items():
            current = per_seed.get(seed)
            if current is not None and current[0] and key not in online:
                per_seed[seed] = (False, current[1])
                touched.add(key)
        for key, at in online.items():
            per_seed = self.presence.setdefault(key, {})
            current = per_seed.get(seed)
            if current is None or current[1] <= at:
                if current != (True, at):
                    touched.add(key)
                per_seed[seed] = (True, at)
        return touched

    def names_homed_at(self, seed: str) -> set[str]:
        return {key for key, per_seed in self.presence.items() if per_seed.get(seed, (False,))[0]}

    def is_online(self, key: str) -> bool:
        return self.effective(key, 0).online

    def effective(self, key: str, now: int) -> Effective:
        """Online while any reachable home seed's latest item says so; last_seen the latest time."""
        per_seed = self.presence.get(key)
        if not per_seed:
            return Effective(False, None, None)
        best_seed: str | None = None
        best_at = -1
        last_seen: int | None = None
        for seed, (online, at) in per_seed.items():
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
