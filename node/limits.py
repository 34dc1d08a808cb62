"""Per-connection rate limits: a flooding peer is answered `rate_limited`, and cut off if it keeps on."""

from __future__ import annotations

import time
from enum import Enum


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # answer rate_limited
    CUT = "cut"  # refused too often: close the connection


class RateLimit:
    """A token bucket (`rate` frames a second, up to `burst`) and a count of refusals.

    A peer refused more than `burst` times within `window` seconds is cut off: one that overshoots
    now and then never gets near that, and a flooder cannot dodge it by letting a frame through
    now and then as the bucket refills.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp", "window", "refused", "since")

    def __init__(self, rate: float, burst: float, window: float = 10.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.window = window
        self.refused = 0
        self.since = 0.0

    def check(self) -> Verdict:
        """Take a token for one frame, or count a refusal."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return Verdict.ALLOW
        if now - self.since > self.window:
            self.refused, self.since = 0, now
        self.refused += 1
        return Verdict.CUT if self.refused > self.burst else Verdict.REFUSE
