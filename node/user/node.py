"""The user node: one async API for the terminal UI and the headless client.

`async with UserNode(config) as node:` registers through the seed mesh, serves the direct endpoint,
and delivers messages end-to-end encrypted; everything a UI shows comes out of `node.subscribe()`
as typed events. This class wires the parts together (seed client, outbox and delivery, inbox,
contacts, store) and holds no protocol logic of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from websockets.asyncio.server import Server

from ..clock import now_ms
from ..config import UserConfig
from ..crypto.boxes import Boxes
from ..crypto.keys import Identity, fingerprint
from ..crypto.signing import sign_record, sign_session
from ..errors import ConnectionLost, ErrorCode, InvalidInput, RemoteError, SeedUnavailable
from ..runtime import LogLimiter, Service, quiet_logger, quiet_loop_errors, raise_file_limit
from ..storage.files import default_data_dir, secure_dir
from ..wire.limits import RateLimit
from ..wire.names import fold_name, require_name
from ..wire.protocol import MAX_TEXT, RELAY_ENDPOINT, Found, Presence, Record, SessionAuth
from ..wire.sockets import SERVER_OPTIONS, AddressGate, gated, listen, listen_url, shut
from .act_node import ActNode, Target
from .acts import Act, ActType, dump, fallback, load, make, shown_text
from .batching import OFFER
from .contacts import KeyPins, RecordBook
from .control import ControlSocket
from .delivery import Delivery
from .events import (
    ConnState,
    ContactAdded,
    ContactRemoved,
    ErrorEvent,
    Event,
    EventStream,
    MessageQueued,
    MessageReceived,
    MessageState,
    MsgState,
    NameRegistered,
    PresenceChanged,
    SeedStatus,
    SessionReplaced,
)
from .group_node import GroupNode
from .groups import Member
from .inbox import Inbox
from .outbox import Outbox
from .seed_client import SeedCallbacks, SeedClient, first_answering
from .status import StatusFilter
from .store import Contact, StoredMessage, UserStore, unique_match

log = quiet_logger("p2p.user")

WINDOW = 256
RECORD_TTL = 60.0  # seconds a verified lookup answer is used before asking the seed again
RETRY_FIRST = 0.5
RETRYING = "retrying now (/cancel to give up)"


class UserNode(Service):
    def __init__(self, config: UserConfig, embedded_seeds: set[str] | None = None) -> None:
        self.config = config
        self.name: str = require_name(config.name)
        self.folded = fold_name(self.name)
        self.subscribers: list[EventStream] = []
        self.server: Server | None = None
        self.inbox: Inbox
        self.endpoint = ""
        self.embedded_seeds = embedded_seeds or set()
        self.fatal: ErrorEvent | None = None
        self.status_filter = StatusFilter()
        self.control: ControlSocket | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        cfg = self.config
        raise_file_limit()
        quiet_loop_errors(asyncio.get_running_loop(), LogLimiter())
        self.data_dir: Path = cfg.data_dir or default_data_dir("users", self.folded)
        secure_dir(self.data_dir)
        self.identity = Identity.load_or_create(self.data_dir)
        self.boxes = Boxes(self.identity)
        self.store = UserStore(self.data_dir / "user.sqlite3")
        self.store.start()
        self.presence: dict[str, bool] = {}
        self.seed = SeedClient(
            cfg.seeds,
            SeedCallbacks(
                make_record=self._make_record,
                sign_session=self._sign_session,
                on_registered=self._on_registered,
                on_presence=self._on_presence,
                on_relayed=lambda relayed: self.inbox.on_relayed(relayed),
                on_mail=lambda items: self.inbox.on_mail(items),
                on_status=self._on_status,
                on_fatal=self._on_fatal,
                on_replaced=self._on_replaced,
            ),
            return_every=cfg.retry_max,
        )
        self.seed.embedded = set(self.embedded_seeds)
        self.pins = KeyPins(self.store, self.emit)
        inbound = RateLimit(cfg.inbound_lookup_rate, cfg.inbound_lookup_burst, time.monotonic())
        self.book = RecordBook(self.seed, self.store, RECORD_TTL, inbound, self.emit)
        self.outbox = Outbox(WINDOW, int(cfg.expire_after * 1000), RETRY_FIRST, cfg.retry_max)
        self.delivery = Delivery(
            self.identity,
            self.name,
            cfg,
            self.outbox,
            self.store,
            self.boxes,
            self.book,
            self.pins,
            self.seed,
            self.presence,
            self.emit,
        )
        self.inbox = Inbox(
            self.identity,
            self.name,
            cfg,
            self.boxes,
            self.book,
            self.pins,
            self.store,
            seed_send=self.seed.send,
            presence=self.presence,
            on_new_sender=self._new_sender,
            on_ack=self.delivery.acked,
            emit=self.emit,
        )
        self.groups = GroupNode(
            self.name,
            self.identity,
            self.store,
            self._queue_copy,
            self._member,
            self.next_ts,
            now_ms,
            self.emit,
        )
        self.members_watched: set[str] = set()
        self.delivery.on_group_state = self.groups.on_copy_state
        self.inbox.on_group = self.groups.receive
        self.acts: ActNode = self.inbox.acts
        self.groups.acts = self.acts
        self.endpoint = await self._serve_endpoint()
        for msg in [*self.store.pending(), *self.groups.pending()]:
            self.outbox.add(msg, stored_at=0.0 if msg.state == "stored" else None)
        self.last_ts = max((m.ts for m in self.outbox.peer_messages()), default=0)
        for contact in self.store.contacts():
            self.seed.watch([contact.name], chosen=not contact.new)
        self.seed.watch(r for peer in self.outbox.peers() if (r := self.outbox.recipient(peer)))
        self.seed.start()
        for peer in self.outbox.peers():
            self.delivery.kick(peer)
        self.control = ControlSocket(self, self.data_dir)  # `p2p-node send` beside this node
        await self.control.start()
        log.info("user %s serving %s (key %s)", self.name, self.endpoint, self.identity.fingerprint)

    def _serves_endpoint(self) -> bool:
        """Whether to accept direct connections: when asked to (--host, --advertise), or when every
        seed is on this machine (so peers are too); else the record says `relay:` and peers reach
        us through our home seed, as they must behind NAT."""
        cfg = self.config
        if cfg.relay_only:
            return False
        if cfg.host is not None or cfg.advertise is not None:
            return True
        return all(_is_loopback(url) for url in cfg.seeds)

    async def _serve_endpoint(self) -> str:
        cfg = self.config
        if not self._serves_endpoint():
            return RELAY_ENDPOINT
        host = cfg.host or ("0.0.0.0" if cfg.advertise else "127.0.0.1")
        gate = AddressGate(cfg.max_peer_connections_per_address, cfg.max_peer_connections)
        # r3: an endpoint that batches selects it for a sender offering it, p2pchat.v1 otherwise
        batch_option = {"subprotocols": OFFER} if cfg.batch_chats else {}
        self.server = await listen(
            self.inbox.serve,
            host,
            cfg.port,
            max_size=cfg.max_frame,
            open_timeout=5,
            **{**SERVER_OPTIONS, "create_connection": gated(gate), **batch_option},
        )
        return cfg.advertise or listen_url(self.server, host)[1]

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        await self.delivery.stop()
        await self.inbox.stop()
        await self.seed.stop()
        if self.server is not None:
            await shut(self.server)
        await self.store.close()

    def subscribe(self) -> EventStream:
        stream = EventStream()
        self.subscribers.append(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self.subscribers:
            self.subscribers.remove(stream)

    def emit(self, event: Event) -> None:
        for stream in self.subscribers:
            stream.queue.put_nowait(event)

    # ------------------------------------------------------------------ seed callbacks

    async def _make_record(self) -> Record:
        seq = await self.store.next_seq(now_ms())
        return sign_record(self.identity, self.name, self.endpoint, seq)

    def _sign_session(self, name: str, seed_key: str, nonce: str) -> SessionAuth:
        return sign_session(self.identity, name, seed_key, nonce, now_ms())

    def _on_replaced(self, message: str) -> None:
        self.emit(SessionReplaced(name=self.name, message=message))

    def reconnect(self) -> None:
        """Drop the seed link and dial again, configured seeds first; after a newer session
        replaced this one, this takes the name back (that one is told in turn)."""
        self.seed.reconnect()

    def _on_registered(self, seed: str, url: str) -> None:
        self.emit(NameRegistered(name=self.name, seed=seed, url=url, endpoint=self.endpoint))

    def _on_status(self, state: ConnState, home: str | None, detail: str) -> None:
        event = SeedStatus(state=state, home=home, seeds=self.seed.seed_states(), detail=detail)
        if self.status_filter.keep(event, time.monotonic()):
            self.emit(event)

    def _on_fatal(self, code: ErrorCode, message: str) -> None:
        self.fatal = ErrorEvent(
            code=code, message=f"cannot register {self.name}: {message}", name=self.name
        )
        self.emit(self.fatal)

    def _on_presence(self, frame: Presence) -> None:
        self.emit(
            PresenceChanged(
                name=frame.name,
                online=frame.online,
                seed=frame.seed,
                last_seen=self._last_seen(frame),
            )
        )
        folded = fold_name(frame.name)
        was = self.presence.get(folded)
        self.presence[folded] = frame.online
        if frame.online and was is not True and folded in self.delivery.wake:
            self.book.forget(frame.name)  # it may have a new endpoint
            self.delivery.kick_if_waiting(folded)

    def _last_seen(self, frame: Presence) -> int | None:
        """A contact's last seen, kept here: the latest time a seed said it was online (never
        ahead of our clock), so a seed that does not know it yet (a new or restarted one) never
        erases it."""
        now = now_ms()
        seen = now if frame.online else frame.last_seen
        if seen is not None:
            seen = min(seen, now)
        contact = self.store.contact(frame.name)
        if contact is None:
            return seen
        return self.store.seen(frame.name, seen) if seen is not None else contact.last_seen

    # ------------------------------------------------------------------ contacts and seeds

    def contacts(self) -> list[Contact]:
        return self.store.contacts()

    def add_contact(self, name: str, new: bool = False) -> bool:
        """Add a contact and follow its presence; False when it was one already. Never waits on a seed."""
        require_name(name)
        added = self.store.add_contact(name, now_ms(), new=new)
        if added:
            self.emit(ContactAdded(name=name, new=new))
        elif not new:
            self.store.choose(name)  # someone who wrote first, added by the user now
        self.seed.watch([name], chosen=not new)
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

    @staticmethod
    async def seed_answering(urls: list[str], timeout: float) -> str | None:
        """The first of `urls` whose seed completes a handshake within `timeout` (a probe before
        a node starts: does any seed answer, or should the app host one?)."""
        return await first_answering(urls, timeout)

    async def any_seed_answers(self, timeout: float) -> bool:
        """Whether one of the seeds this node would dial answers now."""
        return await first_answering(list(self.seed.candidates(None)), timeout) is not None

    def configured_seeds(self) -> list[str]:
        return list(self.seed.configured)

    def add_embedded_seed(self, url: str) -> None:
        """A seed this machine's app hosts now: dialled after the others, and added."""
        self.seed.embedded.add(url.rstrip("/"))
        self.add_seed(url)

    def remove_seed(self, url: str) -> bool:
        """Stop dialling a seed the user added (a typo, a seed gone for good); False when it was
        not one of theirs. The link it may carry now stays until it drops."""
        removed = self.seed.remove_seed(url)
        if removed:
            self._on_status(self.seed.state, self.seed.home_name, f"removed {url}")
        return removed

    async def lookup(self, name: str) -> Found:
        """A fresh, verified answer from the seed (its record's signature and name checked)."""
        self.book.forget(name)
        return await self.book.resolve(name)

    def path_to(self, name: str) -> str | None:
        """How messages reach `name` now: 'direct', 'relay only', or None when not known yet."""
        found = self.book.get(name, time.monotonic())
        if found is None:
            return None
        if found.record.endpoint == RELAY_ENDPOINT or self.delivery.paths.relay_only(
            fold_name(name), time.monotonic()
        ):
            return "relay only"
        return "direct"

    def accept_key(self, name: str) -> str | None:
        """The user trusts a contact's new key: pin it and let traffic flow again."""
        key = self.store.accept_key(name)
        if key is not None:
            self.delivery.kick_if_waiting(fold_name(name))
        return key

    def mark_seen(self, name: str) -> None:
        self.store.mark_seen(name)
        self.seed.watch([name])  # the user looked: followed like a contact they chose

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
        shown = []
        for m in self.store.unshown():
            act = load(m.act)  # r3: a reply replays as it was shown (its own text, its target)
            shown.append(
                MessageReceived(
                    id=m.id,
                    from_=m.sender,
                    to=m.recipient,
                    ts=m.ts,
                    text=shown_text(m.text, act, m.changed),
                    n=m.n,
                    replayed=True,
                    key_changed=m.key_changed,
                    reply_to=act.ref if act is not None else None,
                )
            )
        return shown

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
        self.store.choose(to)  # an answer: whoever wrote first is no stranger now
        self.last_ts = max(now_ms(), self.last_ts + 1)  # (ts, id) orders a conversation
        msg = StoredMessage.new_outgoing(str(uuid.uuid4()), self.name, to, self.last_ts, text)
        durable = self.store.add_message(msg)
        self.outbox.add(msg)
        self.delivery.kick(msg.peer)
        self.emit(
            MessageQueued(id=msg.id, to=to, state="queued", from_=self.name, ts=msg.ts, text=text)
        )
        await durable
        return msg.id

    # ------------------------------------------------------------------ r3: replies, reactions,
    # edits, deletes (acts.py; docs/PROTOCOL.md)

    def pick(self, peer: str, ref: str | None, mine: bool = False) -> StoredMessage:
        """The message a command names in the conversation with `peer`: its id or a unique prefix
        of it, or the newest line (ours, when `mine`). InvalidInput when there is none."""
        if ref is None:
            msg = self.store.last_visible(peer, mine)
            if msg is None:
                raise InvalidInput(f"no message {'of yours ' if mine else ''}with {peer}")
            return msg
        return unique_match(
            self.store.find(peer, ref), ref, f"no message with {peer} has the id {ref}"
        )

    def find_message(self, ref: str) -> StoredMessage:
        """A one-to-one message by its id or a unique prefix, in any conversation."""
        return unique_match(self.store.find(None, ref), ref, f"no message has the id {ref}")

    async def reply(self, peer: str, ref: str | None, text: str) -> str:
        """Answer a message, quoting it; the reply's id once queued."""
        target = self.pick(peer, ref)
        return await self._send_act(peer, make("reply", target.id, text), target)

    async def react(self, peer: str, ref: str | None, emoji: str) -> str:
        """Set this user's one reaction to a message ("" takes it back)."""
        target = self.pick(peer, ref)
        return await self._send_act(peer, make("react", target.id, emoji=emoji), target)

    async def edit(self, peer: str, ref: str | None, text: str) -> str:
        """Replace the text of one of this user's messages, on both sides."""
        target = self.pick(peer, ref, mine=True)
        if not target.outgoing:
            raise InvalidInput("you can edit only your own messages")
        return await self._send_act(peer, make("edit", target.id, text), target)

    async def delete(self, peer: str, ref: str | None) -> str:
        """Blank one of this user's messages, on both sides."""
        target = self.pick(peer, ref, mine=True)
        if not target.outgoing:
            raise InvalidInput("you can delete only your own messages")
        return await self._send_act(peer, make("delete", target.id), target)

    async def act_on(self, ref: str, kind: ActType, text: str = "") -> str:
        """A headless command's act on a message named by id prefix, one-to-one or in a group."""
        try:
            msg = self.find_message(ref)
        except InvalidInput as exc:
            try:
                gid, mid = self.groups.find_message(ref)
            except InvalidInput:
                raise exc from None
            return await self.groups.act(gid, kind, mid, text)
        peer = msg.recipient if msg.outgoing else msg.sender
        if kind == "reply":
            return await self.reply(peer, msg.id, text)
        if kind == "react":
            return await self.react(peer, msg.id, text)
        if kind == "edit":
            return await self.edit(peer, msg.id, text)
        return await self.delete(peer, msg.id)

    async def _send_act(self, peer: str, act: Act, target: StoredMessage) -> str:
        """An act goes out like any message (the outbox, acks, every path); its effect is
        applied here at once, as the peer applies it on arrival."""
        if self.store.is_blocked(peer):
            raise InvalidInput(f"{peer} is blocked: unblock them to write to them")
        if target.changed == 2:
            raise InvalidInput("that message was deleted")
        to = target.recipient if target.outgoing else target.sender
        self.last_ts = max(now_ms(), self.last_ts + 1)
        text = fallback(act, self.acts.shown(self._target(target)))
        msg = replace(
            StoredMessage.new_outgoing(str(uuid.uuid4()), self.name, to, self.last_ts, text),
            act=dump(act),
        )
        # on disk before it is shown or sent: its line is drawn from the store (quote, marks)
        n = await self.store.add_message(msg)
        self.outbox.add(msg)
        self.delivery.kick(msg.peer)
        if act.type == "reply":
            self.emit(
                MessageQueued(
                    id=msg.id,
                    to=to,
                    state="queued",
                    from_=self.name,
                    ts=msg.ts,
                    text=act.text,
                    reply_to=act.ref,
                )
            )
        if n:
            self.acts.apply("p", msg.peer, n, self.name, msg.ts, act)
        return msg.id

    def _target(self, msg: StoredMessage) -> Target:
        return Target(
            "p",
            msg.peer,
            msg.n,
            msg.id,
            msg.sender,
            msg.text,
            load(msg.act),
            msg.changed,
            msg.outgoing,
        )

    def pending_count(self) -> int:
        return self.outbox.pending_count()

    def unsettled_count(self) -> int:
        """Messages neither delivered, failed, held by the mesh as mail, nor held back for a
        person (an unknown name, a changed key): what a script stopping at end of input waits for."""
        return self.outbox.unsettled_count()

    def held_count(self) -> int:
        """Messages held back for a person: a name not registered yet, a key not accepted yet."""
        return self.outbox.unsettled_count(held=True)

    def retry(
        self, msg_id: str | None = None, peer: str | None = None, failed_first: bool = False
    ) -> StoredMessage:
        """Try a message again now: the one with this id (or id prefix), else the newest failed or
        waiting one (with `peer`, when given; the newest failed one before any waiting one with
        `failed_first`). A failed one goes back to the outbox, its expiry counting from now; a
        waiting one is looked up and tried at once. InvalidInput when there is none."""
        failed = (
            self.store.last_outgoing(peer, ("failed",)) if failed_first and not msg_id else None
        )
        msg = failed or self._pick(msg_id, peer, ("failed", "queued", "sent", "stored"), "retry")
        if self.store.is_blocked(msg.recipient):
            raise InvalidInput(f"{msg.recipient} is blocked: unblock them to write to them")
        if msg.state == "failed" or self.outbox.find(msg.id) is None:
            again = self.outbox.requeue(msg, now_ms())
            self.store.requeue(msg, again.since, RETRYING)
            self.seed.watch([msg.recipient])
            self.delivery.kick(msg.peer)
            self.emit(MessageState(id=msg.id, to=msg.recipient, state="queued", reason=RETRYING))
            return again
        self.delivery.retry(msg.peer)
        state = cast(MsgState, msg.state)
        self.emit(MessageState(id=msg.id, to=msg.recipient, state=state, reason=RETRYING))
        return msg

    def cancel(self, msg_id: str | None = None, peer: str | None = None) -> StoredMessage:
        """Give up on a message still in the outbox: it fails, "cancelled". One already held by
        the mesh as mail may still arrive (the mesh cannot be told to drop it)."""
        msg = self._pick(msg_id, peer, ("queued", "sent", "stored"), "cancel")
        cancelled = self.delivery.cancel(msg.id)
        if cancelled is None:
            raise InvalidInput(f"message {msg.id} is no longer waiting")
        return cancelled

    def _pick(
        self, msg_id: str | None, peer: str | None, states: tuple[str, ...], verb: str
    ) -> StoredMessage:
        """The outgoing message a /retry or /cancel means, in one of `states`, or InvalidInput."""
        if msg_id is None:
            msg = self.store.last_outgoing(peer, states)
            if msg is None:
                where = f" to {peer}" if peer is not None else ""
                raise InvalidInput(f"no message{where} to {verb}")
            return msg
        msg = unique_match(
            self.store.outgoing(peer, msg_id), msg_id, f"no message of yours has the id {msg_id}"
        )
        if msg.state not in states:
            raise InvalidInput(f"message {msg.id} is {msg.state}: nothing to {verb}")
        return msg

    # ------------------------------------------------------------------ groups (r3): group_node.py

    def next_ts(self) -> int:
        """A time for a message of ours, strictly after the last (a sender's order is its ts)."""
        self.last_ts = max(now_ms(), self.last_ts + 1)
        return self.last_ts

    def _queue_copy(self, msg: StoredMessage) -> None:
        """A group frame's copy for one member goes in line behind that member's messages."""
        self.outbox.add(msg)
        if msg.peer not in self.members_watched:  # its return wakes the delivery
            self.members_watched.add(msg.peer)
            self.seed.watch([msg.recipient], chosen=False)
        self.delivery.kick(msg.peer)

    async def _member(self, name: str) -> Member:
        """A member to list in a group: the name's verified record's key, which must be the pin."""
        if fold_name(name) == self.folded:
            return Member(self.name, self.identity.key)
        try:
            found = await self.book.resolve(name)
        except RemoteError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise InvalidInput(f"unknown name: nobody is registered as {name}") from None
            raise InvalidInput(f"cannot look {name} up now ({exc.code})") from None
        except (SeedUnavailable, ConnectionLost):
            raise InvalidInput(f"cannot look {name} up now: no seed reachable") from None
        if not self.pins.holds(name, found.record.key):
            raise InvalidInput(f"{name}'s key changed: /accept {name} first")
        return Member(found.record.name, found.record.key)

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
        """Refuse `name`'s messages before they are stored; a contact stays one, marked blocked.

        False when it was blocked already. A blocked name writing gets an error it can show
        ("does not accept messages from you"), and never becomes a contact by writing.
        """
        require_name(name)
        return self.store.block(name, now_ms())

    def unblock(self, name: str) -> bool:
        return self.store.unblock(name)

    def blocked(self) -> list[str]:
        return self.store.blocked()

    def is_blocked(self, name: str) -> bool:
        return self.store.is_blocked(name)

    async def verify(self, name: str, confirmed: str | None = None) -> str:
        """The fingerprint of a contact's pinned key, to compare out of band; marked verified only
        when `confirmed` is that fingerprint (the one the user was shown and compared).

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
            found = await self.book.resolve(name)
            if not self.pins.holds(name, found.record.key):
                raise InvalidInput(f"{contact.name}'s key changed: /accept {contact.name} first")
            key = found.record.key
        if confirmed is not None and confirmed == fingerprint(key):
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


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
