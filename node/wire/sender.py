"""An ordered, bounded outgoing queue per socket, so code that is not the socket's reader can push frames.

Replies, presence pushes and gossip for one socket go out in the order they were queued; what
was queued in one turn of the event loop goes out in one socket write (each frame is still its
own WebSocket message), written by a callback at the end of the turn while the socket takes it,
and by a task, with websockets' flow control, only when it does not (a task per frame cost as
much as framing it). The queue is bounded in bytes as well as frames: a
peer too slow to read is disconnected (close code 1013) instead of holding the seed's memory,
and a producer with much to say (a sync, a mail handover) waits for `room()` between frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .sockets import FAIR_SHARE, close_now

log = logging.getLogger(__name__)

# close code for a socket whose outgoing queue passed its bound: it does not read what it asked
# for (1013 "try again later": the peer may come back and read)
CLOSE_TOO_SLOW = 1013
# a user's socket (at a seed or at a user endpoint): answers, pushes, relayed frames
QUEUE_BYTES = 1024 * 1024
QUEUE_FRAMES = 4096
# a seed link: gossip bursts; the initial sync waits for room instead of filling it
LINK_QUEUE_BYTES = 8 * 1024 * 1024
LINK_QUEUE_FRAMES = 50_000
# frames and bytes written at once at most (FAIR_SHARE frames: then the other sockets get a turn)
BATCH_BYTES = 256 * 1024


class FrameCounts:
    """Frames a server received and queued for sending, shown in /health (the lookup-cost benchmark reads them)."""

    __slots__ = ("received", "sent", "too_slow")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.too_slow = 0  # sockets closed because their queue passed its bound


class Sender:
    """The outgoing queue of one socket, drained by a task that runs only while it holds frames.

    Frames are encoded once when queued, so the bound counts the bytes that go out; `peak` is the
    most ever queued at once.
    """

    __slots__ = (
        "ws",
        "queue",
        "task",
        "max_bytes",
        "max_frames",
        "bytes",
        "peak",
        "counts",
        "closing",
        "wake",
        "soon",
    )

    def __init__(
        self,
        ws: Connection,
        max_bytes: int = QUEUE_BYTES,
        max_frames: int = QUEUE_FRAMES,
        counts: FrameCounts | None = None,
    ) -> None:
        self.ws = ws
        self.counts = counts
        # Made on the first push and dropped once drained: most sockets are idle, and an empty
        # deque is 760 bytes.
        self.queue: deque[bytes] | None = None
        self.task: asyncio.Task[None] | None = None
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.bytes = 0
        self.peak = 0
        self.closing: asyncio.Future[None] | None = None
        self.wake: asyncio.Future[None] | None = None  # a producer waiting for room
        self.soon = False  # a write is scheduled for the end of this turn

    def bound(self, max_bytes: int, max_frames: int) -> None:
        """Change the bounds (a socket that became a seed link)."""
        self.max_bytes, self.max_frames = max_bytes, max_frames

    @property
    def low(self) -> int:
        """Queued bytes under which a waiting producer goes on (a quarter of the bound)."""
        return self.max_bytes // 4

    def push(self, text: str) -> None:
        """Queue a frame; one that would pass the bound closes the socket with 1013 instead."""
        if self.closing is not None:
            return
        data = text.encode()
        if self.queue is None:
            self.queue = deque()
        if len(self.queue) >= self.max_frames or self.bytes + len(data) > self.max_bytes:
            self.overflow()
            return
        self.queue.append(data)
        self.bytes += len(data)
        if self.bytes > self.peak:
            self.peak = self.bytes
        if self.counts is not None:
            self.counts.sent += 1
        if self.task is None and not self.soon:
            self.soon = True
            asyncio.get_running_loop().call_soon(self._write_now)

    def _write_now(self) -> None:
        """This turn's frames in one write, without a task, when the socket takes them at once
        (open, not paused by flow control, no more than a fair share); else the draining task."""
        self.soon = False
        queue = self.queue
        if self.task is not None or not queue:
            return
        ws = self.ws
        if (
            len(queue) > FAIR_SHARE
            or self.bytes > BATCH_BYTES
            or ws.protocol.state is not State.OPEN
            or ws.paused
            or ws.transport.is_closing()
        ):
            self.task = asyncio.ensure_future(self._drain())
            return
        self.queue, self.bytes = None, 0
        try:
            write_texts(ws, queue)
        except Exception as exc:  # noqa: BLE001 - as websockets' own send: the connection is lost
            log.debug("writing to %s failed: %r", ws.remote_address, exc)
            ws.transport.abort()
        self._wake()

    def overflow(self) -> None:
        """The peer does not read what it is sent: drop the queue and close (abort after a grace)."""
        log.warning(
            "peer %s reads too slowly (%d bytes, %d frames queued); closing",
            self.ws.remote_address,
            self.bytes,
            len(self.queue or ()),
        )
        if self.queue is not None:
            self.queue.clear()
        self.bytes = 0
        if self.counts is not None:
            self.counts.too_slow += 1
        self.closing = asyncio.ensure_future(
            close_now(self.ws, CLOSE_TOO_SLOW, "too slow reading: the outgoing queue is full")
        )
        self._wake()

    async def room(self) -> bool:
        """Wait until at most a quarter of the bound is queued; False once the socket is closing."""
        while self.closing is None and self.bytes > self.low:
            if self.wake is None:
                self.wake = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.wake)
        return self.closing is None

    async def push_paced(self, text: str) -> bool:
        """Queue a frame once there is room: a producer with much to send never fills the queue."""
        if not await self.room():
            return False
        self.push(text)
        return self.closing is None

    def _wake(self) -> None:
        if self.wake is not None:
            if not self.wake.done():
                self.wake.set_result(None)
            self.wake = None

    async def flush(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until everything queued has been written to the socket."""
        if self.soon:
            self._write_now()
        try:
            async with asyncio.timeout(timeout):
                while self.task is not None:
                    await asyncio.shield(self.task)
        except (TimeoutError, ConnectionClosed):
            pass

    async def _drain(self) -> None:
        queue = self.queue
        try:
            while queue:
                batch = [queue.popleft()]
                size = len(batch[0])
                while queue and len(batch) < FAIR_SHARE and size + len(queue[0]) <= BATCH_BYTES:
                    batch.append(queue.popleft())
                    size += len(batch[-1])
                self.bytes -= size
                if self.wake is not None and self.bytes <= self.low:
                    self._wake()
                await send_texts(self.ws, batch)
                if queue:
                    await asyncio.sleep(0)  # the other sockets' turn
        except ConnectionClosed:
            if self.closing is None:
                self.closing = asyncio.get_running_loop().create_future()
                self.closing.set_result(None)
        finally:
            if queue is not None:
                queue.clear()
            if self.queue is queue:
                self.queue = None
                self.bytes = 0
            self.task = None
            self._wake()


async def send_texts(ws: Connection, texts: list[bytes]) -> None:
    """Text frames (UTF-8 bytes) in one socket write: a system call per frame costs as much as
    framing it. websockets' own send does the flow control and error handling around it."""
    if len(texts) == 1:
        await ws.send(texts[0], text=True)
        return
    async with ws.send_context():
        write_texts(ws, texts)


def write_texts(ws: Connection, texts: Iterable[bytes]) -> None:
    """Frame each text (its own WebSocket message) and write them all in one socket write."""
    for data in texts:
        ws.protocol.send_text(data)
    ws.transport.write(b"".join(ws.protocol.data_to_send()))
