"""Retry delays with decorrelated jitter: each drawn between a first value and three times the
one before, up to a ceiling, reset by a success.

The jitter is what keeps the users of a seed that died together from retrying together: every
delay is random (never below `first`, never above `ceiling`), so their retries spread out. The
random source is an argument, so a unit test can fix the schedule.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class Backoff:
    __slots__ = ("first", "ceiling", "delay", "rand")

    def __init__(
        self, first: float, ceiling: float, rand: Callable[[], float] = random.random
    ) -> None:
        """`rand()` returns a float in [0, 1] (random.random by default)."""
        self.first = first
        self.ceiling = ceiling
        self.rand = rand
        self.delay = first  # the last delay handed out (`first` after a reset)

    def next(self) -> float:
        """The delay to wait now: between `first` and three times the last one, at most `ceiling`."""
        high = min(self.delay * 3, self.ceiling)
        self.delay = min(self.first + (high - self.first) * self.rand(), self.ceiling)
        return self.delay

    def reset(self) -> None:
        self.delay = self.first

    async def sleep(self, wake: asyncio.Event | None = None) -> bool:
        """Wait the next delay, or less if `wake` is set (cleared here); True when woken early."""
        delay = self.next()
        if wake is None:
            await asyncio.sleep(delay)
            return False
        try:
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            return False
        finally:
            wake.clear()
        return True
