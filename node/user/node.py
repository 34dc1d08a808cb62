"""The user node: one async API for the terminal UI and the headless client.

`async with UserNode(config) as node:` registers through the seed mesh, serves the direct endpoint,
and delivers messages end-to-end encrypted; everything a UI shows comes out of `node.subscribe()`
as typed events. This class wires the parts together (seed client, outbox and delivery, inbox,
contacts, store) and holds no protocol logic of its own.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from websockets.asyncio.server import Server, serve

from ..clock import now_ms
from ..config import UserConfig
from ..crypto.boxes import Boxes
from ..crypto.keys import Identity, fingerprint
from ..crypto.signing import sign_record
from ..errors import ErrorCode, InvalidInput
from ..runtime import Service
from ..storage.files import default_data_dir, secure_dir
from ..wire.names import fold_name, require_name
from ..wire.protocol import MAX_TEXT, Found, Presence, Record
from ..wire.sockets import SERVER_OPTIONS, listen_url
from .contacts import KeyPins, RecordCache
from .delivery import Delivery, Resolver
from .events import (
    ConnState,
    ContactAdded,
    ContactRemoved,
    ErrorEvent,
    Event,
    EventStream,
    MessageQueued,
    MessageReceived,
    NameRegistered,
    PresenceChanged,
    SeedStatus,
)
from .inbox import Inbox
from .outbox import Outbox
from .seed_client import SeedClient
from .store import Contact, StoredMessage, UserStore

log = logging.getLogger("p2p.user")

WINDOW = 256
RECORD_TTL = 60.0  # seconds a resolved record is trusted before asking the seed again
RETRY_FIRST = 0.5


class UserNode(Service):
    def __init__(self, config: UserConfig, embedded_seeds: set[str] | None = None) -> None:
        self.config = config
        self.name: str = require_name(config.name)
        self.folded = fold_name(self.name)
        self.subscribers: list[EventStream] = []
        self.server: Server | None = None
        self.endpoint = ""
        self.embedded_seeds = embedded_seeds or set()
        self.fatal: ErrorEvent | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        cfg = self.config
        self.data_dir: Path = cfg.data_dir or default_data_dir("users", self.folded)
        secure_dir(self.data_dir)
        self.identity = Identity.load_or_create(self.data_dir)
        self.boxes = Boxes(self.identity)
        self.store = UserStore(self.data_dir / "user.sqlite3")
        self.store.start()
        self.seed = SeedClient(
            cfg.seeds,
            make_record=self._make_record,
            on_registered=self._on_registered,
            on_presence=self._on_presence,
            on_status=self._on_status,
            on_fatal=self._on_fatal,
        )
        self.seed.embedded = set(self.embedded_seeds)
        self.pins = KeyPins(self.store, self.emit)
        self.resolver = Resolver(self.seed, RecordCache(RECORD_TTL))
        self.outbox = Outbox(WINDOW, int(cfg.expire_after * 1000), RETRY_FIRST, cfg.retry_max)
        self.delivery = Delivery(
            self.name, cfg, self.outbox, self.store, self.boxes, self.resolver, self.pins, self.emit
        )
        self.inbox = Inbox(
            self.name,
            self.boxes,
            self.resolver,
            self.pins,
            self.store,
            on_new_sender=self._new_sender,
            emit=self.emit,
        )
        self.server = await serve(
            self.inbox.serve, cfg.host, cfg.port, max_size=cfg.max_frame, **SERVER_OPTIONS
        )
        self.endpoint = cfg.advertise or listen_url(self.server, cfg.host)[1]
        for msg in self.store.pending():
            self.outbox.add(msg)
        self.seed.watch(c.name for c in self.store.contacts())
        self.seed.watch(r for peer in self.outbox.peers() if (r := self.outbox.recipient(peer)))
        self.seed.start()
        for peer in self.outbox.peers():
            self.delivery.kick(peer)
        log.info("user %s serving %s (key %s)", self.name, self.endpoint, self.identity.fingerprint)

    async def stop(self) -> None:
        await self.delivery.stop()
        await self.seed.stop()
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

    async def _make_record(self) -> Record:
        seq = await self.store.next_seq(now_ms())
        return sign_record(self.identity, self.name, self.endpoint, seq)

    def _on_registered(self, seed: str, url: str) -> None:
        self.emit(NameRegistered(name=self.name, seed=seed, url=url, endpoint=self.endpoint))

    def _on_status(self, state: ConnState, home: str | None, detail: str) -> None:
        self.emit(SeedStatus(state=state, home=home, seeds=self.seed.seed_states(), detail=detail))

    def _on_fatal(self, code: ErrorCode, message: str) -> None:
        self.fatal = ErrorEvent(
            code=code, message=f"cannot register {self.name}: {message}", name=self.name
        )
        self.emit(self.fatal)

    def _on_presence(self, frame: Presence) -> None:
        self.emit(
            PresenceChanged(
                name=frame.name, online=frame.online, seed=frame.seed, last_seen=frame.last_seen
            )
        )
        if frame.online:
            folded = fold_name(frame.name)
            if folded in self.delivery.wake:
                self.resolver.cache.forget(frame.name)  # it may have a new endpoint
                self.delivery.kick_if_waiting(folded)

    # ------------------------------------------------------------------ contacts and seeds

    def contacts(self) -> list[Contact]:
        return self.store.contacts()

    def add_contact(self, name: str, new: bool = False) -> bool:
        """Add a contact and follow its presence; False when it was one already. Never waits on a seed."""
        require_name(name)
        added = self.store.add_contact(name, now_ms(), new=new)
        if added:
            self.emit(ContactAdded(name=name, new=new))
        self.seed.watch([name])
        return added

    def _new_sender(self, name: str) -> None:
        """Someone who is not a contact wrote: a contact now, marked new until the user looks."""
        self.add_contact(name, new=True)

    def remove_contact(self, name: str) -> bool:
        removed = self.store.remove_contact(name)
        if removed:
            self.seed.unwatch(name)
            self.emit(ContactRemoved(name=name))
        return removed

    def add_seed(self, url: str) -> None:
        self.seed.add_seed(url)
        self._on_status(self.seed.state, self.seed.home_name, f"added {url}")

    async def lookup(self, name: str) -> Found:
        return await self.seed.lookup(name)

    def accept_key(self, name: str) -> str | None:
        """The user trusts a contact's new key: pin it and let traffic flow again."""
        key = self.store.accept_key(name)
        if key is not None:
            self.delivery.kick_if_waiting(fold_name(name))
        return key

    def mark_seen(self, name: str) -> None:
        self.store.mark_seen(name)

    def history(
        self, peer: str, before: int | None = None, limit: int = 100
    ) -> list[StoredMessage]:
        return self.store.history(peer, before, limit)

    def unshown(self) -> list[MessageReceived]:
        """Messages stored but perhaps never shown by a consumer outside the history (the headless client).

        A message is acknowledged once stored, and its event is emitted after that: a process killed
        in between never shows it. A consumer that calls `mark_shown(event.n)` after showing each one
        gets those back here on its next start, as `replayed` events (the first call starts the mark).
        """
        return [
            MessageReceived(
                id=m.id, from_=m.sender, to=m.recipient, ts=m.ts, text=m.text, n=m.n, replayed=True
            )
            for m in self.store.unshown()
        ]

    def mark_shown(self, n: int) -> None:
        self.store.mark_shown(n)

    # ------------------------------------------------------------------ sending

    async def send(self, to: str, text: str) -> str:
        """Queue a message and return its id once it is durable; delivery goes on in the background.

        Nothing here waits on a seed. Delivery may start before the outbox write is committed: a
        crash in between loses nothing the caller was told about, since `send` had not returned.
        """
        require_name(to)
        if fold_name(to) == self.folded:
            raise InvalidInput("you cannot send a message to yourself")
        if len(text) > MAX_TEXT:
            raise InvalidInput(
                f"a message holds at most {MAX_TEXT} characters (this one has {len(text)})"
            )
        if not text:
            raise InvalidInput("an empty message is not sent")
        if self.store.contact(to) is None:
            self.add_contact(to)
        msg = StoredMessage.new_outgoing(str(uuid.uuid4()), self.name, to, now_ms(), text)
        durable = self.store.add_message(msg)
        self.outbox.add(msg)
        self.delivery.kick(msg.peer)
        self.emit(
            MessageQueued(id=msg.id, to=to, state="queued", from_=self.name, ts=msg.ts, text=text)
        )
        await durable
        return msg.id

    def pending_count(self) -> int:
        return self.outbox.pending_count()

    # ------------------------------------------------------------------ for the terminal client
    # read markers, blocks, verification, search and paging around a message: what a chat
    # screen needs beyond the events; each is a thin call into the store or the key pins

    def my_fingerprint(self) -> str:
        """This user's key fingerprint, to read out to a contact who compares it."""
        return fingerprint(self.identity.key)

    def contact(self, name: str) -> Contact | None:
        return self.store.contact(name)

    def unread(self) -> dict[str, int]:
        """Incoming messages after each contact's read marker, by folded name; kept across restarts."""
        return self.store.unread()

    def mark_read(self, name: str, n: int) -> None:
        """The user has seen the conversation with `name` up to message number `n`."""
        self.store.mark_read(name, n)

    def block(self, name: str) -> bool:
        """Refuse `name`'s messages before they are stored, and drop it from the contacts.

        False when it was blocked already. A blocked name writing gets an error it can show
        ("does not accept messages from you"), and never becomes a contact.
        """
        require_name(name)
        added = self.store.block(name, now_ms())
        self.remove_contact(name)
        return added

    def unblock(self, name: str) -> bool:
        return self.store.unblock(name)

    def blocked(self) -> list[str]:
        return self.store.blocked()

    def is_blocked(self, name: str) -> bool:
        return self.store.is_blocked(name)

    async def verify(self, name: str) -> str:
        """Mark a contact's pinned key as verified; the fingerprint of that key.

        A contact without a pinned key yet has it looked up (and pinned) first, so this may raise
        RemoteError, SeedUnavailable or ConnectionLost; InvalidInput when there is nothing to verify.
        """
        contact = self.store.contact(name)
        if contact is None:
            raise InvalidInput(f"{name} is not a contact (/add {name} first)")
        if contact.changed_key is not None:
            raise InvalidInput(f"{contact.name}'s key changed: /accept {contact.name} first")
        key = contact.key
        if key is None:
            found = await self.resolver.resolve(name)
            if not self.pins.holds(name, found.record.key):
                raise InvalidInput(f"{contact.name}'s key changed: /accept {contact.name} first")
            key = found.record.key
        self.store.set_verified(name, True)
        return fingerprint(key)

    def unverify(self, name: str) -> bool:
        contact = self.store.contact(name)
        if contact is None or not contact.verified:
            return False
        self.store.set_verified(name, False)
        return True

    def search(self, peer: str, text: str, limit: int = 50) -> list[StoredMessage]:
        """Messages with `peer` holding `text`, newest first, from the whole history on disk."""
        return self.store.search(peer, text, limit)

    def history_around(self, peer: str, n: int, limit: int = 100) -> list[StoredMessage]:
        """A page of history with message `n` in its middle (to jump to a search hit)."""
        return self.store.history_around(peer, n, limit)

    def history_after(self, peer: str, after: int, limit: int = 100) -> list[StoredMessage]:
        """The page of history just after message `after` (paging down from a search hit)."""
        return self.store.history_after(peer, after, limit)
