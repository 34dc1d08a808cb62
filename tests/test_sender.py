"""The per-socket outgoing queue: order kept, and nothing held by an idle socket."""

from __future__ import annotations

import asyncio
import base64
import os

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


async def test_a_keepalive_drops_a_peer_whose_buffer_is_full():
    """websockets' keepalive awaited the ping's write before its pong timeout started: a peer
    that stopped reading with the socket's buffers full was never dropped (a user endpoint's or
    a user's sockets). The project's sockets time the write as well."""
    from node.wire.sockets import FairServerConnection

    closed = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        try:
            while True:  # as much as the peer will take, then blocked on its full buffer
                await ws.send("x" * 60_000)
                await asyncio.sleep(0)  # a send into a buffer with room never suspends
        except Exception:  # noqa: BLE001 - closed, as it should be
            pass
        await ws.wait_closed()
        closed.set()

    async with serve(
        handler,
        "127.0.0.1",
        0,
        create_connection=FairServerConnection,
        ping_interval=0.2,
        ping_timeout=0.5,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", max_queue=2, ping_interval=None) as ws:
            ws.transport.pause_reading()  # a hung peer: reads nothing, pongs included
            await asyncio.wait_for(closed.wait(), 20)
            ws.transport.abort()


async def test_frames_queued_in_one_turn_go_out_in_one_write_each_its_own_message():
    writes: list[int] = []
    flushed: list[int] = []  # writes made by the time the queue was flushed
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        write = ws.transport.write

        def counted(data: bytes) -> None:
            writes.append(len(data))
            write(data)

        ws.transport.write = counted  # type: ignore[method-assign]
        out = Sender(ws)
        for i in range(10):
            out.push(f"frame {i}")
        await out.flush(5)
        flushed.append(len(writes))
        done.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(10)]
            await asyncio.wait_for(done.wait(), 5)
    assert got == [f"frame {i}" for i in range(10)]
    assert flushed == [1]


async def test_an_idle_socket_writes_without_a_task_and_a_full_one_waits_in_order():
    """A frame to a socket that takes it is written at the end of the turn by a callback (a task
    per frame cost as much as framing it); once the peer stops reading and flow control pauses
    the socket, frames wait in the draining task, and all arrive in order when it reads again."""
    tasks: list[bool] = []
    paused = asyncio.Event()
    done = asyncio.Event()
    big = base64.b64encode(os.urandom(150_000)).decode()  # incompressible, though it is off

    async def handler(ws: ServerConnection) -> None:
        out = Sender(ws, max_bytes=64 * 1024 * 1024, max_frames=10_000)
        out.push("first")
        tasks.append(out.task is not None)
        await out.flush(5)
        while not ws.paused:  # the peer reads nothing: its buffers fill, then the transport's
            out.push(big)
            await asyncio.sleep(0)
        out.push("last")
        await asyncio.sleep(0)
        tasks.append(out.task is not None)
        paused.set()
        await out.flush(30)
        tasks.append(out.queue is None)
        done.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", max_size=None, compression=None) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "first"
            ws.transport.pause_reading()
            await asyncio.wait_for(paused.wait(), 20)
            ws.transport.resume_reading()
            got = []
            while not got or got[-1] != "last":
                got.append(await asyncio.wait_for(ws.recv(), 10))
            await asyncio.wait_for(done.wait(), 10)
    assert set(got[:-1]) == {big}
    assert tasks == [False, True, True]
