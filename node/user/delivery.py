"""Delivery: one worker per recipient that picks a path, keeps a window in flight, and waits for acks.

The path: straight to the recipient's endpoint when it answers, else relayed through the seeds
(remembered per contact for a while), and as mail held by the mesh when the recipient is
offline. Every message stays in the outbox until an acknowledgement whose proof opens to it,
whichever path that ack took, so a lost relay frame or a lost mail item is sent again.
What to send and when is the outbox's call (outbox.py); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..clock import now_ms
from ..config import UserConfig
from ..crypto.boxes import Boxes
from ..crypto.keys import Identity
from ..crypto.signing import sign_mail
from ..errors import (
    ConnectionLost,
    ErrorCode,
    InternalError,
    ProtocolError,
    RemoteError,
    SeedUnavailable,
)
from ..runtime import Tasks, quiet_logger
from ..wire.correlator import Correlator
from ..wire.fastcodec import parse_direct
from ..wire.names import fold_name
from ..wire.protocol import CARRIED, RELAY_ENDPOINT, Ack, Acks, Deposit, Error, Found
from ..wire.sender import Sender
from ..wire.sockets import DIAL_FAILED, dial, frames
from .batching import OFFER, acks_of, chat_frames, negotiated
from .contacts import KeyPins, RecordBook
from .events import Event, MessageState, MsgPath, MsgState
from .outbox import CANCELLED, Outbox, key_changed, unknown_name
from .seed_client import SeedClient
from .store import StoredMessage, UserStore

log = quiet_logger("p2p.user.delivery")

# (copy, state, reason, path, to be written): a group copy's state (group_node.py)
GroupStateHook = Callable[[StoredMessage, MsgState, str | None, MsgPath | None, bool], None]

RETRY_CODES = (ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL)
STORED_RECHECK = 600.0  # seconds between tries while everything queued is held as mail
NOT_THE_RECIPIENT = "the endpoint did not answer as the recipient"  # relay at once, not later
DEPOSIT_AGAIN = 3600.0  # seconds after which a stored message is deposited again (idempotent)


class PeerLink:
    """Our outgoing socket to one peer's endpoint, and the answers awaited on it."""

    def __init__(self, ws: ClientConnection, key: str, tasks: Tasks) -> None:
        self.ws = ws
        self.key = key
        self.out = Sender(ws)
        self.acks: Correlator[Ack | Error] = Correlator()
        self.batched = negotiated(ws.subprotocol)  # r3: the endpoint takes `chats` frames
        self.reader = tasks.spawn(self._read(), f"peer link {ws.remote_address}")

    async def _read(self) -> None:
        try:
            async for raw in frames(self.ws):
                try:
                    frame = parse_direct(raw)
                except ProtocolError:
                    continue
                if isinstance(frame, Ack | Error):
                    self.acks.resolve(frame.id, frame)
                elif isinstance(frame, Acks):
                    for ack in acks_of(frame):
                        self.acks.resolve(ack.id, ack)
        except ConnectionClosed:
            pass
        finally:
            self.acks.close("connection to the recipient lost")

    @property
    def alive(self) -> bool:
        return not self.reader.done()


class Paths:
    """Which contacts answer only through the seeds, remembered for a while. No I/O."""

    def __init__(self, memory: float) -> None:
        self.memory = memory
        self.relay_since: dict[str, float] = {}

    def relay_only(self, folded: str, now: float) -> bool:
        since = self.relay_since.get(folded)
        return since is not None and now - since < self.memory

    def remember_relay(self, folded: str, now: float) -> None:
        self.relay_since[folded] = now

    def direct_works(self, folded: str) -> None:
        self.relay_since.pop(folded, None)


@dataclass
class Route:
    path: MsgPath
    found: Found
    link: PeerLink | None = None


class Delivery:
    """One worker per recipient with something queued, each running until its queue is empty."""

    def __init__(
        self,
        identity: Identity,
        name: str,
        config: UserConfig,
        outbox: Outbox,
        store: UserStore,
        boxes: Boxes,
        book: RecordBook,
        pins: KeyPins,
        seed: SeedClient,
        presence: dict[str, bool],
        emit: Callable[[Event], None],
    ) -> None:
        self.identity = identity
        self.name = name
        self.config = config
        self.outbox = outbox
        self.store = store
        self.boxes = boxes
        self.book = book
        self.pins = pins
        self.seed = seed
        self.presence = presence
        self.emit = emit
        self.paths = Paths(config.relay_memory)
        self.tasks = Tasks(log)
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.links: dict[str, PeerLink] = {}
        self.bogus_acks = 0
        # r3 groups: where a group copy's states go instead of the one-to-one history
        self.on_group_state: GroupStateHook | None = None

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

    def retry(self, peer: str) -> bool:
        """The user asks to try `peer`'s queue now: a fresh lookup, no backoff; False when empty."""
        name = self.outbox.recipient(peer)
        if name is None or not self.outbox.retry_now(peer):
            return False
        self.book.forget(name)
        self.kick(peer)
        return True

    def cancel(self, msg_id: str) -> StoredMessage | None:
        """The user gives up on a queued message: failed, "cancelled" (None: it was not queued)."""
        msg = self.outbox.cancel(msg_id)
        if msg is not None:
            self._record(msg, "failed", CANCELLED)
            self.kick_if_waiting(msg.peer)
        return msg

    def finish(
        self,
        msg: StoredMessage,
        state: MsgState,
        reason: str | None = None,
        code: str | None = None,
    ) -> None:
        """A message leaves the outbox: reported at once, its state written in the background.

        Should the process die before that write, the message is still queued on disk and is sent
        again; the recipient acknowledges the copy without showing it twice.
        """
        if self.outbox.settle(msg.peer, msg.id) is not None:
            self._record(msg, state, reason, code=code)

    def _record(
        self,
        msg: StoredMessage,
        state: MsgState,
        reason: str | None,
        path: MsgPath | None = None,
        code: str | None = None,
    ) -> None:
        if msg.envelope is not None and self.on_group_state is not None:
            self.on_group_state(msg, state, reason, path, True)
            return
        self.store.set_state(msg.peer, msg.id, state, reason)
        self.emit(
            MessageState(
                id=msg.id, to=msg.recipient, state=state, reason=reason, path=path, code=code
            )
        )

    def _report(
        self, msg: StoredMessage, state: MsgState, reason: str | None, path: MsgPath | None = None
    ) -> None:
        """A state shown, not written (sent, or queued with why)."""
        if msg.envelope is not None and self.on_group_state is not None:
            self.on_group_state(msg, state, reason, path, False)
            return
        self.emit(MessageState(id=msg.id, to=msg.recipient, state=state, reason=reason, path=path))

    # ------------------------------------------------------------------ acknowledgements, any path

    def acked(self, ack: Ack) -> bool:
        """An ack by any path: the message is delivered only if its proof opens to it."""
        msg = self.outbox.find(ack.id)
        if msg is None:
            return False
        key = self._recipient_key(msg)
        if key is None or not self.boxes.proof_holds(
            key, ack.proof, self.name, msg.id, msg.recipient
        ):
            self.bogus_acks += 1
            log.info("ignored an ack for %s whose proof does not open", msg.id)
            return False
        self.finish(msg, "delivered")
        self.kick_if_waiting(msg.peer)
        return True

    def _recipient_key(self, msg: StoredMessage) -> str | None:
        if msg.envelope is not None and msg.envelope.key:  # r3: the key the group lists
            return msg.envelope.key
        contact = self.store.contact(msg.recipient)
        if contact is not None and contact.key is not None:
            return contact.key
        found = self.book.get(msg.recipient, time.monotonic())
        return found.record.key if found is not None else None

    # ------------------------------------------------------------------ the worker

    async def _deliver(self, peer: str) -> None:
        """Deliver one recipient's queue, retrying with backoff until every message is acked or expired."""
        wake = self.wake.setdefault(peer, asyncio.Event())
        while True:
            if not self.outbox.has(peer):
                self.outbox.drop_empty(peer)
                return
            wake.clear()
            noted = (self.outbox.waiting_for(peer) or "no answer").removesuffix("; retrying")
            for msg in self.outbox.expired(peer, now_ms()):
                self._record(msg, "failed", f"expired undelivered ({noted})")
            name = self.outbox.recipient(peer)
            if name is None:
                await asyncio.sleep(0)  # a turn that waited for nothing still lets others run
                continue
            route = await self._route(peer, name)
            if isinstance(route, Route):
                pump = {
                    "direct": self._pump_direct,
                    "relay": self._pump_relay,
                    "mail": self._pump_mail,
                }
                wait_reason = await pump[route.path](peer, route, wake)
            else:
                wait_reason = route or None
            if wait_reason is None:
                self.outbox.progressed(peer)
                await asyncio.sleep(0)
                continue
            if not self.outbox.has(peer):
                continue
            delay, news = self.outbox.wait(peer, wait_reason)
            if self.outbox.all_stored(peer):
                delay = STORED_RECHECK  # held by the mesh: the recipient's return wakes us
            delay = min(delay, self.outbox.until_expiry(peer, now_ms()) / 1000)
            if news:
                for msg in self.outbox.messages(peer):
                    if msg.id not in self.outbox.queues[peer].stored:
                        self._report(msg, "queued", wait_reason)
            try:
                async with asyncio.timeout(delay):
                    await wake.wait()
            except TimeoutError:
                pass

    async def _route(self, peer: str, name: str) -> Route | str:
        """How to reach the recipient now, or why not."""
        try:
            found = await self._resolve(name)
        except RemoteError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return self._unknown(name)
            return f"the lookup of {name} failed: {exc.message}"
        except (SeedUnavailable, ConnectionLost):
            return "no seed reachable"
        key = found.record.key
        if not self.pins.holds(name, key):
            return key_changed(found.record.name)
        folded = fold_name(name)
        if not self.presence.get(folded, found.online):
            return Route("mail", found)
        now = time.monotonic()
        if found.record.endpoint == RELAY_ENDPOINT or self.paths.relay_only(folded, now):
            return Route("relay", found)
        link = self.links.get(peer)
        if link is None or not link.alive or link.key != key:
            try:
                ws = await dial(
                    found.record.endpoint,
                    self.config.max_frame,
                    timeout=self.config.direct_timeout,
                    **({"subprotocols": OFFER} if self.config.batch_chats else {}),
                )
            except DIAL_FAILED as exc:
                log.debug("%s's endpoint does not answer (%s): relaying", name, exc)
                self.paths.remember_relay(folded, now)
                return Route("relay", found)
            link = self.links[peer] = PeerLink(ws, key, self.tasks)
        return Route("direct", found, link)

    async def _resolve(self, name: str) -> Found:
        """The recipient's record; when no seed knows it, hand our seed our contacts' last records
        (a seed that lost its directory learns them again) and ask once more."""
        try:
            return await self.book.resolve(name)
        except RemoteError as exc:
            if exc.code != ErrorCode.NOT_FOUND or not await self.book.publish_contacts():
                raise
        return await self.book.resolve(name)

    def _unknown(self, name: str) -> str:
        """No seed knows the name: not final (it may register yet), so its messages wait, looked
        up again with backoff and at once when its presence says it came online, until they
        expire or the user cancels them."""
        if self.book.last_record(name) is None:
            return unknown_name(name)
        return "no seed knows the recipient yet"

    def _seal(self, msg: StoredMessage, found: Found) -> str:
        extra, key = None, found.record.key
        if msg.envelope is not None:  # r3: a group frame (docs/PROTOCOL.md, Groups), boxed for
            # the key the group lists: a name that changed hands cannot read the group
            extra = {"kind": "group", "group": json.loads(msg.envelope.part)}
            key = msg.envelope.key or key
        if msg.act is not None:  # r3: a reply, reaction, edit or delete (acts.py)
            extra = {**(extra or {}), "act": json.loads(msg.act)}
        return self.boxes.seal(key, msg.id, self.name, found.record.name, msg.ts, msg.text, extra)

    def _sent(self, msg: StoredMessage, path: MsgPath) -> None:
        self._report(msg, "sent", None, path)

    # ------------------------------------------------------------------ direct

    async def _pump_direct(self, peer: str, route: Route, wake: asyncio.Event) -> str | None:
        """Keep up to a window in flight on the recipient's endpoint until the queue is empty or the link fails.

        Returns None when it is worth going on at once, else why delivery must wait.
        """
        link, found = route.link, route.found
        if link is None:
            raise InternalError("a direct pump needs the route's link")
        self.outbox.rewind(peer)
        trouble: list[str] = []
        folded = fold_name(found.record.name)
        live = True  # answers wake the worker only while this pump waits for them

        def answered(msg: StoredMessage, fut: asyncio.Future[Ack | Error]) -> None:
            if live:
                wake.set()
            if fut.cancelled():
                return
            if fut.exception() is not None:
                self.outbox.returned(peer, msg.id)
                trouble.append("connection to the recipient lost")
                return
            reply = fut.result()
            if self.outbox.find(msg.id) is None:
                return  # settled meanwhile (acked by another path, cancelled, expired)
            if isinstance(reply, Ack):
                if not self.acked(reply):
                    # an endpoint that cannot prove it is the recipient is not the way to it
                    self.outbox.returned(peer, msg.id)
                    self.paths.remember_relay(folded, time.monotonic())
                    trouble.append(NOT_THE_RECIPIENT)
                else:
                    self.paths.direct_works(folded)
            elif reply.code in RETRY_CODES:
                self.outbox.returned(peer, msg.id)
                trouble.append(f"the recipient asks to try again later: {reply.message}")
            else:
                self.finish(msg, "failed", f"refused by the recipient: {reply.message}", reply.code)

        try:
            while self.outbox.has(peer):
                if not trouble:
                    sealed = []
                    for msg in self.outbox.next_batch(peer):
                        fut = link.acks.expect(msg.id)
                        fut.add_done_callback(partial(answered, msg))
                        sealed.append(self._seal(msg, found))
                        self._sent(msg, "direct")
                    for text in chat_frames(sealed) if link.batched else sealed:
                        link.out.push(text)
                # after a refusal nothing more is sent, but what is in flight is waited for: a
                # refusal comes at once, the acks of the chats taken before it only after their
                # commit, and dropping them would send those chats again (to be refused again)
                if not self.outbox.in_flight(peer):
                    break
                wake.clear()
                try:
                    async with asyncio.timeout(self.config.ack_timeout):
                        await wake.wait()
                except TimeoutError:
                    # closing fails what is in flight: those answers must not wake the worker
                    # either, or an endpoint that never answers is dialled again at once, forever
                    live = False
                    self.book.forget(found.record.name)
                    await link.ws.close()
                    return "no acknowledgement from the recipient"
        finally:
            live = False
            for msg_id in self.outbox.in_flight_ids(peer):
                link.acks.forget(msg_id)
        if trouble:
            # the answers that brought the trouble woke the worker: it must wait its backoff, or
            # a recipient asking it to slow down gets the whole window again at once
            wake.clear()
            self.book.forget(found.record.name)
            if trouble[0] == NOT_THE_RECIPIENT:
                return None  # try again at once, through the seeds
            return trouble[0]
        return None

    # ------------------------------------------------------------------ relay

    async def _pump_relay(self, peer: str, route: Route, wake: asyncio.Event) -> str | None:
        """Relay a window at a time through our seed; acks come back by relay (or any path).
        A message with no ack a while after the seed took it goes to mail."""
        found = route.found
        self.outbox.rewind(peer)
        trouble: list[str] = []
        to = found.record.name
        live = True  # as in the direct pump: late answers must not cut the backoff short

        async def relay_one(msg: StoredMessage) -> None:
            fid = uuid.uuid4().hex
            text = f'{{"type":"relay","id":"{fid}","to":"{to}","frame":{self._seal(msg, found)}}}'
            try:
                await self.seed.request_text(fid, text)
            except RemoteError as exc:
                self.outbox.returned(peer, msg.id)
                if exc.code == ErrorCode.OFFLINE:
                    self.presence[fold_name(to)] = False
                    trouble.append("recipient offline")
                else:
                    trouble.append(f"the seed refused the relay: {exc.message}")
            except (SeedUnavailable, ConnectionLost):
                self.outbox.returned(peer, msg.id)
                trouble.append("no seed reachable")
            else:
                if self.outbox.find(msg.id) is not None:
                    self.outbox.relayed(peer, msg.id, time.monotonic())
                    self._sent(msg, "relay")
            finally:
                if live:
                    wake.set()

        while self.outbox.has(peer) and not trouble:
            batch = self.outbox.next_batch(peer)
            for msg in batch:
                self.tasks.spawn(relay_one(msg), f"relay {msg.id}")
            if not self.outbox.in_flight(peer):
                break
            wake.clear()
            try:
                async with asyncio.timeout(
                    min(self.config.relay_ack_timeout, self.config.ack_timeout)
                ):
                    await wake.wait()
            except TimeoutError:
                pass
            late = self.outbox.overdue(peer, time.monotonic(), self.config.relay_ack_timeout)
            if late:
                live = False  # relays still in flight must not cut this backoff short either
                await self._deposit(peer, found, late)
                return "no acknowledgement yet; held by the mesh"
        live = False
        if trouble:
            wake.clear()
        return trouble[0] if trouble else None

    # ------------------------------------------------------------------ mail

    async def _pump_mail(self, peer: str, route: Route, wake: asyncio.Event) -> str | None:
        """The recipient is offline: the mesh holds the messages until it comes back."""
        pending = self.outbox.to_store(peer, time.monotonic(), DEPOSIT_AGAIN)
        problem = await self._deposit(peer, route.found, pending)
        return problem or "recipient offline; held by the mesh"

    async def _deposit(self, peer: str, found: Found, messages: list[StoredMessage]) -> str | None:
        """Deposit each message as a mail item signed by us; why not, when a deposit fails."""
        to = found.record.name
        for msg in messages:
            chat = CARRIED.validate_json(self._seal(msg, found))
            item = sign_mail(self.identity, to, self.name, chat, now_ms())
            try:
                await self.seed.send(Deposit(type="deposit", id=uuid.uuid4().hex, item=item))
            except RemoteError as exc:
                if exc.code == ErrorCode.QUOTA:
                    return f"the mesh holds no more mail for {to} now ({exc.message})"
                if exc.code == ErrorCode.NOT_FOUND:
                    await self.book.publish_contacts()
                return f"the seed refused the mail: {exc.message}"
            except (SeedUnavailable, ConnectionLost):
                return "no seed reachable"
            if self.outbox.stored(peer, msg.id, time.monotonic()):
                self._record(msg, "stored", None, "mail")
        return None
