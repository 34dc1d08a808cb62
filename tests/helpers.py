"""Shared test helpers: a raw protocol client and condition waits over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.exceptions import ConnectionClosed

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_record, sign_session
from node.wire.protocol import SUBPROTOCOL, frame_text
from node.wire.sockets import dial

_ids = itertools.count(1)


class SignedRecord(dict):
    """A record as a raw client sends it, remembering the key that signed it (to sign sessions)."""

    identity: Identity


class RawClient:
    """A client written from PROTOCOL.md alone: JSON dicts in and out, no project models.

    A seed's first frame is its `challenge`, kept in `challenge`; a `register` sent with a
    record from `record()` and no `auth` gets the session auth for this socket added.
    """

    def __init__(self, ws) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict]] = {}
        self.pushes: asyncio.Queue[dict] = asyncio.Queue()
        self.unmatched: asyncio.Queue[dict] = asyncio.Queue()
        self.challenge: dict | None = None
        self.challenged = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, **kw: Any) -> RawClient:
        client = cls(await dial(url, **kw))
        await asyncio.wait_for(client.challenged.wait(), 5)
        return client

    def auth(self, identity: Identity, name: str, at: int | None = None) -> dict:
        """A session auth for this socket's challenge, signed by `identity`."""
        assert self.challenge is not None, "no challenge on this socket"
        return sign_session(
            identity, name, self.challenge["seed_key"], self.challenge["nonce"], at or now_ms()
        ).model_dump()

    async def _read(self) -> None:
        try:
            await self._read_frames()
        except ConnectionClosed:
            pass

    async def _read_frames(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg.get("type") == "challenge" and self.challenge is None:
                self.challenge = msg
                self.challenged.set()
                continue
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
        record = frame.get("record")
        if (
            frame.get("type") == "register"
            and "auth" not in frame
            and isinstance(record, SignedRecord)
        ):
            frame["auth"] = self.auth(record.identity, record["name"])
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
) -> SignedRecord:
    signed = SignedRecord(sign_record(identity, name, endpoint, seq or now_ms()).model_dump())
    signed.identity = identity
    return signed


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


class FakeSeed:
    """A seed written from the protocol alone: it proves a key of its own, then speaks raw frames.

    Tests use it as a stranger seed: everything it sends is what any hostile seed could send.
    """

    def __init__(self, identity: Identity | None = None) -> None:
        import base64
        import os

        self.identity = identity or Identity.generate()
        self.key = self.identity.key
        self.epoch = base64.b64encode(os.urandom(16)).decode()
        self.n = 0

    async def connect(
        self,
        url: str,
        name: str = "mallory",
        seeds: list[str] | None = None,
        since: list | None = None,
        drain: bool = True,
    ) -> dict:
        import base64
        import os

        from node.crypto.signing import sign_seed_auth

        self.client = await RawClient.open(url)
        challenge = self.client.challenge
        assert challenge is not None
        nonce = base64.b64encode(os.urandom(32)).decode()
        auth = sign_seed_auth(
            self.identity,
            True,
            now_ms(),
            self.key,
            challenge["seed_key"],
            challenge["nonce"],
            nonce,
        ).model_dump()
        self.welcome = await self.client.request(
            {
                "type": "seed_hello",
                "name": name,
                "url": "ws://127.0.0.1:1",
                "key": self.key,
                "seeds": seeds or [],
                "since": since,
                "nonce": nonce,
                "auth": auth,
            }
        )
        assert self.welcome["type"] == "seed_welcome", self.welcome
        self.sync: list[dict] = []
        if drain:
            await self.drain_sync()
        return self.welcome

    async def drain_sync(self) -> list[dict]:
        """The seed's sync chunks, up to the one that says done."""
        while True:
            msg = await self.client.next_push()
            if msg["type"] == "sync":
                self.sync.append(msg)
                if msg["done"]:
                    return self.sync

    def rev(self) -> list:
        self.n += 1
        return [self.epoch, self.n]

    async def gossip(self, **lists: list) -> None:
        await self.client.send_raw(frame_text({"type": "gossip", **lists, "rev": self.rev()}))

    async def sync_done(self, **lists: list) -> None:
        await self.client.send_raw(
            frame_text({"type": "sync", **lists, "rev": self.rev(), "done": True})
        )

    def online(
        self, user: Identity, name: str, at: int | None = None, nonce: str | None = None
    ) -> dict:
        """An online presence item for a user whose session this seed holds (it signs for us)."""
        import base64
        import os

        auth = sign_session(
            user, name, self.key, nonce or base64.b64encode(os.urandom(32)).decode(), at or now_ms()
        ).model_dump()
        return {
            "name": name,
            "seed": "mallory",
            "seed_key": self.key,
            "online": True,
            "at": at or now_ms(),
            "auth": auth,
        }
