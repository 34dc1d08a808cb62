"""Wall-clock time as the protocol counts it: integer milliseconds since the Unix epoch; and both
clocks read together, once, where a frame or a timer arrives (`Now`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Now:
    """The time a frame is handled at, read once at the socket (or timer) and passed down, so the
    rules below are functions of their inputs: `wall` for what the protocol dates (ms since the
    epoch), `mono` for rate limits and waits (the event loop's monotonic seconds)."""

    wall: int
    mono: float

    @classmethod
    def read(cls) -> Now:
        return cls(now_ms(), asyncio.get_running_loop().time())
