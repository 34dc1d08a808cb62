"""Per-connection rate limits: a flooding peer is answered `rate_limited`, and cut off if it keeps on.

Pure: the caller passes the time (monotonic seconds), so the rules are tested without waiting.
"""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # answer rate_limited
    CUT = "cut"  # refused too often: close the connection


class RateLimit:
    """A token bucket (`rate` tokens a second, up to `burst`) and a count of refusals.

    A peer refused more than `burst` times within `window` seconds is cut off: one that overshoots
    now and then never gets near that, and a flooder cannot dodge it by letting a frame through
    now and then as the bucket refills.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp", "window", "refused", "since")

    def __init__(self, rate: float, burst: float, now: float, window: float = 10.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now
        self.window = window
        self.refused = 0
        self.since = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def check(self, now: float, cost: float = 1.0) -> Verdict:
        """Take `cost` tokens (one frame, say), or count a refusal."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return Verdict.ALLOW
        if now - self.since > self.window:
            self.refused, self.since = 0, now
        self.refused += 1
        return Verdict.CUT if self.refused > self.burst else Verdict.REFUSE

    def available(self, now: float) -> int:
        """How many frames of cost 1 the bucket would admit now (nothing is taken)."""
        self._refill(now)
        return int(self.tokens)

    def allows(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if there are enough; a refusal here is not counted towards a cut."""
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
