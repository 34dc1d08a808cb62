"""Receiving: the direct endpoint, where each `chat` is verified, opened, stored once, then acknowledged.

A message is acknowledged only once it is on disk, and a copy of one already stored is
acknowledged again without being shown twice; nothing a peer sends can end the handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..crypto.boxes import Boxes
from ..errors import ConnectionLost, ErrorCode, ProtocolError, RemoteError, SeedUnavailable
from ..wire.names import fold_name
from ..wire.protocol import DIRECT, Ack, Chat, ChatPlain, Found, dump, error_frame, parse
from ..wire.sender import Sender
from ..wire.sockets import frames
from .contacts import KeyPins
from .delivery import Resolver
from .events import Event, MessageReceived
from .store import StoredMessage, UserStore

log = logging.getLogger("p2p.user.inbox")


class Inbox:
    def __init__(
        self,
        name: str,
        boxes: Boxes,
        resolver: Resolver,
        pins: KeyPins,
        store: UserStore,
        on_new_sender: Callable[[str], None],
        emit: Callable[[Event], None],
    ) -> None:
        self.name = name
        self.folded = fold_name(name)
        self.boxes = boxes
        self.resolver = resolver
        self.pins = pins
        self.store = store
        self.on_new_sender = on_new_sender
        self.emit = emit

    async def serve(self, ws: ServerConnection) -> None:
        """One peer's socket to our endpoint: it may only send `chat`; every frame gets an answer."""
        out = Sender(ws)
        try:
            async for raw in frames(ws):
                try:
                    frame = parse(DIRECT, raw)
                    if not isinstance(frame, Chat):
                        raise ProtocolError(
                            ErrorCode.BAD_REQUEST,
                            "this endpoint accepts only chat frames",
                            frame.id,
                        )
                    await self.receive(out, frame)
                except ProtocolError as exc:
                    out.push(error_frame(exc.code, exc.message, exc.frame_id))
        except ConnectionClosed:
            pass

    async def _sender(self, name: str, chat_id: str) -> Found:
        """The sender's record, or ProtocolError with what to answer."""
        try:
            return await self.resolver.resolve(name)
        except RemoteError:
            raise ProtocolError(
                ErrorCode.BAD_BOX, f"the sender {name!r} is not registered", chat_id
            ) from None
        except (SeedUnavailable, ConnectionLost):
            raise ProtocolError(
                ErrorCode.INTERNAL, "cannot resolve the sender now; retry", chat_id
            ) from None

    async def _open(self, chat: Chat) -> tuple[Found, ChatPlain]:
        found = await self._sender(chat.from_, chat.id)
        try:
            return found, self.boxes.open(found.record.key, chat)
        except ProtocolError:
            self.resolver.cache.forget(chat.from_)  # a stale cache? ask the seed once more
            found = await self._sender(chat.from_, chat.id)
            return found, self.boxes.open(found.record.key, chat)

    async def receive(self, out: Sender, chat: Chat) -> None:
        if self.store.is_blocked(chat.from_):  # before anything is looked up, stored or added
            raise ProtocolError(
                ErrorCode.BAD_BOX, "the recipient does not accept messages from you", chat.id
            )
        if fold_name(chat.to) != self.folded:
            raise ProtocolError(
                ErrorCode.BAD_BOX, f"this endpoint is {self.name}, not {chat.to}", chat.id
            )
        found, inner = await self._open(chat)
        sender = found.record.name
        if self.store.contact(sender) is None:
            self.on_new_sender(sender)
        if not self.pins.holds(sender, found.record.key):
            raise ProtocolError(
                ErrorCode.BAD_BOX,
                f"{self.name} holds messages from {sender}: its key changed",
                chat.id,
            )
        stored = self.store.add_message(
            StoredMessage.new_incoming(inner.id, sender, self.name, inner.ts, inner.text)
        )

        def ack(fut: asyncio.Future[int]) -> None:
            """Acknowledge once stored (copies too); only a message stored for the first time is shown."""
            if fut.cancelled() or fut.exception() is not None:
                out.push(
                    error_frame(
                        ErrorCode.INTERNAL,
                        f"could not store the message: {fut.exception()}",
                        chat.id,
                    )
                )
                return
            out.push(dump(Ack(type="ack", id=chat.id)))
            if n := fut.result():
                self.emit(
                    MessageReceived(
                        id=inner.id, from_=sender, to=self.name, ts=inner.ts, text=inner.text, n=n
                    )
                )

        stored.add_done_callback(ack)
