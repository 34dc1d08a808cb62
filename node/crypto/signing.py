"""Signatures over a purpose prefix and canonical JSON, so no signature is ever valid for another use."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ..wire.protocol import (
    Carried,
    MailItem,
    Record,
    SeedAuth,
    SessionAuth,
    Taken,
    TakenId,
    dump_obj,
)
from .keys import Identity, unb64

# one prefix per purpose, so that no signature is ever valid for another
RECORD_PREFIX = b"p2pchat-record-v1:"
SESSION_PREFIX = b"p2pchat-session-v1:"
HELLO_PREFIX = b"p2pchat-seed-hello-v1:"
WELCOME_PREFIX = b"p2pchat-seed-welcome-v1:"
MAIL_PREFIX = b"p2pchat-mail-v1:"
TAKE_PREFIX = b"p2pchat-take-v1:"
ACK_PREFIX = b"p2pchat-ack-v1:"


def canonical(obj: dict[str, Any]) -> bytes:
    """The contract's canonical JSON: sorted keys at every depth, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_bytes(name: str, key: str, endpoint: str, seq: int) -> bytes:
    """The exact bytes a record signature covers: the prefix plus canonical JSON.

    Spelled out because every verification builds it: a valid name and a base64 key never need
    escaping, so only the endpoint goes through the JSON encoder (tests check both ways agree).
    """
    endpoint_json = json.dumps(endpoint, ensure_ascii=False)
    return b'%s{"endpoint":%s,"key":"%s","name":"%s","seq":%d}' % (
        RECORD_PREFIX,
        endpoint_json.encode(),
        key.encode(),
        name.encode(),
        seq,
    )


def ack_bytes(sender: str, msg_id: str, recipient: str) -> bytes:
    """The bytes an ack proof boxes: the prefix plus canonical {"from","id","to"}.

    Spelled out like `record_bytes` (every ack builds or checks one): valid names never need
    escaping, so only the message id, which the peer chose, goes through the JSON encoder
    (msgspec's writes what `json.dumps(..., ensure_ascii=False)` writes, at a tenth of its cost).
    """
    return b'%s{"from":"%s","id":%s,"to":"%s"}' % (
        ACK_PREFIX,
        sender.encode(),
        msgspec.json.encode(msg_id),
        recipient.encode(),
    )


def verify(key_b64: str, data: bytes, sig_b64: str) -> bool:
    """True when `sig_b64` is a valid signature of `data` by `key_b64`."""
    try:
        VerifyKey(unb64(key_b64)).verify(data, unb64(sig_b64))
        return True
    except (BadSignatureError, ValueError):
        return False


def sign_record(identity: Identity, name: str, endpoint: str, seq: int) -> Record:
    sig = identity.sign(record_bytes(name, identity.key, endpoint, seq))
    return Record(name=name, key=identity.key, endpoint=endpoint, seq=seq, sig=sig)


def verify_record(record: Record) -> bool:
    """True when the record's signature holds for its own key (who owns the name is the directory's job)."""
    return verify(
        record.key, record_bytes(record.name, record.key, record.endpoint, record.seq), record.sig
    )


def signed_bytes(prefix: bytes, obj: dict[str, Any]) -> bytes:
    """The bytes a signature over `obj` covers: its purpose prefix and its canonical JSON without `sig`."""
    return prefix + canonical({k: v for k, v in obj.items() if k != "sig"})


# ---------------------------------------------------------------- sessions


def sign_session(identity: Identity, name: str, seed_key: str, nonce: str, at: int) -> SessionAuth:
    """A user's proof that it holds the socket whose challenge was `nonce`, at the seed `seed_key`."""
    body = {"name": name, "seed_key": seed_key, "nonce": nonce, "at": at}
    return SessionAuth.model_validate(
        {**body, "sig": identity.sign(signed_bytes(SESSION_PREFIX, body))}
    )


def verify_session(auth: SessionAuth, user_key: str) -> bool:
    return verify(user_key, signed_bytes(SESSION_PREFIX, dump_obj(auth)), auth.sig)


# ---------------------------------------------------------------- seed links


def sign_seed_auth(
    identity: Identity,
    hello: bool,
    at: int,
    dialler: str,
    dialled: str,
    challenge: str,
    hello_nonce: str,
) -> SeedAuth:
    """One side's proof on a seed link: the hello's by the dialler, the welcome's by the dialled seed."""
    body = {
        "at": at,
        "dialler": dialler,
        "dialled": dialled,
        "challenge": challenge,
        "hello_nonce": hello_nonce,
    }
    prefix = HELLO_PREFIX if hello else WELCOME_PREFIX
    return SeedAuth.model_validate({**body, "sig": identity.sign(signed_bytes(prefix, body))})


def verify_seed_auth(auth: SeedAuth, key: str, hello: bool) -> bool:
    prefix = HELLO_PREFIX if hello else WELCOME_PREFIX
    return verify(key, signed_bytes(prefix, dump_obj(auth)), auth.sig)


# ---------------------------------------------------------------- mail and takes


def sign_mail(identity: Identity, to: str, sender: str, frame: Carried, at: int) -> MailItem:
    body = {"to": to, "from": sender, "frame": dump_obj(frame), "at": at}
    return MailItem.model_validate({**body, "sig": identity.sign(signed_bytes(MAIL_PREFIX, body))})


def verify_mail(item: MailItem, sender_key: str) -> bool:
    return verify(sender_key, signed_bytes(MAIL_PREFIX, dump_obj(item)), item.sig)


def sign_take(identity: Identity, to: str, ids: list[TakenId], at: int) -> Taken:
    body = {"to": to, "ids": [tuple(i) for i in ids], "at": at}
    return Taken.model_validate({**body, "sig": identity.sign(signed_bytes(TAKE_PREFIX, body))})


def verify_take(taken: Taken, recipient_key: str) -> bool:
    return verify(recipient_key, signed_bytes(TAKE_PREFIX, dump_obj(taken)), taken.sig)
