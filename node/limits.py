"""Per-connection token buckets: a flooding client is answered `rate_limited` instead of served."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens a second, up to `burst`; each frame takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RefusalCounter:
    """Refusals within a window: a client refused more than `limit` times in `window` s is cut off.

    A client that overshoots now and then never gets near the limit; a flooder cannot dodge it by
    letting an accepted frame through now and then as the bucket refills.
    """

    __slots__ = ("limit", "window", "count", "since")

    def __init__(self, limit: float, window: float = 10.0) -> None:
        self.limit = limit
        self.window = window
        self.count = 0
        self.since = 0.0

    def refuse(self) -> bool:
        """Count one refusal; True when the client has now been refused too often."""
        now = time.monotonic()
        if now - self.since > self.window:
            self.count, self.since = 0, now
        self.count += 1
        return self.count > self.limit
