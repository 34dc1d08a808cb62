"""The per-socket outgoing queue: order kept, and nothing held by an idle socket."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from node.wire.sender import Sender


async def test_a_sender_keeps_order_and_holds_no_queue_once_drained():
    senders: list[Sender] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        out = Sender(ws)
        senders.append(out)
        for i in range(100):
            out.push(str(i))
        await out.flush(5)
        done.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(100)]
            await asyncio.wait_for(done.wait(), 5)
    assert got == [str(i) for i in range(100)]
    # Thousands of idle sockets each keep a Sender: an empty deque is 760 bytes of seed memory.
    assert senders[0].queue is None and senders[0].task is None
