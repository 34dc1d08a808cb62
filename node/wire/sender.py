"""An ordered, bounded outgoing queue per socket, so code that is not the socket's reader can push frames.

Replies, presence pushes and gossip for one socket go out in the order they were queued; a task
runs only while there is something to write, and a peer too slow to read is disconnected instead
of growing the queue without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from .sockets import Turns, close_now

log = logging.getLogger(__name__)


class FrameCounts:
    """Frames a server received and queued for sending, shown in /health (the lookup-cost benchmark reads them)."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0


class Sender:
    """The outgoing queue of one socket, drained by a task that runs only while it holds frames."""

    __slots__ = ("ws", "queue", "task", "limit", "counts", "closing")

    def __init__(
        self, ws: Connection, limit: int = 10_000, counts: FrameCounts | None = None
    ) -> None:
        self.ws = ws
        self.counts = counts
        # Made on the first push and dropped once drained: most sockets are idle, and an empty
        # deque is 760 bytes.
        self.queue: deque[str] | None = None
        self.task: asyncio.Task[None] | None = None
        self.limit = limit
        self.closing: asyncio.Task[None] | None = None

    def push(self, text: str) -> None:
        if self.queue is None:
            self.queue = deque()
        if len(self.queue) >= self.limit:
            log.warning("peer %s reads too slowly; closing", self.ws.remote_address)
            self.queue.clear()
            if self.closing is None:
                self.closing = asyncio.ensure_future(close_now(self.ws, 1008, "too slow reading"))
            return
        self.queue.append(text)
        if self.counts is not None:
            self.counts.sent += 1
        if self.task is None:
            self.task = asyncio.ensure_future(self._drain())

    async def flush(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until everything queued has been written to the socket."""
        try:
            async with asyncio.timeout(timeout):
                while self.task is not None:
                    await asyncio.shield(self.task)
        except (TimeoutError, ConnectionClosed):
            pass

    async def _drain(self) -> None:
        turns = Turns()
        queue = self.queue
        try:
            while queue:
                await self.ws.send(queue.popleft())
                await turns.one_done()
        except ConnectionClosed:
            pass
        finally:
            self.queue = None
            self.task = None
