"""The seed's directory state, with no I/O: which key owns each name, its latest record, and presence.

User registrations, publishes, peer gossip and sync all go through `Directory.accept`, so a seed
applies exactly one set of rules (signature, first-key ownership with a lease, growing seq, the
rule for two keys claiming a new name at once) whatever the source. Presence is kept per
(name, home seed key), and an online item counts only with a session auth that verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..crypto.keys import b64, unb64
from ..crypto.signing import verify_record, verify_session
from ..errors import ErrorCode, ProtocolError
from ..wire.names import fold_name, skeleton
from ..wire.protocol import PresenceItem, Record

FUTURE_SLACK_MS = 60_000  # how far ahead of this seed's clock a peer's `at` may be
SAME_MOMENT_MS = 600_000  # records made this close together (by their makers' clocks) race


class Outcome(Enum):
    NEW = "new"  # a first record for the name, or a newer one of its key
    SAME = "same"  # an identical resend: success, nothing changed
    REPLACED = "replaced"  # another key won the name (lease expired, or the claim rule)


@dataclass(frozen=True, slots=True)
class Effective:
    """What a `found` or `presence` frame says about a name (`seed` is the home seed's key)."""

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
    """One name's latest record, stored compactly (raw key and signature bytes): a seed holds millions.

    `renewed` is when the record counts as renewed (the earlier of its seq and when this seed
    accepted it), `claimed` when the name got its first record here, `rev` this seed's change
    number for it.
    """

    __slots__ = ("name", "key", "endpoint", "seq", "sig", "renewed", "claimed", "rev")

    def __init__(self, record: Record, renewed: int, claimed: int, rev: int) -> None:
        self.name = record.name
        self.key = unb64(record.key)
        self.endpoint = record.endpoint
        self.seq = record.seq
        self.sig = unb64(record.sig)
        self.renewed = renewed
        self.claimed = claimed
        self.rev = rev

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


# presence per name: one (home seed key, online, at, auth at) per home seed (usually one)
Item = tuple[str, bool, int, int]


class Directory:
    """Records by folded name, and presence items by (folded name, home seed key)."""

    def __init__(
        self,
        lease_ms: int,
        claim_window_ms: int,
        max_items_per_seed: int,
        session_max_age_ms: int = 86_400_000,
    ) -> None:
        self.lease_ms = lease_ms
        self.claim_window_ms = claim_window_ms
        self.max_items_per_seed = max_items_per_seed
        self.session_max_age_ms = session_max_age_ms
        self.entries: dict[str, Entry] = {}
        # r3: the confusable skeleton of each name -> the folded name that first held it here
        self.skeletons: dict[str, str] = {}
        # r3: names first claimed here by a user before this seed's first sync with the mesh: a
        # peer's record for one of them under another key wins (the mesh held it first)
        self.provisional: set[str] = set()
        self.presence: dict[str, tuple[Item, ...]] = {}
        self.items_per_seed: dict[str, int] = {}
        # home seeds (by key) whose items count as offline (unreachable too long) -> when lost
        self.lost_seeds: dict[str, int] = {}

    # ------------------------------------------------------------------ records

    def load(self, record: Record, renewed: int, claimed: int, rev: int) -> None:
        """Put back a record read from disk (it was verified when first accepted)."""
        folded = fold_name(record.name)
        self.entries[folded] = Entry(record, renewed, claimed, rev)
        self.skeletons.setdefault(skeleton(folded), folded)

    def get(self, name: str) -> Record | None:
        entry = self.entries.get(fold_name(name))
        return entry.record() if entry is not None else None

    def key_of(self, name: str) -> str | None:
        entry = self.entries.get(fold_name(name))
        return b64(entry.key) if entry is not None else None

    def display_name(self, folded: str) -> str | None:
        entry = self.entries.get(folded)
        return entry.name if entry is not None else None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: str) -> bool:
        return fold_name(name) in self.entries

    def accept(
        self, record: Record, now: int, verified: bool = False, from_peer: bool = False
    ) -> tuple[Outcome, str | None]:
        """Apply the record rules; the outcome and, when another key lost the name, that key.

        Raises ProtocolError with the refusal code. `verified` skips the signature check for a
        record whose signature was checked already (in a batch, off the event loop); `from_peer`
        marks a record another seed accepted (the only kind the same-moment claim rule weighs).
        """
        folded = fold_name(record.name)
        stored = self.entries.get(folded)
        if stored is not None and stored.same_as(record):
            return Outcome.SAME, None
        if not verified and not verify_record(record):
            raise ProtocolError(
                ErrorCode.BAD_SIGNATURE, "record signature does not verify for its key"
            )
        renewed = min(record.seq, now)
        if stored is None:
            self._refuse_lookalike(folded, record, now)
            self.entries[folded] = Entry(record, renewed, now, 0)
            self.skeletons.setdefault(skeleton(folded), folded)
            return Outcome.NEW, None
        if b64(stored.key) == record.key:
            if record.seq <= stored.seq:
                raise ProtocolError(
                    ErrorCode.STALE, f"seq {record.seq} is not greater than the stored {stored.seq}"
                )
            self.entries[folded] = Entry(record, renewed, stored.claimed, stored.rev)
            return Outcome.NEW, None
        loser = b64(stored.key)
        if self._lease_over(folded, stored, now):
            self.entries[folded] = Entry(record, renewed, now, stored.rev)
            return Outcome.REPLACED, loser
        if from_peer and folded in self.provisional:
            # claimed here before this seed had synced: the mesh's holder had it first
            self.provisional.discard(folded)
            self.entries[folded] = Entry(record, renewed, now, stored.rev)
            return Outcome.REPLACED, loser
        if from_peer and self._wins_same_moment_claim(stored, record, now):
            self.entries[folded] = Entry(record, renewed, stored.claimed, stored.rev)
            return Outcome.REPLACED, loser
        raise ProtocolError(
            ErrorCode.NAME_TAKEN, f"the name {stored.name!r} belongs to another key"
        )

    def lookalike_of(self, name: str, key: str, now: int) -> str | None:
        """The held name that `name` (new here) looks like, when another key holds it (r3).

        A name whose lease ran out holds nothing back. Only the first name of each skeleton held
        here is weighed: one held from before r3 beside it changes nothing for the first.
        """
        folded = fold_name(name)
        holder = self.skeletons.get(skeleton(folded))
        if holder is None or holder == folded:
            return None
        entry = self.entries[holder]
        if b64(entry.key) == key or self._lease_over(holder, entry, now):
            return None
        return entry.name

    def _refuse_lookalike(self, folded: str, record: Record, now: int) -> None:
        similar = self.lookalike_of(folded, record.key, now)
        if similar is not None:
            raise ProtocolError(
                ErrorCode.NAME_TAKEN,
                f"the name {record.name!r} looks like {similar}, which belongs to another key",
            )

    def _lease_over(self, folded: str, stored: Entry, now: int) -> bool:
        """An offline name whose record was not renewed for the lease is free for another key."""
        return not self.is_online(folded) and now - stored.renewed >= self.lease_ms

    def _wins_same_moment_claim(self, stored: Entry, record: Record, now: int) -> bool:
        """Two keys claimed a new name at about the same moment at two seeds: every seed keeps the
        one whose key sorts first, so they all converge on it.

        It weighs only a record another seed accepted (a user registering here never displaces
        a name held here), only while the name is new here (first claimed less than the claim
        window ago), and only records made within ten minutes of each other (clocks differ; a
        record made long ago is no claim of this moment). After that the name is its key's.
        """
        if now - stored.claimed >= self.claim_window_ms:
            return False
        if abs(record.seq - stored.seq) >= SAME_MOMENT_MS:
            return False
        return unb64(record.key) < stored.key

    def stamp(self, name: str, rev: int) -> None:
        """Record this seed's change number for the name's current record."""
        self.entries[fold_name(name)].rev = rev

    def changed_since(self, rev: int) -> list[tuple[int, str]]:
        """(rev, folded name) of the records changed after `rev`, oldest change first."""
        return sorted((e.rev, folded) for folded, e in self.entries.items() if e.rev > rev)

    # ------------------------------------------------------------------ presence

    def item(self, folded: str, seed_key: str) -> Item | None:
        for item in self.presence.get(folded, ()):
            if item[0] == seed_key:
                return item
        return None

    def _put(self, folded: str, item: Item) -> None:
        current = self.presence.get(folded, ())
        others = tuple(i for i in current if i[0] != item[0])
        if len(others) == len(current):
            self.items_per_seed[item[0]] = self.items_per_seed.get(item[0], 0) + 1
        self.presence[folded] = (*others, item)

    def set_local(self, folded: str, seed_key: str, online: bool, at: int, auth_at: int) -> None:
        """This seed's own word on one of its users (it is the authority on them)."""
        self._put(folded, (seed_key, online, at, auth_at))

    def check_presence(
        self, item: PresenceItem, link_key: str, now: int, auth_verified_with: str | None = None
    ) -> None:
        """The rules a peer's presence item must pass; ProtocolError (counted, dropped) otherwise.

        `auth_verified_with` names the key the session auth's signature was already checked
        with (in a batch, off the event loop); it counts when that is still the record's key.
        """
        if item.seed_key != link_key:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "presence for another home seed")
        entry = self.entries.get(fold_name(item.name))
        if entry is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"presence for an unknown name {item.name!r}")
        if item.at > now + FUTURE_SLACK_MS:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "presence from the future")
        if item.auth is not None:
            auth = item.auth
            if self.session_stale(auth.at, now):
                raise ProtocolError(
                    ErrorCode.STALE, "the session auth is too old to keep anyone online"
                )
            if fold_name(auth.name) != fold_name(item.name) or auth.seed_key != link_key:
                raise ProtocolError(
                    ErrorCode.BAD_SIGNATURE, "the session auth is for another session"
                )
            key = b64(entry.key)
            if auth_verified_with != key and not verify_session(auth, key):
                raise ProtocolError(ErrorCode.BAD_SIGNATURE, "the session auth does not verify")
        folded = fold_name(item.name)
        if self.item(folded, link_key) is None and (
            self.items_per_seed.get(link_key, 0) >= self.max_items_per_seed
        ):
            raise ProtocolError(ErrorCode.QUOTA, "too many presence items from that seed")

    def apply_presence(self, item: PresenceItem) -> bool:
        """Keep the latest item per (name, home seed); True when it changed our state."""
        folded = fold_name(item.name)
        current = self.item(folded, item.seed_key)
        if current is not None and item.at <= current[2]:
            return False
        auth_at = item.auth.at if item.auth is not None else (current[3] if current else 0)
        self._put(folded, (item.seed_key, item.online, item.at, auth_at))
        return True

    def replace_seed_online_set(
        self, seed_key: str, online: dict[str, tuple[int, int]]
    ) -> set[str]:
        """A seed's sync named its whole online set: its other users are offline now."""
        touched: set[str] = set()
        for folded in list(self.presence):
            current = self.item(folded, seed_key)
            if current is not None and current[1] and folded not in online:
                self._put(folded, (seed_key, False, current[2], current[3]))
                touched.add(folded)
        for folded, (at, auth_at) in online.items():
            current = self.item(folded, seed_key)
            if current is None or current[2] <= at:
                if current is None or not current[1] or current[2] != at:
                    touched.add(folded)
                self._put(folded, (seed_key, True, at, auth_at))
        return touched

    def session_stale(self, auth_at: int, now: int) -> bool:
        """A session auth older than the bound keeps nobody online (r3: 'while it is fresh')."""
        return auth_at < now - self.session_max_age_ms

    def expire_sessions(self, now: int, own_key: str) -> set[str]:
        """Peers' online items whose session auth grew stale count as offline from now on (this
        seed's own users are online while their sockets are). The names affected."""
        touched: set[str] = set()
        for folded, items in self.presence.items():
            for seed_key, online, at, auth_at in items:
                if online and seed_key != own_key and self.session_stale(auth_at, now):
                    self._put(folded, (seed_key, False, at, auth_at))
                    touched.add(folded)
        return touched

    def seed_lost(self, seed_key: str, now: int) -> set[str]:
        """A home seed was unreachable for too long: its users count as offline. The names affected."""
        self.lost_seeds[seed_key] = now
        return self.names_homed_at(seed_key)

    def seed_back(self, seed_key: str) -> set[str]:
        """A lost home seed linked again: its items count once more. The names affected."""
        if self.lost_seeds.pop(seed_key, None) is None:
            return set()
        return self.names_homed_at(seed_key)

    def names_homed_at(self, seed_key: str) -> set[str]:
        return {
            folded
            for folded, items in self.presence.items()
            if any(i[0] == seed_key and i[1] for i in items)
        }

    def homes(self, folded: str) -> list[str]:
        """The keys of the reachable home seeds where the name is online, latest session first."""
        live = [i for i in self.presence.get(folded, ()) if i[1] and i[0] not in self.lost_seeds]
        return [i[0] for i in sorted(live, key=lambda i: i[3], reverse=True)]

    def is_online(self, folded: str) -> bool:
        return bool(self.homes(folded))

    def online_count(self) -> int:
        return sum(1 for folded in self.presence if self.is_online(folded))

    def effective(self, folded: str, now: int) -> Effective:
        """Online while any reachable home seed's latest item says so; last_seen the latest time.

        Of several homes, the one whose session auth is latest is named.
        """
        items = self.presence.get(folded)
        if not items:
            return Effective(False, None, None)
        best: str | None = None
        best_auth = -1
        last_seen: int | None = None
        for seed_key, online, at, auth_at in items:
            lost_at = self.lost_seeds.get(seed_key)
            if online and lost_at is not None:
                online, at = False, max(at, lost_at)
            if online and auth_at > best_auth:
                best, best_auth = seed_key, auth_at
            if last_seen is None or at > last_seen:
                last_seen = at
        if best is not None:
            return Effective(True, best, now)
        return Effective(False, None, last_seen)
