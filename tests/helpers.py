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
from node.user.events import MessageReceived, MessageState, NameRegistered
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

    def _seen(self, raw: str | bytes, msg: dict) -> None:
        """Every frame read, before it is sorted (a subclass may keep something of it)."""

    async def _read_frames(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            self._seen(raw, msg)
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

    client_class: type[RawClient] = RawClient

    async def connect(
        self,
        url: str,
        name: str = "mallory",
        seeds: list[str] | None = None,
        since: list | None = None,
        drain: bool = True,
        own_url: str = "ws://127.0.0.1:1",
    ) -> dict:
        """Link to the seed at `url` as `name`, claiming `own_url` as this seed's URL."""
        self.client = await self.client_class.open(url)
        assert self.client.challenge is not None
        frame = hello_frame(
            self.identity, self.client.challenge, name=name, url=own_url, seeds=seeds, since=since
        )
        self.welcome = await self.client.request(frame)
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


# ---------------------------------------------------------------- attackers for the trust tests


def hello_frame(
    identity: Identity,
    challenge: dict,
    *,
    name: str = "mallory",
    url: str = "ws://127.0.0.1:1",
    seeds: list[str] | None = None,
    since: list | None = None,
    key: str | None = None,
    signer: Identity | None = None,
    at: int | None = None,
    challenge_nonce: str | None = None,
) -> dict:
    """A `seed_hello` answering `challenge`, with one part tampered with where a test says so:
    `key` claims another key, `signer` signs with another one, `at` and `challenge_nonce` lie."""
    import base64
    import os

    from node.crypto.signing import sign_seed_auth

    claimed = key or identity.key
    nonce = base64.b64encode(os.urandom(32)).decode()
    auth = sign_seed_auth(
        signer or identity,
        True,
        at if at is not None else now_ms(),
        claimed,
        challenge["seed_key"],
        challenge_nonce or challenge["nonce"],
        nonce,
    ).model_dump()
    return {
        "type": "seed_hello",
        "id": f"h{next(_ids)}",
        "name": name,
        "url": url,
        "key": claimed,
        "seeds": seeds or [],
        "since": since,
        "nonce": nonce,
        "auth": auth,
    }


class SizedClient(RawClient):
    """A RawClient that also keeps (type, encoded size) of every frame it reads."""

    def __init__(self, ws) -> None:
        self.sizes: list[tuple[str, int]] = []
        super().__init__(ws)

    def _seen(self, raw: str | bytes, msg: dict) -> None:
        self.sizes.append((msg.get("type"), len(raw.encode() if isinstance(raw, str) else raw)))


class StrangerLink(FakeSeed):
    """A FakeSeed that reads with a SizedClient, so a test can measure the frames it gets (and,
    like any FakeSeed, claims the URL it is given as its own)."""

    client_class = SizedClient


class TcpCounter:
    """A plain TCP service (not WebSocket): counts the connections it gets and closes each at once."""

    def __init__(self) -> None:
        self.count = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> TcpCounter:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.count += 1
            writer.close()

        self.server = await asyncio.start_server(handle, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class WsServer:
    """A WebSocket server speaking p2pchat.v1 whose every frame is handed to `on_frame(ws, msg)`;
    it counts the sockets it accepted and keeps every frame it got."""

    def __init__(self, on_frame=None, on_open=None) -> None:
        self.on_frame = on_frame
        self.on_open = on_open
        self.connections = 0
        self.frames: list[dict] = []
        self.sockets: list[Any] = []
        self.server: Any = None
        self.url = ""

    async def start(self) -> WsServer:
        from websockets.asyncio.server import serve

        async def handle(ws: Any) -> None:
            self.connections += 1
            self.sockets.append(ws)
            try:
                if self.on_open is not None:
                    await self.on_open(ws)
                async for raw in ws:
                    msg = json.loads(raw)
                    self.frames.append(msg)
                    if self.on_frame is not None:
                        await self.on_frame(ws, msg)
            except ConnectionClosed:
                pass
            finally:
                self.sockets.remove(ws)

        self.server = await serve(
            handle, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL], compression=None
        )
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    def got(self, kind: str) -> list[dict]:
        return [f for f in self.frames if f.get("type") == kind]

    async def push(self, frame: dict) -> None:
        for ws in list(self.sockets):
            await ws.send(json.dumps(frame))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class StrangerSeed(WsServer):
    """A hostile seed written from the protocol: a user node that registers here is told whatever
    the test puts in `answers` (name -> `found` fields, or an error code) and `online`."""

    def __init__(self, name: str = "evil") -> None:
        super().__init__(on_frame=self._answer, on_open=self._challenge)
        self.identity = Identity.generate()
        self.name = name
        self.answers: dict[str, dict | str] = {}
        self.online: dict[str, bool] = {}

    async def _challenge(self, ws: Any) -> None:
        import base64
        import os

        nonce = base64.b64encode(os.urandom(32)).decode()
        await ws.send(
            json.dumps(
                {
                    "type": "challenge",
                    "nonce": nonce,
                    "seed": self.name,
                    "seed_key": self.identity.key,
                }
            )
        )

    async def _answer(self, ws: Any, msg: dict) -> None:
        kind, fid = msg.get("type"), msg.get("id")
        reply: dict | None
        if kind == "register":
            reply = {"type": "registered", "id": fid, "seed": self.name}
        elif kind == "seeds":
            me = {"name": self.name, "url": self.url, "key": self.identity.key, "up": True}
            reply = {"type": "seed_list", "id": fid, "seeds": [{**me, "rtt_ms": 0.0}]}
        elif kind == "watch":
            await ws.send(json.dumps({"type": "watching", "id": fid}))
            for name in msg["names"]:
                online = self.online.get(name.lower(), False)
                await ws.send(json.dumps(self.presence(name, online)))
            return
        elif kind == "lookup":
            answer = self.answers.get(msg["name"].lower(), "not_found")
            if isinstance(answer, str):
                reply = {"type": "error", "id": fid, "code": answer, "message": "no"}
            else:
                reply = {"type": "found", "id": fid, **answer}
        elif kind == "relay":
            reply = {"type": "relay_ok", "id": fid}
        elif kind == "deposit":
            reply = {"type": "deposited", "id": fid}
        elif kind == "take":
            reply = {"type": "took", "id": fid}
        elif kind == "publish":
            reply = {"type": "published", "id": fid, "accepted": 0}
        else:
            reply = None
        if reply is not None:
            await ws.send(json.dumps(reply))

    def presence(self, name: str, online: bool) -> dict:
        now = now_ms()
        return {
            "type": "presence",
            "name": name,
            "online": online,
            "seed": self.name if online else None,
            "last_seen": now,
        }


def found_fields(rec: dict, online: bool = True, seed: str = "evil") -> dict:
    """The fields of a `found` frame for `rec` (a StrangerSeed answer)."""
    return {"record": dict(rec), "online": online, "seed": seed, "last_seen": now_ms()}


# ---------------------------------------------------------------- user node events


def registered(e) -> bool:
    return isinstance(e, NameRegistered)


def received(e) -> bool:
    return isinstance(e, MessageReceived)


def in_state(msg_id: str, *states: str):
    """A predicate for `next_event`: message `msg_id` reached one of `states`."""
    return lambda e: isinstance(e, MessageState) and e.id == msg_id and e.state in states


async def all_delivered(stream, ids: list[str]) -> None:
    """Every one of `ids` delivered, in any order: acks come back by several paths."""
    waiting = set(ids)
    while waiting:
        event = await next_event(
            stream, lambda e: isinstance(e, MessageState) and e.state == "delivered"
        )
        waiting.discard(event.id)


async def linked_seeds(seeds):
    """Seeds a and b, linked both ways."""
    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    # and b's first sync done: until then it refuses a new name it cannot check
    await eventually(
        lambda: "a" in b.mesh.peer_names() and "b" in a.mesh.peer_names() and b.synced_once,
        what="mesh",
    )
    return a, b
