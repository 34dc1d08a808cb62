"""Signatures over a purpose prefix and canonical JSON, so no signature is ever valid for another use."""

from __future__ import annotations

import json
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ..wire.protocol import Record
from .keys import Identity, unb64

RECORD_PREFIX = b"p2pchat-record-v1:"


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
