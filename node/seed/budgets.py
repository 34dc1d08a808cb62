"""Per-link budgets: what a seed takes in from one linked seed, accounted to that link. No I/O.

A proof says who wrote an item, never that storing it is affordable: anyone may run a seed with
a fresh key and link it to the mesh. So new names, presence items, mail bytes, takes and relayed
bytes that arrive on a link each spend that link's budget; beyond it they are dropped (and not
forwarded: honest items still come by other paths), counted per link. A configured peer carries
many users and gets large budgets (its relays are budgeted per sender name, as that user's own
seed does); a stranger gets small ones. Pure: the caller passes the time (monotonic seconds).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..wire.limits import RateLimit

DAY_MS = 86_400_000
MAX_BUCKETS = 100_000  # per (link, sender) relay buckets held before the idle ones are forgotten
MAX_COUNTED = 1_024  # links whose drops /health remembers (a stranger can mint keys)

KINDS = ("names", "presence", "mail", "takes", "relay", "ids")


@dataclass(frozen=True)
class Budget:
    """What one link may bring, as (rate a second, burst) per kind: new names, presence items,
    mail bytes, takes, relayed bytes (for the whole link), and broadcast ids announced or
    grafted (r3)."""

    names: tuple[float, float]
    presence: tuple[float, float]
    mail: tuple[float, float]
    takes: tuple[float, float]
    relay: tuple[float, float]
    ids: tuple[float, float] = (10_000.0, 1_000_000.0)


class FirstSeen:
    """When each key was first proven at a configured URL, and at which (loaded from disk).

    A configured peer is trusted from its first handshake (the operator named its URL); a key that
    later turns up at that URL in place of the first one is a stranger for `grace_ms`.
    """

    def __init__(self, rows: list[tuple[str, str, int]], grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self.rows: dict[str, tuple[str, int]] = {key: (url, at) for key, url, at in rows}

    def note(self, key: str, url: str, now: int) -> bool:
        """A handshake at configured `url` proved `key`; True when that is news (to be saved)."""
        if key in self.rows:
            return False
        self.rows[key] = (url, now)
        return True

    def trusted(self, key: str, configured_keys: set[str], now: int) -> bool:
        if key not in configured_keys:
            return False
        row = self.rows.get(key)
        if row is None:
            return False  # proven at a configured URL, but not yet noted: the next dial notes it
        url, at = row
        if now - at >= self.grace_ms:
            return True
        first = min((a, k) for k, (u, a) in self.rows.items() if u == url)
        return first[1] == key


class LinkAccounts:
    """Token buckets per link and kind, per (link, sender) for relays on a peer link, and the
    count of what each link had dropped."""

    def __init__(self, peer: Budget, stranger: Budget, sender_relay: tuple[float, float]) -> None:
        self.peer = peer
        self.stranger = stranger
        self.sender_relay = sender_relay
        self.buckets: dict[tuple[str, str], RateLimit] = {}
        self.senders: dict[tuple[str, str], RateLimit] = {}
        self.dropped: dict[str, Counter[str]] = {}

    def _bucket(self, key: str, kind: str, trusted: bool, now: float) -> RateLimit:
        tier = "peer" if trusted else "stranger"
        bucket = self.buckets.get((key, f"{kind} {tier}"))
        if bucket is None:
            if len(self.buckets) > MAX_BUCKETS:
                self.buckets.clear()
            rate, burst = getattr(self.peer if trusted else self.stranger, kind)
            bucket = self.buckets[(key, f"{kind} {tier}")] = RateLimit(rate, burst, now)
        return bucket

    def allows(self, key: str, kind: str, trusted: bool, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` of the link's `kind` budget; False (and counted) when it is spent."""
        if self._bucket(key, kind, trusted, now).allows(now, cost):
            return True
        self.count(key, kind)
        return False

    def relay_allows(self, key: str, sender: str, trusted: bool, now: float, size: int) -> bool:
        """A relay of `size` bytes from `sender` (folded) on the link: within the link's budget
        and, on a peer link, within that sender's own (a user's relay budget)."""
        bucket = self.senders.get((key, sender))
        if bucket is None:
            if len(self.senders) > MAX_BUCKETS:
                self.senders.clear()
            rate, burst = self.sender_relay
            bucket = self.senders[(key, sender)] = RateLimit(rate, burst, now)
        if not bucket.allows(now, size):
            self.count(key, "relay")
            return False
        return self.allows(key, "relay", trusted, now, size)

    def count(self, key: str, kind: str) -> None:
        counted = self.dropped.get(key)
        if counted is None:
            if len(self.dropped) >= MAX_COUNTED:
                self.dropped.pop(next(iter(self.dropped)))
            counted = self.dropped[key] = Counter()
        counted[kind] += 1

    def forget_idle(self, now: float) -> None:
        """Drop buckets that are full again (an idle link or sender costs no memory)."""
        for table in (self.buckets, self.senders):
            for k, bucket in list(table.items()):
                if bucket.allows(now, 0) and bucket.tokens >= bucket.burst:
                    del table[k]
