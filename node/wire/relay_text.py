"""A seed's fast path for `relay` frames: the envelope checked, the carried frame kept as text.

A seed never opens or alters a relayed frame (docs/PROTOCOL.md, Relay), so parsing it into a
pydantic model and dumping it again is work spent on bytes that are forwarded as they came. A
frame takes this path only when it is exactly the msgspec encoding of what it decodes to (no
spaces, no escapes that encode otherwise, no unknown or repeated keys, fields in the model's
order); its fields pass the same rules as the models in `protocol.py`. Anything else (and every
frame that would get an error) returns None here and goes through `protocol.parse`, which says
what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import msgspec

from .fastcodec import FastAck, FastChat, FrameIdText, NameText, exact
from .protocol import canonical_b64


class _Relay(msgspec.Struct, tag_field="type", tag="relay"):
    """The envelope; the carried chat or ack under the direct path's rules (fastcodec.py)."""

    id: FrameIdText
    to: NameText
    frame: FastChat | FastAck


_DECODER = msgspec.json.Decoder(_Relay)
_PREFIX = '{"type":"relay","id":'
_FRAME_KEY = ',"frame":'


@dataclass(frozen=True, slots=True)
class RelayText:
    """A `relay` frame whose carried frame is kept as the text it came in."""

    id: str
    to: str
    chat_from: str | None  # the carried chat's `from`; None for an ack
    frame: str  # the carried frame, exactly as received


def relay_text(raw: str | bytes) -> RelayText | None:
    """The relay in `raw` when it may take the fast path, else None (then parse it as usual)."""
    if not isinstance(raw, str) or not raw.startswith(_PREFIX):
        return None
    relay = exact(_DECODER, raw)
    if relay is None:
        return None
    carried = relay.frame
    # names, ids and the nonce are checked by their types; base64 bodies must be canonical too
    if isinstance(carried, FastChat):
        if not canonical_b64(carried.box):
            return None
        chat_from: str | None = carried.from_
    else:
        if not canonical_b64(carried.proof):
            return None
        chat_from = None
    # the first `,"frame":` outside a string is the envelope's (inside one a quote is escaped)
    start = raw.index(_FRAME_KEY) + len(_FRAME_KEY)
    return RelayText(relay.id, relay.to, chat_from, raw[start:-1])


def json_text(value: str) -> str:
    """A string as JSON text, as `protocol.dump` writes it (UTF-8 kept, not escaped)."""
    return json.dumps(value, ensure_ascii=False)
