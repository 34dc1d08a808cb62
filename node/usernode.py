"""The user node: one async API for the terminal UI and the headless client.

`async with UserNode(config) as node:` registers through the seed mesh, serves the direct endpoint,
and delivers messages end-to-end encrypted; everything a UI shows comes out of `node.subscribe()`
as typed events. Outgoing messages live in the on-disk outbox until acknowledged or expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from functools import partial
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .boxes import Boxes
from .config import UserConfig, default_data_dir
from .errors import IdentityError, ProtocolError, RemoteError, SeedUnavailable
from .events import (
    ContactAdded,
    ContactRemoved,
    ErrorEvent,
    Event,
    KeyChanged,
    MessageReceived,
    MessageState,
    PresenceChanged,
    Registered,
    SeedStatus,
)
from .identity import Identity, fingerprint, secure_dir
from .protocol import (
    DIRECT,
    MAX_TEXT,
    Ack,
    Chat,
    Error,
    Found,
    Presence,
    Record,
    dump,
    error_frame,
    name_key,
    parse,
    require_name,
)
from .seedclient import SeedClient
from .sender import Sender
from .userstore import Contact, StoredMessage, UserStore
from .wire import SERVER_OPTIONS, Service, dial, frames, listen_url, now_ms

log = logging.getLogger("p2p.user")

WINDOW = 256
RECORD_TTL = 60.0  # seconds a resolved record is trusted before asking the seed again


class EventStream:
    """One subscriber's queue of events; iterate it with `async for`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def __aiter__(self):
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()

    async def next(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)


class PeerLink:
    """Our outgoing socket to one peer's endpoint, and the acks awaited on it."""

    def __init__(self, ws, key: str) -> None:
        self.ws = ws
        self.key = key
        self.out = Sender(ws)
        self.acks: dict[str, asyncio.Future[str | None]] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in frames(self.ws):
                try:
                    frame = parse(DIRECT, raw)
                except ProtocolError:
                    continue
                fut = self.acks.pop(frame.id or "", None) if isinstance(frame, Ack | Error) else None
                if fut is not None and not fut.done():
                    fut.set_result(None if isinstance(frame, Ack) else f"{frame.code}: {frame.message}")
        except ConnectionClosed:
            pass
        finally:
            for fut in self.acks.values():
                if not fut.done():
                    fut.set_exception(ConnectionResetError("connection to peer lost"))
                    fut.exception()  # mark retrieved: a waiter, if any, still sees it
            self.acks.clear()

    @property
    def alive(self) -> bool:
        return not self.reader.done()


class UserNode(Service):
    def __init__(self, config: UserConfig, embedded_seeds: set[str] | None = None) -> None:
        self.config = config
        self.name: str = require_name(config.name)
        self.key_name = name_key(config.name)
        self.subscribers: list[EventStream] = []
        self.outbox: dict[str, dict[str, StoredMessage]] = {}  # recipient key -> id -> message, in order
        self.unsent: dict[str, deque[StoredMessage]] = {}  # what the running pump has yet to send
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.links: dict[str, PeerLink] = {}
        self.records: dict[str, tuple[Found, float]] = {}
        self.server: Server | None = None
        self.endpoint = ""
        self.embedded_seeds = embedded_seeds or set()
        self.fatal: ErrorEvent | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        cfg = self.config
        self.data_dir: Path = cfg.data_dir or default_data_dir("users", self.key_name)
        secure_dir(self.data_dir)
        self.identity = Identity.load_or_create(self.data_dir)
        self.boxes = Boxes(self.identity)
        self.store = UserStore(self.data_dir / "user.sqlite3")
        self.store.start()
        self.server = await serve(self._direct, cfg.host, cfg.port, max_size=cfg.max_frame, **SERVER_OPTIONS)
        self.endpoint = cfg.advertise or listen_url(self.server, cfg.host)[1]
        self.seed = SeedClient(
            cfg.seeds,
            make_record=self._make_record,
            on_registered=self._on_registered,
            on_presence=self._on_presence,
            on_status=self._on_status,
            on_fatal=self._on_fatal,
        )
        self.seed.embedded = set(self.embedded_seeds)
        for msg in self.store.pending():
            self.outbox.setdefault(msg.peer, {})[msg.id] = msg
        self.seed.watching.update(c.name for c in self.store.contacts())
        self.seed.watching.update(next(iter(q.values())).recipient for q in self.outbox.values())
        self.seed.start()
        for peer in list(self.outbox):
            self._kick(peer)
        log.info("user %s serving %s (key %s)", self.name, self.endpoint, self.identity.fingerprint)

    async def stop(self) -> None:
        for task in self.workers.values():
            task.cancel()
        await asyncio.gather(*self.workers.values(), return_exceptions=True)
        await self.seed.stop()
        for link in list(self.links.values()):
            await link.ws.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.store.close()

    def subscribe(self) -> EventStream:
        stream = EventStream()
        self.subscribers.append(stream)
        return stream

    def emit(self, event: Event) -> None:
        for stream in self.subscribers:
            stream.queue.put_nowait(event)

    # ------------------------------------------------------------------ seed callbacks

    def _make_record(self) -> Record:
        return self.identity.sign_record(self.name, self.endpoint, self.store.next_seq(now_ms()))

    def _on_registered(self, seed: str, url: str) -> None:
        self.emit(Registered(name=self.name, seed=seed, url=url, endpoint=self.endpoint))

    def _on_status(self, state, home, detail) -> None:
        self.emit(SeedStatus(state=state, home=home, seeds=self.seed.seed_states(), detail=detail))

    def _on_fatal(self, code: str, message: str) -> None:
        self.fatal = ErrorEvent(code=code, message=f"cannot register {self.name}: {message}", name=self.name)
        self.emit(self.fatal)

    def _on_presence(self, frame: Presence) -> None:
        event = PresenceChanged(name=frame.name, online=frame.online, seed=frame.seed, last_seen=frame.last_seen)
        key = name_key(frame.name)
        self.emit(event)
        if frame.online and key in self.wake:
            self.records.pop(key, None)  # it may have a new endpoint
            self.wake[key].set()

    # ------------------------------------------------------------------ contacts and seeds

    def contacts(self) -> list[Contact]:
        return self.store.contacts()

    async def add_contact(self, name: str, new: bool = False) -> bool:
        require_name(name)
        added = self.store.add_contact(name, now_ms(), new=new)
        if added:
            self.emit(ContactAdded(name=name, new=new))
        await self.watch([name])
        return added

    async def remove_contact(self, name: str) -> bool:
        removed = self.store.remove_contact(name)
        if removed:
            self.seed.watching.discard(name)
            self.emit(ContactRemoved(name=name))
        return removed

    async def watch(self, names: list[str]) -> None:
        try:
            await self.seed.watch(names)
        except (SeedUnavailable, ConnectionError, RemoteError) as exc:
            log.debug("watch deferred: %s", exc)  # re-sent on the next registration

    async def add_seed(self, url: str) -> None:
        self.seed.add_seed(url)
        self._on_status(self.seed.state, self.seed.home_name, f"added {url}")

    async def lookup(self, name: str) -> Found:
        return await self.seed.lookup(name)

    async def accept_key(self, name: str) -> str | None:
        """The user trusts a contact's new key: pin it and let traffic flow again."""
        key = self.store.accept_key(name)
        if key is not None and name_key(name) in self.wake:
            self.wake[name_key(name)].set()
        return key

    def mark_seen(self, name: str) -> None:
        self.store.mark_seen(name)

    def history(self, peer: str, before: int | None = None, limit: int = 100) -> list[StoredMessage]:
        return self.store.history(peer, before, limit)

    def unshown(self) -> list[MessageReceived]:
        """Messages stored but perhaps never shown by a consumer outside the history (the headless client).

        A message is acknowledged once stored, and its event is emitted after that: a process killed
        in between never shows it. A consumer that calls `mark_shown(event.n)` after showing each one
        gets those back here on its next start, as `replayed` events (the first call starts the mark).
        """
        return [MessageReceived(id=m.id, from_=m.sender, to=m.recipient, ts=m.ts, text=m.text, n=m.n, replayed=True)
                for m in self.store.unshown()]

    def mark_shown(self, n: int) -> None:
        self.store.mark_shown(n)

    def _key_ok(self, name: str, key: str) -> bool:
        """Pin the first key seen for a contact; a different one later stops traffic until accepted."""
        contact = self.store.contact(name)
        if contact is None:
            return True
        if contact.key is None:
            self.store.pin(name, key)
            return True
        if contact.key == key:
            return True
        if contact.changed_key != key:
            self.store.set_changed_key(name, key)
            self.emit(KeyChanged(
                name=contact.name, old_fingerprint=fingerprint(contact.key), new_fingerprint=fingerprint(key),
                message=f"{contact.name}'s key changed; messages to and from {contact.name} are held "
                "until you accept the new key (/accept NAME)",
            ))
        return False

    # ------------------------------------------------------------------ sending

    async def send(self, to: str, text: str) -> str:
        """Queue a message and return its id once it is durable; delivery goes on in the background.

        Delivery may start before the outbox write is committed: a crash in between loses nothing
        the caller was told about, since `send` had not returned.
        """
        require_name(to)
        if name_key(to) == self.key_name:
            raise IdentityError("you cannot send a message to yourself")
        if len(text) > MAX_TEXT:
            raise IdentityError(f"a message holds at most {MAX_TEXT} characters (this one has {len(text)})")
        if not text:
            raise IdentityError("an empty message is not sent")
        if self.store.contact(to) is None:
            await self.add_contact(to)
        msg_id, ts = str(uuid.uuid4()), now_ms()
        durable = self.store.add_outgoing(msg_id, self.name, to, ts, text)
        msg = StoredMessage(0, name_key(to), msg_id, True, self.name, to, ts, text, "queued", None)
        self._enqueue(msg)
        self.emit(MessageState(id=msg_id, to=to, state="queued"))
        await durable
        return msg_id

    def _enqueue(self, msg: StoredMessage) -> None:
        self.outbox.setdefault(msg.peer, {})[msg.id] = msg
        unsent = self.unsent.get(msg.peer)
        if unsent is not None:
            unsent.append(msg)
        self._kick(msg.peer)

    def pending_count(self) -> int:
        return sum(len(q) for q in self.outbox.values())

    def _kick(self, peer: str) -> None:
        self.wake.setdefault(peer, asyncio.Event()).set()
        worker = self.workers.get(peer)
        if worker is None or worker.done():
            self.workers[peer] = asyncio.ensure_future(self._deliver(peer))

    def _finish(self, msg: StoredMessage, state: str, reason: str | None = None) -> None:
        """A message leaves the outbox: reported at once, its state written in the background.

        Should the process die before that write, the message is still queued on disk and is sent
        again; the recipient acknowledges the copy without showing it twice.
        """
        queue = self.outbox.get(msg.peer)
        if queue is not None:
            queue.pop(msg.id, None)
        self.store.set_state(msg.peer, msg.id, state, reason)
        self.emit(MessageState(id=msg.id, to=msg.recipient, state=state, reason=reason))

    async def _deliver(self, peer: str) -> None:
        """Deliver one recipient's queue in order, retrying with backoff until acked or expired."""
        delay = 0.5
        wake = self.wake.setdefault(peer, asyncio.Event())
        noted: str | None = None
        while True:
            queue = self.outbox.get(peer)
            if not queue:
                self.outbox.pop(peer, None)
                return
            wake.clear()
            expiry = now_ms() - int(self.config.expire_after * 1000)
            for msg in [m for m in queue.values() if m.ts < expiry]:
                self._finish(msg, "failed", f"expired undelivered ({noted or 'no answer'})")
            if not queue:
                continue
            name = next(iter(queue.values())).recipient
            wait_reason = await self._pump(peer, name, queue, wake)
            if wait_reason is None:
                delay = 0.5
                continue
            if wait_reason != noted:
                noted = wait_reason
                for msg in list(queue.values()):
                    self.emit(MessageState(id=msg.id, to=msg.recipient, state="queued", reason=wait_reason))
            try:
                async with asyncio.timeout(delay):
                    await wake.wait()
            except TimeoutError:
                pass
            delay = min(delay * 2, self.config.retry_max)

    async def _connect(self, peer: str, name: str) -> tuple[PeerLink, Found] | str:
        """The recipient's live link, or why there cannot be one now."""
        try:
            found = await self._resolve(name)
        except RemoteError as exc:
            if exc.code in ("not_found", "invalid_name"):
                for msg in list(self.outbox.get(peer, {}).values()):
                    self._finish(msg, "failed", f"unknown name: nobody is registered as {name}")
                return ""
            return f"seed refused the lookup ({exc.code})"
        except (SeedUnavailable, ConnectionError):
            return "no seed reachable"
        key = found.record.key
        if not self._key_ok(name, key):
            return "held: the recipient's key changed (accept it to send)"
        if not found.online:
            return "recipient offline"
        link = self.links.get(peer)
        if link is None or not link.alive or link.key != key:
            try:
                ws = await dial(found.record.endpoint, self.config.max_frame, timeout=3.0)
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                self.records.pop(peer, None)
                return f"recipient unreachable ({exc.__class__.__name__})"
            link = self.links[peer] = PeerLink(ws, key)
        return link, found

    async def _pump(self, peer: str, name: str, queue: dict[str, StoredMessage], wake: asyncio.Event) -> str | None:
        """Keep up to WINDOW messages in flight, in order, until the queue is empty or the link fails.

        Returns None when it is worth going on at once, else why delivery must wait.
        """
        connected = await self._connect(peer, name)
        if isinstance(connected, str):
            return connected or None
        link, found = connected
        unsent = self.unsent[peer] = deque(queue.values())
        inflight: dict[str, StoredMessage] = {}
        trouble: list[str] = []

        def acked(msg: StoredMessage, fut: asyncio.Future[str | None]) -> None:
            inflight.pop(msg.id, None)
            wake.set()
            if fut.exception() is not None:
                trouble.append("connection to the recipient lost")
                return
            refusal = fut.result()
            if refusal is None:
                self._finish(msg, "delivered")
            elif refusal.startswith(("rate_limited", "internal")):
                trouble.append(f"recipient asks to retry ({refusal})")
            else:
                self._finish(msg, "failed", f"refused by the recipient ({refusal})")

        try:
            while queue and not trouble:
                while unsent and len(inflight) < WINDOW:
                    msg = unsent.popleft()
                    if msg.id not in queue or msg.id in inflight:
                        continue
                    fut = asyncio.get_running_loop().create_future()
                    link.acks[msg.id] = fut
                    inflight[msg.id] = msg
                    fut.add_done_callback(partial(acked, msg))
                    link.out.push(self.boxes.seal(found.record.key, msg.id, self.name, found.record.name, msg.ts, msg.text))
                    self.emit(MessageState(id=msg.id, to=msg.recipient, state="sent"))
                if not inflight:
                    break
                wake.clear()
                try:
                    async with asyncio.timeout(self.config.ack_timeout):
                        await wake.wait()
                except TimeoutError:
                    self.records.pop(peer, None)
                    await link.ws.close()
                    return "no acknowledgement from the recipient"
        finally:
            self.unsent.pop(peer, None)
            for msg_id in inflight:
                link.acks.pop(msg_id, None)
        if trouble:
            self.records.pop(peer, None)
            return trouble[0]
        return None

    async def _resolve(self, name: str) -> Found:
        key = name_key(name)
        cached = self.records.get(key)
        if cached is not None and time.monotonic() - cached[1] < RECORD_TTL:
            return cached[0]
        found = await self.seed.lookup(name)
        self.records[key] = (found, time.monotonic())
        return found

    # ------------------------------------------------------------------ receiving

    async def _direct(self, ws: ServerConnection) -> None:
        out = Sender(ws)
        try:
            async for raw in frames(ws):
                try:
                    frame = parse(DIRECT, raw)
                    if not isinstance(frame, Chat):
                        raise ProtocolError("bad_request", "this endpoint accepts only chat frames", frame.id)
                    await self._receive(out, frame)
                except ProtocolError as exc:
                    out.push(error_frame(exc.code, exc.message, exc.frame_id))
        except ConnectionClosed:
            pass

    async def _receive(self, out: Sender, chat: Chat) -> None:
        if name_key(chat.to) != self.key_name:
            raise ProtocolError("bad_box", f"this endpoint is {self.name}, not {chat.to}", chat.id)
        try:
            found = await self._resolve(chat.from_)
        except RemoteError:
            raise ProtocolError("bad_box", f"the sender {chat.from_!r} is not registered", chat.id) from None
        except (SeedUnavailable, ConnectionError):
            raise ProtocolError("internal", "cannot resolve the sender now; retry", chat.id) from None
        try:
            inner = self.boxes.open(found.record.key, chat)
        except ProtocolError:
            self.records.pop(name_key(chat.from_), None)  # a stale cache? ask the seed once more
            found = await self._resolve(chat.from_)
            inner = self.boxes.open(found.record.key, chat)
        if self.store.contact(chat.from_) is None:
            await self.add_contact(found.record.name, new=True)
        if not self._key_ok(chat.from_, found.record.key):
            raise ProtocolError("bad_box", f"{self.name} holds messages from {chat.from_}: its key changed", chat.id)
        stored = self.store.add_incoming(inner.id, found.record.name, self.name, inner.ts, inner.text)
        sender = found.record.name

        def ack(fut: asyncio.Future[int]) -> None:
            """Acknowledge once stored (copies too); only a message stored for the first time is shown."""
            if fut.cancelled() or fut.exception() is not None:
                out.push(error_frame("internal", f"could not store the message: {fut.exception()}", chat.id))
                return
            out.push(dump(Ack(type="ack", id=chat.id)))
            if n := fut.result():
                self.emit(MessageReceived(id=inner.id, from_=sender, to=self.name, ts=inner.ts, text=inner.text, n=n))

        stored.add_done_callback(ack)
