"""A msgspec codec for the hot paths: the direct path's `chat` and `ack` frames (and r3's
`chats` and `acks` batches of them), a chat's plaintext, and the `register` frame a seed reads.

The pydantic models in protocol.py stay the definition. A frame is read here only when msgspec
decodes it under the same rules AND encoding what it decoded gives back exactly the input bytes:
msgspec, like any fast JSON reader, takes duplicate keys, escapes, spaces and other spellings
that the strict path refuses or reads differently, and none of those survive the re-encode.
Everything else goes to the strict path (`parse`), so its answers and errors are unchanged.
What comes out is the same pydantic model, built without validating a second time. The encoders
(chat frame, plaintext) write the bytes `json.dumps` wrote before (compact JSON, keys in
contract order); where msgspec would spell something differently they hand over to it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

import msgspec
from pydantic import BaseModel

from .protocol import (
    DIRECT,
    MAX_BATCH,
    MAX_BOX,
    MAX_INT,
    RELAY_ENDPOINT,
    TO_SEED,
    Ack,
    AckItem,
    Acks,
    Chat,
    Chats,
    Record,
    Register,
    Registered,
    SessionAuth,
    canonical_b64,
    canonical_b64_of,
    dump,
    parse,
    ws_url_problem,
)

# The rules of protocol.py's types, as msgspec constraints. msgspec matches a pattern with
# `re.search`, so each is anchored with \A and \Z (`$` would let a trailing newline through).
NameText = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")]
FrameIdText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# 24 bytes are exactly 32 base64 characters with no padding: every such string is canonical
_Nonce = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9+/]{32}\Z")]
_Box = Annotated[str, msgspec.Meta(max_length=MAX_BOX)]  # canonical base64: checked after
_Proof = Annotated[str, msgspec.Meta(max_length=1024)]  # the same
# base64 of 32 and 64 bytes (44 and 88 characters); what they decode to is checked after
_Key = Annotated[str, msgspec.Meta(min_length=44, max_length=44)]
_Sig = Annotated[str, msgspec.Meta(min_length=88, max_length=88)]
_Endpoint = Annotated[str, msgspec.Meta(max_length=2048)]  # relay: or a ws:// URL, checked after
_PosInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT)]
_Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]


class FastChat(msgspec.Struct, tag_field="type", tag="chat"):
    id: FrameIdText
    from_: NameText = msgspec.field(name="from")
    to: NameText
    nonce: _Nonce
    box: _Box


class FastAck(msgspec.Struct, tag_field="type", tag="ack"):
    id: FrameIdText
    proof: _Proof


class FastChats(msgspec.Struct, tag_field="type", tag="chats"):
    """r3: a batch of chats on a link that negotiated it (each chat exactly a `chat` frame)."""

    chats: Annotated[list[FastChat], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class FastAckItem(msgspec.Struct):
    id: FrameIdText
    proof: _Proof


class FastAcks(msgspec.Struct, tag_field="type", tag="acks"):
    acks: Annotated[list[FastAckItem], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class FastRecord(msgspec.Struct, forbid_unknown_fields=True):
    name: NameText
    key: _Key
    endpoint: _Endpoint
    seq: _PosInt
    sig: _Sig


class FastSessionAuth(msgspec.Struct, forbid_unknown_fields=True):
    name: NameText
    seed_key: _Key
    nonce: _Key  # the challenge: 32 bytes, like a key
    at: _Millis
    sig: _Sig


class FastRegister(msgspec.Struct, tag_field="type", tag="register"):
    id: FrameIdText
    record: FastRecord
    auth: FastSessionAuth


class FastRegistered(msgspec.Struct, tag_field="type", tag="registered"):
    id: str
    seed: str


class FastPlain(msgspec.Struct):
    """A chat's plaintext as a sender writes it (ChatPlain without its r3 fields): only encoded.

    Not decoded here: pydantic reads a plaintext (no duplicate-key pass there) in about the time
    msgspec takes to decode, re-encode and build the model, so that path stays strict."""

    id: str
    from_: str = msgspec.field(name="from")
    to: str
    ts: int
    text: str


_DIRECT = msgspec.json.Decoder(FastChat | FastAck | FastChats | FastAcks)
_REGISTER = msgspec.json.Decoder(FastRegister)
_ENCODER = msgspec.json.Encoder()
_encode = _ENCODER.encode
# what a decode may raise: not JSON, not these rules, text no codec can write (lone surrogates),
# or nesting deeper than msgspec recurses (in a field it skips); the strict path then says why
_FAST_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)


def exact(decoder: msgspec.json.Decoder[Any], raw: str) -> Any:
    """The frame `decoder` reads in `raw` when it re-encodes to exactly `raw`'s bytes (no
    duplicate key, space, escape or other order passes), else None: the fast paths' one rule."""
    try:
        frame = decoder.decode(raw)
        return frame if _encode(frame) == raw.encode() else None
    except _FAST_ERRORS:
        return None


M = TypeVar("M", bound=BaseModel)


def _model(cls: type[M], values: dict[str, Any]) -> M:
    """The model `cls` holding `values`, every one already checked against its rules: what
    `model_construct` builds (every field set, no extras, no private state), for a third of
    its cost."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _chat(frame: FastChat) -> Chat | None:
    if not canonical_b64(frame.box):
        return None
    return _model(
        Chat,
        {
            "type": "chat",
            "id": frame.id,
            "from_": frame.from_,
            "to": frame.to,
            "nonce": frame.nonce,
            "box": frame.box,
        },
    )


def _fast_direct(raw: str) -> Chat | Ack | Chats | Acks | None:
    frame = exact(_DIRECT, raw)
    if frame is None:
        return None
    if isinstance(frame, FastChat):
        return _chat(frame)
    if isinstance(frame, FastAck):
        if not canonical_b64(frame.proof):
            return None
        return _model(Ack, {"type": "ack", "id": frame.id, "proof": frame.proof})
    if isinstance(frame, FastChats):
        chats = [_chat(c) for c in frame.chats]
        if any(c is None for c in chats):
            return None  # the strict path says which chat is wrong
        return _model(Chats, {"type": "chats", "chats": chats})
    if not all(canonical_b64(a.proof) for a in frame.acks):
        return None
    items = [_model(AckItem, {"id": a.id, "proof": a.proof}) for a in frame.acks]
    return _model(Acks, {"type": "acks", "acks": items})


def parse_direct(raw: str | bytes) -> Any:
    """`parse(DIRECT, raw)`, the same model or the same ProtocolError, at a fraction of the cost
    for the chats and acks that senders write (compact, keys in contract order)."""
    if isinstance(raw, str):
        fast = _fast_direct(raw)
        if fast is not None:
            return fast
    return parse(DIRECT, raw)


def _fast_register(raw: str) -> Register | None:
    frame = exact(_REGISTER, raw)
    if frame is None:
        return None
    record, auth = frame.record, frame.auth
    if not (
        canonical_b64_of(record.key, 32)
        and canonical_b64_of(record.sig, 64)
        and canonical_b64_of(auth.seed_key, 32)
        and canonical_b64_of(auth.nonce, 32)
        and canonical_b64_of(auth.sig, 64)
    ):
        return None
    if record.endpoint != RELAY_ENDPOINT and ws_url_problem(record.endpoint) is not None:
        return None
    values = {
        "name": record.name,
        "key": record.key,
        "endpoint": record.endpoint,
        "seq": record.seq,
        "sig": record.sig,
    }
    signed = {
        "name": auth.name,
        "seed_key": auth.seed_key,
        "nonce": auth.nonce,
        "at": auth.at,
        "sig": auth.sig,
    }
    return _model(
        Register,
        {
            "type": "register",
            "id": frame.id,
            "record": _model(Record, values),
            "auth": _model(SessionAuth, signed),
        },
    )


def parse_to_seed(raw: str | bytes) -> Any:
    """`parse(TO_SEED, raw)`, the same model or the same ProtocolError; a `register` as users
    write it (compact, keys in contract order) is read at a fraction of the cost."""
    if isinstance(raw, str) and raw.startswith('{"type":"register",'):
        fast = _fast_register(raw)
        if fast is not None:
            return fast
    return parse(TO_SEED, raw)


def registered_text(fid: str, seed: str) -> str:
    """A seed's `registered` answer: the bytes `dump(Registered(...))` writes (printable ASCII is
    spelled alike by both writers; anything else goes to pydantic)."""
    if fid.isascii() and fid.isprintable() and seed.isascii() and seed.isprintable():
        return _encode(FastRegistered(fid, seed)).decode()
    return dump(Registered(type="registered", id=fid, seed=seed))


def plain_bytes(
    msg_id: str, sender: str, recipient: str, ts: int, text: str, extra: dict[str, Any] | None
) -> bytes:
    """A chat's plaintext: `{"id","from","to","ts","text"}` and then `extra`'s fields, compact,
    UTF-8 kept (as `json.dumps(..., ensure_ascii=False)` writes it)."""
    if extra is None:
        return _encode(FastPlain(msg_id, sender, recipient, ts, text))
    # r3 extras (a group's or an act's objects) may hold what msgspec spells differently (floats)
    fields: dict[str, Any] = {"id": msg_id, "from": sender, "to": recipient, "ts": ts}
    fields["text"] = text
    fields.update(extra)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def chat_text(msg_id: str, sender: str, recipient: str, nonce: str, box: str) -> str:
    """A `chat` frame for our own, already valid fields, compact, non-ASCII escaped (as
    `json.dumps` writes it; only the id can hold any)."""
    if msg_id.isascii() and "\x7f" not in msg_id:  # json.dumps escapes DEL, msgspec does not
        return _encode(FastChat(msg_id, sender, recipient, nonce, box)).decode()
    return json.dumps(
        {"type": "chat", "id": msg_id, "from": sender, "to": recipient, "nonce": nonce, "box": box},
        separators=(",", ":"),
    )
