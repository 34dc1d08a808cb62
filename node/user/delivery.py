"""Delivery: one worker per recipient that resolves, dials and keeps a window of boxed messages in flight.

What to send and when to retry is the outbox's call (outbox.py); this module does the I/O:
lookups through the seed, links to peers' endpoints, acknowledgements, and the waits between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..clock import now_ms
from ..config import UserConfig
from ..crypto.boxes import Boxes
from ..errors import ConnectionLost, ErrorCode, ProtocolError, RemoteError, SeedUnavailable
from ..runtime import Tasks
from ..wire.correlator import Correlator
from ..wire.protocol import DIRECT, Ack, Error, Found, parse
from ..wire.sender import Sender
from ..wire.sockets import dial, frames
from .contacts import KeyPins, RecordCache
from .events import Event, MessageState, MsgState
from .outbox import Outbox
from .seed_client import SeedClient
from .store import StoredMessage, UserStore

log = logging.getLogger("p2p.user.delivery")

RETRY_CODES = (ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL)


class PeerLink:
    """Our outgoing socket to one peer's endpoint, and the acknowledgements awaited on it."""

    def __init__(self, ws: ClientConnection, key: str, tasks: Tasks) -> None:
        self.ws = ws
        self.key = key
        self.out = Sender(ws)
        self.acks: Correlator[Ack | Error] = Correlator()
        self.reader = tasks.spawn(self._read(), f"peer link {ws.remote_address}")

    async def _read(self) -> None:
        try:
            async for raw in frames(self.ws):
                try:
                    frame = parse(DIRECT, raw)
                except ProtocolError:
                    continue
                if isinstance(frame, Ack | Error):
                    self.acks.resolve(frame.id, frame)
        except ConnectionClosed:
            pass
        finally:
            self.acks.close("connection to the recipient lost")

    @property
    def alive(self) -> bool:
        return not self.reader.done()


@dataclass
class Resolver:
    """Lookups through the seed, cached for a while, each answer's key checked against the pin."""

    seed: SeedClient
    cache: RecordCache

    async def resolve(self, name: str) -> Found:
        now = time.monotonic()
        found = self.cache.get(name, now)
        if found is None:
            found = await self.seed.lookup(name)
            self.cache.put(name, found, now)
        return found


class Delivery:
    """One worker per recipient with something queued, each running until its queue is empty."""

    def __init__(
        self,
        name: str,
        config: UserConfig,
        outbox: Outbox,
        store: UserStore,
        boxes: Boxes,
        resolver: Resolver,
        pins: KeyPins,
        emit: Callable[[Event], None],
    ) -> None:
        self.name = name
        self.config = config
        self.outbox = outbox
        self.store = store
        self.boxes = boxes
        self.resolver = resolver
        self.pins = pins
        self.emit = emit
        self.tasks = Tasks(log)
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.links: dict[str, PeerLink] = {}

    async def stop(self) -> None:
        await self.tasks.cancel_all()
        for link in list(self.links.values()):
            await link.ws.close()

    def kick(self, peer: str) -> None:
        """Something changed for `peer` (a new message, its presence, an accepted key): try now."""
        self.wake.setdefault(peer, asyncio.Event()).set()
        worker = self.workers.get(peer)
        if worker is None or worker.done():
            self.workers[peer] = self.tasks.spawn(self._deliver(peer), f"deliver to {peer}")

    def kick_if_waiting(self, peer: str) -> None:
        if peer in self.wake:
            self.wake[peer].set()

    def finish(self, msg: StoredMessage, state: MsgState, reason: str | None = None) -> None:
        """A message leaves the outbox: reported at once, its state written in the background.

        Should the process die before that write, the message is still queued on disk and is sent
        again; the recipient acknowledges the copy without showing it twice.
        """
        if self.outbox.settle(msg.peer, msg.id) is not None:
            self._record(msg, state, reason)

    def _record(self, msg: StoredMessage, state: MsgState, reason: str | None) -> None:
        self.store.set_state(msg.peer, msg.id, state, reason)
        self.emit(MessageState(id=msg.id, to=msg.recipient, state=state, reason=reason))

    async def _deliver(self, peer: str) -> None:
        """Deliver one recipient's queue in order, retrying with backoff until acked or expired."""
        wake = self.wake.setdefault(peer, asyncio.Event())
        while True:
            if not self.outbox.has(peer):
                self.outbox.drop_empty(peer)
                return
            wake.clear()
            noted = self.outbox.waiting_for(peer)
            for msg in self.outbox.expired(peer, now_ms()):
                self._record(msg, "failed", f"expired undelivered ({noted or 'no answer'})")
            name = self.outbox.recipient(peer)
            if name is None:
                continue
            wait_reason = await self._pump(peer, name, wake)
            if wait_reason is None:
                self.outbox.progressed(peer)
                continue
            if not self.outbox.has(peer):
                continue
            delay, news = self.outbox.wait(peer, wait_reason)
            if news:
                for msg in self.outbox.messages(peer):
                    self.emit(
                        MessageState(
                            id=msg.id, to=msg.recipient, state="queued", reason=wait_reason
                        )
                    )
            try:
                async with asyncio.timeout(delay):
                    await wake.wait()
            except TimeoutError:
                pass

    async def _connect(self, peer: str, name: str) -> tuple[PeerLink, Found] | str:
        """The recipient's live link, or why there cannot be one now ('' when its messages failed)."""
        try:
            found = await self.resolver.resolve(name)
        except RemoteError as exc:
            if exc.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_NAME):
                for msg in self.outbox.messages(peer):
                    self.finish(msg, "failed", f"unknown name: nobody is registered as {name}")
                return ""
            return f"seed refused the lookup ({exc.code})"
        except (SeedUnavailable, ConnectionLost):
            return "no seed reachable"
        key = found.record.key
        if not self.pins.holds(name, key):
            return "held: the recipient's key changed (accept it to send)"
        if not found.online:
            return "recipient offline"
        link = self.links.get(peer)
        if link is None or not link.alive or link.key != key:
            try:
                ws = await dial(found.record.endpoint, self.config.max_frame, timeout=3.0)
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                self.resolver.cache.forget(name)
                return f"recipient unreachable ({exc.__class__.__name__})"
            link = self.links[peer] = PeerLink(ws, key, self.tasks)
        return link, found

    async def _pump(self, peer: str, name: str, wake: asyncio.Event) -> str | None:
        """Keep up to a window of messages in flight, in order, until the queue is empty or the link fails.

        Returns None when it is worth going on at once, else why delivery must wait.
        """
        connected = await self._connect(peer, name)
        if isinstance(connected, str):
            return connected or None
        link, found = connected
        self.outbox.rewind(peer)
        trouble: list[str] = []

        def answered(msg: StoredMessage, fut: asyncio.Future[Ack | Error]) -> None:
            wake.set()
            if fut.cancelled():
                return
            if fut.exception() is not None:
                self.outbox.returned(peer, msg.id)
                trouble.append("connection to the recipient lost")
                return
            reply = fut.result()
            if isinstance(reply, Ack):
                self.finish(msg, "delivered")
            elif reply.code in RETRY_CODES:
                self.outbox.returned(peer, msg.id)
                trouble.append(f"recipient asks to retry ({reply.code}: {reply.message})")
            else:
                self.finish(
                    msg, "failed", f"refused by the recipient ({reply.code}: {reply.message})"
                )

        try:
            while self.outbox.has(peer) and not trouble:
                for msg in self.outbox.next_batch(peer):
                    fut = link.acks.expect(msg.id)
                    fut.add_done_callback(partial(answered, msg))
                    link.out.push(
                        self.boxes.seal(
                            found.record.key, msg.id, self.name, found.record.name, msg.ts, msg.text
                        )
                    )
                    self.emit(MessageState(id=msg.id, to=msg.recipient, state="sent"))
                if not self.outbox.in_flight(peer):
                    break
                wake.clear()
                try:
                    async with asyncio.timeout(self.config.ack_timeout):
                        await wake.wait()
                except TimeoutError:
                    self.resolver.cache.forget(name)
                    await link.ws.close()
                    return "no acknowledgement from the recipient"
        finally:
            for msg_id in self.outbox.in_flight_ids(peer):
                link.acks.forget(msg_id)
        if trouble:
            self.resolver.cache.forget(name)
            return trouble[0]
        return None
