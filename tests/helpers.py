"""Shared test helpers: a raw protocol client and condition waits over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.exceptions import ConnectionClosed

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_record
from node.wire.protocol import SUBPROTOCOL
from node.wire.sockets import dial

_ids = itertools.count(1)


class RawClient:
    """A client written from PROTOCOL.md alone: JSON dicts in and out, no project models."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict]] = {}
        self.pushes: asyncio.Queue[dict] = asyncio.Queue()
        self.unmatched: asyncio.Queue[dict] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, **kw: Any) -> RawClient:
        return cls(await dial(url, **kw))

    async def _read(self) -> None:
        try:
            await self._read_frames()
        except ConnectionClosed:
            pass

    async def _read_frames(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            fid = msg.get("id")
            fut = self.replies.pop(fid, None) if fid is not None else None
            if fut is not None:
                fut.set_result(msg)
            elif "id" not in msg:
                await self.pushes.put(msg)
            else:
                await self.unmatched.put(msg)

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def request(self, frame: dict, timeout: float = 5.0) -> dict:
        frame.setdefault("id", f"r{next(_ids)}")
        fut = asyncio.get_running_loop().create_future()
        self.replies[frame["id"]] = fut
        await self.ws.send(json.dumps(frame))
        return await asyncio.wait_for(fut, timeout)

    async def next_unmatched(self, timeout: float = 5.0) -> dict:
        return await asyncio.wait_for(self.unmatched.get(), timeout)

    async def next_push(self, timeout: float = 5.0) -> dict:
        return await asyncio.wait_for(self.pushes.get(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def record(
    identity: Identity, name: str, endpoint: str = "ws://127.0.0.1:9", seq: int | None = None
) -> dict:
    return sign_record(identity, name, endpoint, seq or now_ms()).model_dump()


async def eventually(predicate, timeout: float = 10.0, what: str = "condition") -> Any:
    """Wait for an observable state that has no event of its own (replication across seeds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


__all__ = ["RawClient", "record", "eventually", "SUBPROTOCOL"]


async def next_event(stream, predicate, timeout: float = 10.0, what: str = "event"):
    """The next event from a user node's stream that satisfies `predicate` (others are skipped)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = await stream.next()
                if predicate(event):
                    return event
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
