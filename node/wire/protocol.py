"""Wire protocol v1 as pydantic models: one discriminated union per direction, parsed once, no I/O.

Every frame that crosses a socket is parsed here by a `TypeAdapter` built at import time, so the
servers dispatch on model classes instead of poking at dicts. See docs/PROTOCOL.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ..errors import ErrorCode, ProtocolError
from .names import NAME_RULE, is_valid_name

SUBPROTOCOL = "p2pchat.v1"
MAX_FRAME = 64 * 1024
MAX_TEXT = 4000
MAX_INT = 2**63 - 1  # SQLite INTEGER; larger numbers are refused as bad_request
SYNC_CHUNK = 500


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise PydanticCustomError(
            "invalid_name",
            "invalid name {name!r}: " + NAME_RULE,
            {"name": value[:40]},
        )
    return value


def _b64(size: int | None, what: str) -> AfterValidator:
    def check(value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("base64", f"{what} is not standard padded base64") from None
        if size is not None and len(raw) != size:
            raise PydanticCustomError("base64_size", f"{what} must decode to {size} bytes")
        return value

    return AfterValidator(check)


def _check_endpoint(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise PydanticCustomError("endpoint", "endpoint is not a valid URL") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise PydanticCustomError("endpoint", "endpoint must be a ws:// or wss:// URL with a host")
    del port
    return value


Name = Annotated[str, AfterValidator(_check_name)]
FrameId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Key = Annotated[str, _b64(32, "key")]
Sig = Annotated[str, _b64(64, "sig")]
Nonce = Annotated[str, _b64(24, "nonce")]
Box = Annotated[str, StringConstraints(max_length=MAX_FRAME), _b64(None, "box")]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_endpoint)]
Millis = Annotated[int, Field(ge=0, le=MAX_INT)]
PosInt = Annotated[int, Field(ge=1, le=MAX_INT)]
SeedName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Frame(BaseModel):
    """Base of every frame: strict types (no "5" for 5), unknown extra fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Record(BaseModel):
    """A user's signed claim to a name; every party verifies it before accepting it."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Name
    key: Key
    endpoint: Url
    seq: PosInt
    sig: Sig


class PresenceItem(BaseModel):
    """A home seed's word on whether a name is online there, at its own clock."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    name: Name
    seed: SeedName
    online: bool
    at: Millis


class SeedInfo(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    name: SeedName
    url: Url
    key: Key | None
    up: bool
    rtt_ms: float | None


# ---------------------------------------------------------------- user -> seed (and seed -> seed lookups)


class Register(Frame):
    type: Literal["register"]
    id: FrameId
    record: Record


class Lookup(Frame):
    type: Literal["lookup"]
    id: FrameId
    name: Name
    hops: Annotated[int, Field(ge=0, le=1)] = 1


class Seeds(Frame):
    type: Literal["seeds"]
    id: FrameId


class Watch(Frame):
    type: Literal["watch"]
    id: FrameId
    names: Annotated[list[Name], Field(max_length=10_000)]


class SeedHello(Frame):
    type: Literal["seed_hello"]
    id: FrameId
    name: SeedName
    url: Url
    key: Key
    seeds: Annotated[list[Url], Field(max_length=1000)]


# ---------------------------------------------------------------- seed -> user


class Registered(Frame):
    type: Literal["registered"]
    id: FrameId
    seed: str


class Found(Frame):
    type: Literal["found"]
    id: FrameId
    record: Record
    online: bool
    seed: str | None
    last_seen: Millis | None


class SeedList(Frame):
    type: Literal["seed_list"]
    id: FrameId
    seeds: list[SeedInfo]


class Watching(Frame):
    type: Literal["watching"]
    id: FrameId


class Presence(Frame):
    type: Literal["presence"]
    name: Name
    online: bool
    seed: str | None
    last_seen: Millis | None


class Error(Frame):
    type: Literal["error"]
    id: str | None
    code: ErrorCode
    message: str


# ---------------------------------------------------------------- seed <-> seed


class SeedWelcome(Frame):
    type: Literal["seed_welcome"]
    id: FrameId
    name: SeedName
    url: Url
    key: Key
    seeds: Annotated[list[Url], Field(max_length=1000)]


class Sync(Frame):
    type: Literal["sync"]
    records: Annotated[list[Record], Field(max_length=SYNC_CHUNK)]
    presence: Annotated[list[PresenceItem], Field(max_length=SYNC_CHUNK)] = []
    done: bool


class Gossip(Frame):
    type: Literal["gossip"]
    records: Annotated[list[Record], Field(max_length=SYNC_CHUNK)] = []
    presence: Annotated[list[PresenceItem], Field(max_length=SYNC_CHUNK)] = []


# ---------------------------------------------------------------- user <-> user


class Chat(Frame):
    type: Literal["chat"]
    id: FrameId
    from_: Name = Field(alias="from")
    to: Name
    nonce: Nonce
    box: Box

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


class Ack(Frame):
    type: Literal["ack"]
    id: FrameId


class ChatPlain(BaseModel):
    """The plaintext inside a box; the receiver checks it against the outer frame."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)

    id: FrameId
    from_: Name = Field(alias="from")
    to: Name
    ts: Millis
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT)]


# ---------------------------------------------------------------- the unions, one per direction

ToSeed = Annotated[Union[Register, Lookup, Seeds, Watch, SeedHello], Field(discriminator="type")]
"""What a seed's server accepts from whoever dials it (users, and a seed opening a link)."""

FromSeed = Annotated[
    Union[Registered, Found, SeedList, Watching, Presence, Error], Field(discriminator="type")
]
"""What a user receives from its seed."""

SeedLink = Annotated[
    Union[SeedWelcome, Sync, Gossip, Lookup, Found, Error], Field(discriminator="type")
]
"""What travels on an established seed-to-seed link, in either direction."""

Direct = Annotated[Union[Chat, Ack, Error], Field(discriminator="type")]
"""What travels between two users' direct endpoints."""

TO_SEED: TypeAdapter[Any] = TypeAdapter(ToSeed)
FROM_SEED: TypeAdapter[Any] = TypeAdapter(FromSeed)
SEED_LINK: TypeAdapter[Any] = TypeAdapter(SeedLink)
DIRECT: TypeAdapter[Any] = TypeAdapter(Direct)
CHAT_PLAIN: TypeAdapter[ChatPlain] = TypeAdapter(ChatPlain)


def readable_id(raw: str | bytes) -> str | None:
    """The `id` of a frame that failed validation, when one can be read (for the error reply)."""
    try:
        obj = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if isinstance(obj, dict):
        fid = obj.get("id")
        if isinstance(fid, str) and 1 <= len(fid) <= 64:
            return fid
    return None


def describe(exc: ValidationError) -> tuple[ErrorCode, str]:
    """Map a validation failure to (protocol code, a human message naming the field)."""
    errors = exc.errors(include_url=False, include_input=False)
    code = ErrorCode.BAD_REQUEST
    for err in errors:
        if err["type"] == "invalid_name":
            code = ErrorCode.INVALID_NAME
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "json_invalid":
        return code, "frame is not valid JSON"
    if first["type"] in ("union_tag_not_found", "model_attributes_type", "model_type"):
        return code, "frame must be a JSON object with a string field 'type'"
    if first["type"] == "union_tag_invalid":
        return code, f"unknown frame type ({msg})"
    # drop the union tag from the location: 'register.record.seq' reads better as 'record.seq'
    parts = loc.split(".", 1)
    field = parts[1] if len(parts) > 1 else parts[0]
    return code, f"{field}: {msg}"


def parse(adapter: TypeAdapter[Any], raw: str | bytes) -> Any:
    """Parse one frame or raise ProtocolError carrying the code, a message and the readable id."""
    if isinstance(raw, bytes):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, "binary frames are not allowed; send JSON text frames"
        )
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        code, message = describe(exc)
        raise ProtocolError(code, message, readable_id(raw)) from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame nests too deeply", None) from None


def dump(frame: BaseModel) -> str:
    """Serialise a frame to its wire text (aliases on, so `from_` goes out as `from`)."""
    return frame.model_dump_json(by_alias=True)


def error_frame(code: ErrorCode, message: str, frame_id: str | None = None) -> str:
    return dump(Error(type="error", id=frame_id, code=code, message=message))


def frame_text(obj: dict[str, Any]) -> str:
    """Compact JSON text for a frame built by hand (tests and raw clients)."""
    return json.dumps(obj, separators=(",", ":"))
