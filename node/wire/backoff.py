"""Retry delays that double from a first value up to a ceiling, reset by a success."""

from __future__ import annotations

import asyncio


class Backoff:
    __slots__ = ("first", "ceiling", "delay")

    def __init__(self, first: float, ceiling: float) -> None:
        self.first = first
        self.ceiling = ceiling
        self.delay = first

    def next(self) -> float:
        """The delay to wait now; the one after it is twice as long, up to the ceiling."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.ceiling)
        return delay

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
