"""The seed URLs a seed knows: which to dial, which to list, which to forget. No I/O.

Configured URLs are dialled forever. A learned URL is kept while it completed a handshake
within a day; of those that have not, at most `max_unverified` are kept (oldest evicted first),
and one that keeps failing is forgotten. `seeds` lists only URLs authenticated within a day,
so a URL a stranger advertised is neither listed nor passed on until it proves a key. A URL
longer than MAX_SEED_URL bytes is never taken in, so no list of URLs can outgrow a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..wire.limits import RateLimit
from ..wire.protocol import seed_url_problem
from .store import SeedUrl

DAY_MS = 86_400_000
FORGET_AFTER_FAILURES = 8  # ~2 minutes of backoff: a learned URL that never answers is dropped


@dataclass
class UrlBook:
    max_unverified: int
    configured: set[str]
    known: dict[str, SeedUrl]
    failures: dict[str, int]
    # new unproven URLs taken in: `max_unverified` at once, as many again an hour. Evicting the
    # oldest for the newest would otherwise let a stranger, hello after hello, aim this seed's
    # dials at any number of targets.
    budget: RateLimit = field(default_factory=lambda: RateLimit(0, 0, 0))
    # the URL a linking seed gives as its own: 64 an hour per address, apart from the lists, so
    # a stranger's list cannot crowd out a genuine seed that links later
    own: dict[str, RateLimit] = field(default_factory=dict)

    @classmethod
    def create(cls, configured: list[str], stored: list[SeedUrl], max_unverified: int) -> UrlBook:
        budget = RateLimit(max_unverified / 3600, max(1, max_unverified), 0)
        book = cls(max_unverified, {u.rstrip("/") for u in configured}, {}, {}, budget)
        for seed in stored:
            if seed_url_problem(seed.url) is None:  # one kept before URLs were bounded is dropped
                book.known[seed.url] = seed
        for url in book.configured:
            book.known.setdefault(url, SeedUrl(url, None, 0, 0))
        return book

    def fresh(self, url: str, now: int) -> bool:
        """Authenticated within a day."""
        seed = self.known.get(url)
        return seed is not None and now - seed.verified < DAY_MS

    def learn(
        self, urls: list[str], now: int, own_of: str | None = None
    ) -> tuple[list[SeedUrl], list[str]]:
        """URLs an authenticated peer listed, or (`own_of` its address) the one it gives as its own:
        (the new ones kept, the ones evicted to make room)."""
        added: list[SeedUrl] = []
        if own_of is not None:
            bucket = self.own.get(own_of)
            if bucket is None:
                if len(self.own) > 10_000:
                    self.own.clear()
                bucket = self.own[own_of] = RateLimit(64 / 3600, 64, now / 1000)
        else:
            bucket = self.budget
        for url in urls:
            url = url.rstrip("/")
            if url in self.known or seed_url_problem(url) is not None:
                continue
            if not bucket.allows(now / 1000):
                break  # the rest is not taken in: too many new URLs lately
            seed = SeedUrl(url, None, now, 0)
            self.known[url] = seed
            added.append(seed)
        evicted = self._evict(now)
        return [s for s in added if s.url not in evicted], evicted

    def _evict(self, now: int) -> list[str]:
        pending = sorted(
            (
                s
                for s in self.known.values()
                if s.url not in self.configured and not self.fresh(s.url, now)
            ),
            key=lambda s: s.learned,
        )
        evicted = [s.url for s in pending[: max(0, len(pending) - self.max_unverified)]]
        for url in evicted:
            self.forget(url)
        return evicted

    def verified(self, url: str, key: str, now: int) -> SeedUrl:
        """A handshake with `url` proved `key`."""
        seed = replace(self.known.get(url) or SeedUrl(url, None, now, 0), key=key, verified=now)
        self.known[url] = seed
        self.failures.pop(url, None)
        return seed

    def failed(self, url: str, now: int) -> bool:
        """A dial failed; True when the URL is forgotten for good (learned, never proven lately)."""
        count = self.failures.get(url, 0) + 1
        self.failures[url] = count
        if url in self.configured or self.fresh(url, now) or count < FORGET_AFTER_FAILURES:
            return False
        self.forget(url)
        return True

    def forget(self, url: str) -> None:
        self.known.pop(url, None)
        self.failures.pop(url, None)

    def listed(self, now: int) -> list[str]:
        """What a hello or welcome passes on: configured URLs and those authenticated within a day,
        configured first, then the most recently proven (a cut list keeps the best)."""
        kept = [
            s for s in self.known.values() if s.url in self.configured or self.fresh(s.url, now)
        ]
        kept.sort(key=lambda s: (s.url not in self.configured, -s.verified, s.url))
        return [s.url for s in kept]

    def summary(self) -> dict[str, int]:
        return {"known": len(self.known), "configured": len(self.configured)}
