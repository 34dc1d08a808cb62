"""Batched chats on a direct link (r3): several `chat` objects per `chats` frame, their acks per `acks` frame.

Negotiated at the dial by the WebSocket subprotocol BATCH_SUBPROTOCOL; on a link without it
every chat travels alone, as in r2. Each chat of a batch is the very object a single `chat`
frame holds, checked, limited, stored and proven one by one: a batch saves frames and socket
writes, never a check. Frames are fitted to the contract's smallest frame limit (MAX_FRAME),
so any reader takes them. See docs/PROTOCOL.md, "Batched chats on a direct link (r3)".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

from pydantic import ValidationError

from ..errors import ProtocolError
from ..wire.fit import ENVELOPE
from ..wire.protocol import (
    BATCH_SUBPROTOCOL,
    CHAT,
    MAX_BATCH,
    MAX_FRAME,
    SUBPROTOCOL,
    Ack,
    Acks,
    Chat,
    describe,
    echoable_id,
    loads_unique,
)
from ..wire.sender import Sender

ROOM = MAX_FRAME - ENVELOPE  # bytes a batch's list may take in one frame
OFFER = [BATCH_SUBPROTOCOL, SUBPROTOCOL]  # what a batching sender offers at the dial


def negotiated(subprotocol: str | None) -> bool:
    """True when the link's handshake selected batching."""
    return subprotocol == BATCH_SUBPROTOCOL


def _groups(texts: list[str]) -> Iterator[list[str]]:
    """The texts in order, cut into runs of at most MAX_BATCH whose total fits ROOM (a text too
    large to share a frame runs alone: every chat is sent)."""
    run: list[str] = []
    size = 0
    for text in texts:
        cost = len(text.encode()) + 1
        if run and (len(run) >= MAX_BATCH or size + cost > ROOM):
            yield run
            run, size = [], 0
        run.append(text)
        size += cost
    if run:
        yield run


def chat_frames(chats: list[str]) -> list[str]:
    """Encoded `chat` frames packed into `chats` frames; a run of one goes as its plain `chat`."""
    return [
        run[0] if len(run) == 1 else '{"type":"chats","chats":[' + ",".join(run) + "]}"
        for run in _groups(chats)
    ]


def ack_frames(acks: list[tuple[str, str]]) -> list[str]:
    """(id, proof) pairs, already valid, as `acks` frames fitted to MAX_BATCH and ROOM."""
    items = ['{"id":%s,"proof":"%s"}' % (json.dumps(i), p) for i, p in acks]
    return ['{"type":"acks","acks":[' + ",".join(run) + "]}" for run in _groups(items)]


def acks_of(frame: Acks) -> list[Ack]:
    """The acks of an `acks` frame as single acks (already validated: built without a check)."""
    return [Ack.model_construct(type="ack", id=a.id, proof=a.proof) for a in frame.acks]


def entries(raw: str | bytes) -> list[Chat | ProtocolError] | None:
    """The chats of a `chats` frame that failed validation as a whole, each validated alone (a
    bad one becomes its refusal, with its id where one can be read); None when the frame itself
    is malformed (not a `chats` object, `chats` not a list of 1 to MAX_BATCH) or refused whole
    by the strict parse for its form (binary, a key twice anywhere)."""
    if not isinstance(raw, str):
        return None
    try:
        obj = loads_unique(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("type") != "chats":
        return None
    items = obj.get("chats")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        return None
    out: list[Chat | ProtocolError] = []
    for item in items:
        try:
            out.append(CHAT.validate_python(item))
        except ValidationError as exc:
            code, message = describe(exc)
            fid = echoable_id(item.get("id")) if isinstance(item, dict) else None
            out.append(ProtocolError(code, f"chats: {message}", fid))
    return out


class AckBatch:
    """The acks of one `chats` frame, sent together once every chat of it that is being stored
    has settled (stored and acked, or failed): one `acks` frame in the normal case."""

    __slots__ = ("out", "acks", "pending", "sealed")

    def __init__(self, out: Sender) -> None:
        self.out = out
        self.acks: list[tuple[str, str]] = []
        self.pending = 0
        self.sealed = False

    def add(self, msg_id: str, proof: str) -> None:
        """The ack_back of each chat: an ack waits for its batch."""
        self.acks.append((msg_id, proof))

    def expect(self, stored: asyncio.Future[int]) -> None:
        """A chat being stored: the batch goes once its store settles (its ack is added first,
        by the callback `receive` put on the future before this one)."""
        self.pending += 1
        stored.add_done_callback(self._settled)

    def _settled(self, _: asyncio.Future[int]) -> None:
        self.pending -= 1
        self._flush()

    def seal(self) -> None:
        """Every chat of the frame was handled: send what is acked once nothing is pending."""
        self.sealed = True
        self._flush()

    def _flush(self) -> None:
        if self.sealed and self.pending == 0 and self.acks:
            acks, self.acks = self.acks, []
            for text in ack_frames(acks):
                self.out.push(text)
