"""Replies matched to requests by `id`: one future per request in flight, all failed when the socket goes."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

from ..errors import ConnectionLost

T = TypeVar("T")


class Correlator(Generic[T]):
    """Requests in flight on one socket (a seed link, a user's seed socket, a peer link)."""

    __slots__ = ("pending", "closed")

    def __init__(self) -> None:
        self.pending: dict[str, asyncio.Future[T]] = {}
        self.closed: str | None = None

    def expect(self, frame_id: str) -> asyncio.Future[T]:
        """A future for the reply to `frame_id`; fails at once when the socket is already gone."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self.closed is not None:
            fut.set_exception(ConnectionLost(self.closed))
        else:
            self.pending[frame_id] = fut
        return fut

    def resolve(self, frame_id: str | None, value: T) -> bool:
        """Hand a reply to its request; False when nobody waits for that id (late or unasked)."""
        fut = self.pending.pop(frame_id, None) if frame_id is not None else None
        if fut is None or fut.done():
            return False
        fut.set_result(value)
        return True

    def forget(self, frame_id: str) -> None:
        """The requester stopped waiting (timeout, cancel): a late reply is then unasked."""
        self.pending.pop(frame_id, None)

    def close(self, why: str) -> None:
        """The socket is gone: every request in flight fails with ConnectionLost."""
        self.closed = why
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(why))
                fut.exception()  # retrieved: a waiter, if any, still sees it

    def __len__(self) -> int:
        return len(self.pending)

    async def wait(self, frame_id: str, fut: asyncio.Future[T], timeout: float) -> T:
        """Await a reply for at most `timeout` seconds (TimeoutError), forgetting the id either way."""
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.forget(frame_id)
