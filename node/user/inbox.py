"""Receiving, by every path: each `chat` is verified, opened, stored once, then acknowledged end to end.

A chat comes straight to the endpoint, relayed by the seeds, or as mail; it is treated the same
way whichever path it took, and acknowledged only once it is on disk. The ack goes back on the
same socket for a direct chat, else relayed to the sender, or deposited as mail when the sender
is offline; mail is taken (deleted from the mesh) once handled. Nothing a peer sends can end
the handler, and strangers flooding the endpoint cost the seed link nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..clock import now_ms
from ..config import UserConfig
from ..crypto.boxes import Boxes
from ..crypto.keys import Identity
from ..crypto.signing import sign_mail, sign_take
from ..errors import (
    ConnectionLost,
    ErrorCode,
    InternalError,
    ProtocolError,
    RemoteError,
    SeedUnavailable,
    StoreError,
)
from ..runtime import Tasks, quiet_logger
from ..wire.fastcodec import parse_direct
from ..wire.fit import ENVELOPE, batches
from ..wire.limits import RateLimit, Verdict
from ..wire.names import fold_name
from ..wire.protocol import (
    MAX_CARRIED,
    MAX_TAKE_IDS,
    Ack,
    CarriedAck,
    CarriedChat,
    Chat,
    ChatPlain,
    Chats,
    Deposit,
    Found,
    MailItem,
    Relay,
    Relayed,
    Take,
    Taken,
    TakenId,
    error_frame,
    readable_id,
)
from ..wire.sender import Sender
from ..wire.sockets import close_now, frames
from .act_node import ActNode
from .acts import dump, parse_act
from .batching import AckBatch, entries, negotiated
from .contacts import KeyPins, RecordBook
from .events import Event, MessageReceived
from .opener import Opened, Opener
from .senders import Allowance, StrangerGate
from .store import StoredMessage, UserStore

log = quiet_logger("p2p.user.inbox")

DAY_MS = 86_400_000
REFRESH_EVERY = 10.0  # seconds between fresh lookups of a contact whose box did not open
# a batch's boxes go to the opens thread when at least this many open with a pinned key (handing a
# job over costs about as much as opening and proving five chats inline)
AHEAD_MIN = 8


def ack_text(msg_id: str, proof: str) -> str:
    """An `ack` frame for our own, already valid fields (built directly: this is the hot path)."""
    return '{"type":"ack","id":%s,"proof":"%s"}' % (json.dumps(msg_id), proof)


AckBack = Callable[[str, str], None]  # sends an ack (id, proof) back the way the chat came
# (sender, its key, plaintext) -> stored: receives a group frame (group_node.py)
GroupHook = Callable[[str, str, ChatPlain], asyncio.Future[int]]


def take_batches(ids: list[TakenId]) -> list[list[TakenId]]:
    """Ids in takes cut by encoded size as well as count: ids are chosen by senders, and a take
    must stay a carried object (under MAX_CARRIED) to travel in sync and gossip frames."""
    encoded = [json.dumps(list(i)) for i in ids]
    parts = batches(encoded, room=MAX_CARRIED - ENVELOPE, most=MAX_TAKE_IDS)
    return [ids[part.start : part.stop] for part in parts]


class Inbox:
    def __init__(
        self,
        identity: Identity,
        name: str,
        config: UserConfig,
        boxes: Boxes,
        book: RecordBook,
        pins: KeyPins,
        store: UserStore,
        seed_send: Callable[[Relay | Deposit | Take], Awaitable[object]],
        presence: dict[str, bool],
        on_new_sender: Callable[[str], None],
        on_ack: Callable[[Ack], bool],
        emit: Callable[[Event], None],
    ) -> None:
        self.identity = identity
        self.name = name
        self.folded = fold_name(name)
        self.config = config
        self.boxes = boxes
        self.book = book
        self.pins = pins
        self.store = store
        self.seed_send = seed_send
        self.presence = presence
        self.on_new_sender = on_new_sender
        self.on_ack = on_ack
        self.emit = emit
        self.tasks = Tasks(log)
        self.oldest_ms = int((config.expire_after + DAY_MS / 1000) * 1000)
        self.to_take: list[TakenId] = []
        self.refreshed: dict[str, float] = {}  # folded name -> when its record was last re-asked
        self.take_soon: asyncio.Handle | None = None
        # per sender (folded): the last relayed chat being received, which the next one waits for
        self.relay_tails: dict[str, asyncio.Task[None]] = {}
        allowance = Allowance(
            config.stranger_rate,
            config.stranger_burst,
            config.stranger_messages,
            config.stranger_bytes,
        )
        self.strangers = StrangerGate(name, allowance, store.incoming_totals)
        self.on_group: GroupHook | None = None  # r3 groups, set by the group node
        self.acts = ActNode(store, emit)  # r3 replies, reactions, edits, deletes
        self.chats_frames = 0  # r3 `chats` frames received on batching links
        # r3 batches' boxes are opened (and their acks proven) here, one job a batch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opens")
        self.opener = Opener(boxes, self.pool)

    async def stop(self) -> None:
        await self.tasks.cancel_all()
        self.pool.shutdown(wait=False)

    # ------------------------------------------------------------------ the direct endpoint

    async def serve(self, ws: ServerConnection) -> None:
        """One peer's socket to our endpoint: it may only send `chat` (and `chats` where batching
        was negotiated); every frame gets an answer."""
        out = Sender(ws)
        loop = asyncio.get_running_loop()
        limit = RateLimit(self.config.peer_rate, self.config.peer_burst, loop.time())
        batched = negotiated(ws.subprotocol)
        try:
            async for raw in frames(ws):
                verdict = limit.check(loop.time())
                if verdict is Verdict.CUT:
                    await close_now(ws, 1008, "rate limit exceeded repeatedly")
                    return
                if verdict is Verdict.REFUSE:
                    out.push(error_frame(ErrorCode.RATE_LIMITED, "too many frames; slow down"))
                    continue
                try:
                    batch: Sequence[Chat | ProtocolError] | None = None
                    try:
                        frame = parse_direct(raw)
                    except ProtocolError:  # r3: a `chats` frame with bad chats: the others go on
                        if not batched or (batch := entries(raw)) is None:
                            raise
                    else:
                        if batched and isinstance(frame, Chats):
                            batch = frame.chats
                    if batch is not None:
                        if not await self._receive_chats(ws, out, limit, batch):
                            return
                        continue
                    if not isinstance(frame, Chat):
                        raise ProtocolError(
                            ErrorCode.BAD_REQUEST,
                            "this endpoint accepts only chat frames",
                            getattr(frame, "id", None),
                        )
                    await self.receive(frame, lambda i, p: out.push(ack_text(i, p)))
                except ProtocolError as exc:
                    out.push(error_frame(exc.code, exc.message, exc.frame_id))
                except StoreError as exc:  # ours, not the peer's: it may send the chat again
                    self._store_failed(out, exc, readable_id(raw))
                except ConnectionClosed:
                    raise
                except Exception:  # the endpoint's boundary: a bug must not end the peer's socket
                    log.exception("receiving a chat failed on a bug")
                    out.push(
                        error_frame(ErrorCode.INTERNAL, "internal error; retry", readable_id(raw))
                    )
        except ConnectionClosed:
            pass

    def _store_failed(self, out: Sender, exc: StoreError, chat_id: str | None) -> None:
        log.error("could not store a chat: %s", exc)
        out.push(error_frame(ErrorCode.INTERNAL, "the chat could not be stored; retry", chat_id))

    async def _receive_chats(
        self,
        ws: ServerConnection,
        out: Sender,
        limit: RateLimit,
        chats: Sequence[Chat | ProtocolError],
    ) -> bool:
        """r3: the chats of one `chats` frame, each handled as a single `chat` (the rate counted
        per chat, a refusal answered with its id); the stored ones acked in `acks` frames. False
        when the socket was cut for its rate."""
        self.chats_frames += 1
        loop = asyncio.get_running_loop()
        # the first chat was counted with the frame's check; the rest as far as the bucket admits
        ahead = await self._open_ahead(chats, 1 + limit.available(loop.time()))
        acks = AckBatch(out)
        try:
            for n, chat in enumerate(chats):
                chat_id = chat.frame_id if isinstance(chat, ProtocolError) else chat.id
                if n:  # the frame's own check counted the first
                    verdict = limit.check(loop.time())
                    if verdict is Verdict.CUT:
                        await close_now(ws, 1008, "rate limit exceeded repeatedly")
                        return False
                    if verdict is Verdict.REFUSE:
                        out.push(
                            error_frame(
                                ErrorCode.RATE_LIMITED, "too many chats; slow down", chat_id
                            )
                        )
                        continue
                if isinstance(chat, ProtocolError):  # a bad chat of the frame: its own refusal
                    out.push(error_frame(chat.code, chat.message, chat_id))
                    continue
                try:
                    acks.expect(await self.receive(chat, acks.add, ahead[n]))
                except ProtocolError as exc:
                    out.push(error_frame(exc.code, exc.message, exc.frame_id))
                except StoreError as exc:
                    self._store_failed(out, exc, chat.id)
                except ConnectionClosed:
                    raise
                except Exception:  # as in serve: a bug costs one chat, not the socket
                    log.exception("receiving a chat failed on a bug")
                    out.push(error_frame(ErrorCode.INTERNAL, "internal error; retry", chat.id))
        finally:
            acks.seal()
        return True

    async def _open_ahead(
        self, chats: Sequence[Chat | ProtocolError], admitted: int
    ) -> list[Opened | None]:
        """r3: the boxes of a batch from contacts with a pinned key, opened with that key (and
        their ack proofs sealed) on the opens thread as one job, in order; None for a chat left to
        `receive` (every check is still made there, in the same order, on the chat itself).
        Only the first `admitted` are tried: those the sender's rate still admits (a chat refused
        for the rate costs no open)."""
        ahead: list[Opened | None] = [None] * len(chats)
        slots: list[int] = []
        jobs: list[tuple[str, Chat]] = []
        for n, chat in enumerate(chats[:admitted]):
            if isinstance(chat, ProtocolError) or self.store.is_blocked(chat.from_):
                continue
            contact = self.store.contact(chat.from_)
            if contact is not None and contact.key is not None:
                slots.append(n)
                jobs.append((contact.key, chat))
        if len(jobs) < AHEAD_MIN:
            return ahead
        found = await self.opener.open_batch(jobs)
        if found is not None:
            for n, opened in zip(slots, found, strict=True):
                ahead[n] = opened
        return ahead

    # ------------------------------------------------------------------ by any path

    async def _sender(self, name: str, chat_id: str) -> Found:
        """The sender's verified record, or ProtocolError with what to answer.

        A sender no seed knows is answered `internal` (retry), not refused: a name registered a
        moment ago at another seed may not have reached ours yet.
        """
        try:
            return await self.book.resolve(name, inbound=True)
        except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
            why = (
                f"the sender {name!r} is not known here yet; retry"
                if isinstance(exc, RemoteError) and exc.code == ErrorCode.NOT_FOUND
                else "cannot resolve the sender now; retry"
            )
            raise ProtocolError(ErrorCode.INTERNAL, why, chat_id) from None

    async def _open(self, chat: Chat, ahead: Opened | None = None) -> tuple[str, str, ChatPlain]:
        """(sender's name, its key, the plaintext). A contact's pinned key is tried first: a box
        from a contact opens with no lookup at all, and junk in a contact's name costs none.
        `ahead`: what the opens thread found with the key pinned then (used while it still is)."""
        contact = self.store.contact(chat.from_)
        if contact is not None and contact.key is not None:
            if ahead is not None and ahead.key == contact.key:
                if ahead.inner is not None:
                    return contact.name, contact.key, ahead.inner
            else:
                try:
                    return contact.name, contact.key, self.boxes.open(contact.key, chat)
                except ProtocolError:
                    pass  # a new key, perhaps: the seed's record says (and the pin holds it back)
        found = await self._sender(chat.from_, chat.id)
        if contact is not None and found.record.key == contact.key:
            # the pinned key is what the seed said too, a while ago: ask it again, at most once in
            # a while per name (junk in a contact's name must not cost a lookup each)
            now = time.monotonic()
            folded = fold_name(chat.from_)
            if now - self.refreshed.get(folded, -REFRESH_EVERY) < REFRESH_EVERY:
                raise ProtocolError(
                    ErrorCode.BAD_BOX, "the box does not open with the sender's key", chat.id
                )
            self.refreshed[folded] = now
            if len(self.refreshed) > 10_000:
                self.refreshed.clear()
            self.book.forget(chat.from_)
            found = await self._sender(chat.from_, chat.id)
        return found.record.name, found.record.key, self.boxes.open(found.record.key, chat)

    async def receive(
        self, chat: Chat, ack_back: AckBack, ahead: Opened | None = None
    ) -> asyncio.Future[int]:
        """Check, open and store a chat, then acknowledge it with `ack_back` once it is on disk.

        The store's future is returned (the endpoint does not wait for it: the next frame is read
        while this one commits). ProtocolError says what to answer (only a direct socket can carry
        the answer back).
        """
        if self.store.is_blocked(chat.from_):  # before anything is looked up, stored or added
            raise ProtocolError(
                ErrorCode.BAD_BOX, "the recipient does not accept messages from you", chat.id
            )
        if fold_name(chat.to) != self.folded:
            raise ProtocolError(
                ErrorCode.BAD_BOX, f"this endpoint is {self.name}, not {chat.to}", chat.id
            )
        sender, key, inner = await self._open(chat, ahead)
        if inner.ts < now_ms() - self.oldest_ms:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "the message is older than anything still delivered", chat.id
            )
        if self.store.contact(sender) is None:
            self.on_new_sender(sender)
        # a key other than the pinned one (not accepted yet): kept and acknowledged, never lost,
        # but flagged, so it is never shown as if it came from the key the user trusts
        changed = not self.pins.holds(sender, key)
        act = None
        if inner.kind == "group" and self.on_group is not None:
            # r3: a group frame (group_node.py), under the group's own per-member limits and
            # checked against the key the group lists for the sender; it raises ProtocolError to
            # refuse, and its future gives 0 (it shows what it stored itself)
            stranger = False
            stored = self.on_group(sender, key, inner)
        else:
            # r3: a reply, reaction, edit or delete (acts.py); an edit or delete of a message its
            # sender did not write is refused
            # (from a key not accepted yet it is shown as its text, flagged, and changes nothing)
            act = None if changed else parse_act(inner.act)
            if act is not None and self.acts.refused("p", fold_name(sender), sender, act):
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST, "only its sender may edit or delete a message", chat.id
                )
            stranger = self._stranger_gate(sender, inner, chat.id)
            msg = StoredMessage.new_incoming(
                inner.id, sender, self.name, inner.ts, inner.text, changed
            )
            stored = self.store.add_message(msg if act is None else replace(msg, act=dump(act)))
            stored.add_done_callback(
                lambda fut: self.acts.stored("p", msg.peer, fut, sender, inner.ts, inner.id)(act)
            )
        if ahead is not None and ahead.proof is not None and ahead.key == key:
            proof = ahead.proof  # sealed on the opens thread for this very chat and key
        else:
            proof = self.boxes.ack_proof(key, chat.from_, chat.id, chat.to)

        def ack(fut: asyncio.Future[int]) -> None:
            """Acknowledge once stored (copies too); only a message stored for the first time is shown."""
            if fut.cancelled() or fut.exception() is not None:
                log.error("could not store a message from %s: %s", sender, fut.exception())
                return
            ack_back(chat.id, proof)
            if stranger and not fut.result():
                self.strangers.forget(sender)  # a copy was counted: count from the disk again
            if (n := fut.result()) and (act is None or act.type == "reply"):
                self.emit(
                    MessageReceived(
                        id=inner.id,
                        from_=sender,
                        to=self.name,
                        ts=inner.ts,
                        text=act.text if act is not None else inner.text,
                        n=n,
                        key_changed=changed,
                        reply_to=act.ref if act is not None else None,
                    )
                )

        stored.add_done_callback(ack)
        return stored

    def _stranger_gate(self, sender: str, inner: ChatPlain, chat_id: str) -> bool:
        """Someone the user has not answered nor added gets a small rate and a bounded number of
        stored messages (ProtocolError beyond; a copy of a stored one always passes, to be acked
        again). True when the sender is such a stranger."""
        contact = self.store.contact(sender)
        if contact is None or not contact.stranger:
            return False
        size = len(inner.text.encode())
        refusal = self.strangers.refusal(sender, size, time.monotonic(), chat_id)
        if refusal is None:
            return True
        if refusal.code != ErrorCode.QUOTA or not self.store.has_incoming(sender, inner.id):
            raise refusal  # (a copy refused for the rate is taken when the sender retries)
        return True

    def _ack_through_seeds(self, sender: str) -> AckBack:
        """An ack for a chat that came through the seeds: relayed when the sender is online, else mail."""

        def send(msg_id: str, proof: str) -> None:
            ack = CarriedAck(type="ack", id=msg_id, proof=proof)
            self.tasks.spawn(self._send_ack(sender, ack), f"ack to {sender}")

        return send

    async def _send_ack(self, sender: str, ack: CarriedAck) -> None:
        if self.presence.get(fold_name(sender), True):
            try:
                await self.seed_send(Relay(type="relay", id=uuid.uuid4().hex, to=sender, frame=ack))
                return
            except RemoteError as exc:
                if exc.code != ErrorCode.OFFLINE:
                    log.debug("relaying an ack to %s failed: %s", sender, exc)
                    return  # the sender sends again and is acked again
            except (SeedUnavailable, ConnectionLost):
                return
        item = sign_mail(self.identity, sender, self.name, ack, now_ms())
        try:
            await self.seed_send(Deposit(type="deposit", id=uuid.uuid4().hex, item=item))
        except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
            log.debug("depositing an ack for %s failed: %s", sender, exc)

    def on_relayed(self, relayed: Relayed) -> None:
        """A frame the seeds relayed to us: a chat to receive, or an ack for one of ours."""
        carried = relayed.frame
        if isinstance(carried, CarriedAck):
            self.on_ack(carried)
            return
        folded = fold_name(carried.from_)
        before = self.relay_tails.get(folded)
        task = self.tasks.spawn(
            self._receive_in_turn(before, carried, self._ack_through_seeds(carried.from_)),
            "relayed chat",
        )
        self.relay_tails[folded] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self.relay_tails.get(folded) is finished:
                del self.relay_tails[folded]

        task.add_done_callback(done)

    async def _receive_in_turn(
        self, before: asyncio.Task[None] | None, chat: CarriedChat, ack_back: AckBack
    ) -> None:
        """One sender's relayed chats are received in the order they came: a chat whose sender
        needs a lookup must not be overtaken by the next, or they are stored and shown out of
        order."""
        if before is not None:
            await asyncio.wait({before})
        await self._receive_quietly(chat, ack_back)

    async def _receive_quietly(self, chat: CarriedChat, ack_back: AckBack) -> None:
        """Receive a chat that has no socket to answer on: a refusal cannot travel back; it is logged."""
        try:
            await self.receive(chat, ack_back)
        except ProtocolError as exc:
            log.info(
                "refused a chat from %s that came through the seeds: %s", chat.from_, exc.message
            )

    def on_mail(self, items: list[MailItem]) -> None:
        """Mail the mesh held for us, oldest first: handled in that order like anything else,
        then taken once what it brought is on disk."""
        self.tasks.spawn(self._handle_mail(items), "mail")

    async def _handle_mail(self, items: list[MailItem]) -> None:
        handled: list[tuple[TakenId, asyncio.Future[int] | None]] = []
        for item in items:
            if fold_name(item.to) != self.folded:
                continue
            carried = item.frame
            ident: TakenId = (item.from_, carried.type, carried.id)
            if isinstance(carried, CarriedAck):
                self.on_ack(carried)
                handled.append((ident, None))
                continue
            try:
                saving = await self.receive(carried, self._ack_through_seeds(carried.from_))
            except ProtocolError as exc:
                log.info("refused mail from %s: %s", carried.from_, exc.message)
                retry = exc.code in (ErrorCode.INTERNAL, ErrorCode.RATE_LIMITED)
                if not retry and not self._held(carried.from_):
                    handled.append(
                        (ident, None)
                    )  # else worth another try later: left with the mesh
                continue
            handled.append((ident, saving))
        for ident, pending in handled:
            if pending is not None:
                try:
                    await asyncio.shield(pending)
                except (StoreError, InternalError):
                    continue
            self._take(ident)

    def _held(self, sender: str) -> bool:
        """Traffic from `sender` waits for its user to accept a changed key: keep its mail."""
        contact = self.store.contact(sender)
        return contact is not None and contact.changed_key is not None

    def _take(self, ident: TakenId) -> None:
        """Take handled mail in batches (one signed take per loop turn, at most MAX_TAKE_IDS ids)."""
        self.to_take.append(ident)
        if len(self.to_take) >= MAX_TAKE_IDS:
            self._send_takes()
        elif self.take_soon is None:
            self.take_soon = asyncio.get_running_loop().call_soon(self._send_takes)

    def _send_takes(self) -> None:
        self.take_soon = None
        ids, self.to_take = self.to_take, []
        for part in take_batches(ids):
            taken = sign_take(self.identity, self.name, part, now_ms())
            self.tasks.spawn(self._send_take(taken), "take")

    async def _send_take(self, taken: Taken) -> None:
        try:
            await self.seed_send(Take(type="take", id=uuid.uuid4().hex, taken=taken))
        except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
            log.debug("a take failed (the mail comes again and is taken then): %s", exc)
