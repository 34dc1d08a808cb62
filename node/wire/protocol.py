"""Wire protocol v1, revision 2, as pydantic models: one discriminated union per direction, no I/O.

Every frame that crosses a socket is parsed here by a `TypeAdapter` built at import time, so the
servers dispatch on model classes instead of poking at dicts. Objects carried inside a frame
(records, session auths, mail items, takes, relayed frames) have exactly the fields their type
defines: their signatures cover every field, so nothing may be dropped or added on the way.
See docs/PROTOCOL.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal, Self, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import ErrorCode, ProtocolError
from .names import NAME_RULE, is_valid_name

SUBPROTOCOL = "p2pchat.v1"
# r3: offered at a direct dial besides SUBPROTOCOL; an endpoint that selects it takes `chats`
# frames and answers them with `acks` (docs/PROTOCOL.md, Batched chats on a direct link)
BATCH_SUBPROTOCOL = "p2pchat-batch-1"
MAX_BATCH = 32  # chats in one `chats` frame, acks in one `acks` frame
MAX_FRAME = 64 * 1024
REVISION = 3  # the protocol revision this code speaks, announced in seed_hello and seed_welcome
MAX_CARRIED = 48 * 1024  # a relayed frame, a record, a mail item: always fits once wrapped
MAX_TEXT = 4000
MAX_INT = 2**53 - 1  # signed objects hold integers below 2^53 (exact in every JSON reader)
MAX_BOX = 47_000  # base64 characters: a chat frame stays under MAX_CARRIED inside a mail item
MAX_TAKE_IDS = 400  # a take of this many ids stays under MAX_CARRIED
RELAY_ENDPOINT = "relay:"
MAX_SEED_URL = (
    256  # bytes of a seed URL a party keeps, lists or dials (r3); longer ones are dropped
)


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise PydanticCustomError(
            "invalid_name",
            "invalid name {name}: " + NAME_RULE,
            {"name": repr(value[:40])},
        )
    return value


def canonical_b64(value: str) -> bool:
    """True when `value` is standard padded base64 in canonical form, as `_b64` below checks it
    (the encoding of its decoded bytes), without re-encoding the whole of it: what the fast
    paths (fastcodec.py, relay_text.py) ask before taking a frame."""
    if len(value) % 4:
        return False
    try:
        binascii.a2b_base64(value, strict_mode=True)  # alphabet, padding, nothing after it
        tail = value[-4:]  # only the last quantum can hold bits that encode otherwise
        return binascii.b2a_base64(binascii.a2b_base64(tail), newline=False).decode() == tail
    except (binascii.Error, ValueError):
        return False


def canonical_b64_of(value: str, size: int) -> bool:
    """True when `value` is the canonical base64 of exactly `size` bytes, as `_b64(size, ...)`
    below checks it (a key, a signature, a nonce): what the fast paths ask of those."""
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == size and binascii.b2a_base64(raw, newline=False) == value.encode()


def _b64(size: int | None, what: str) -> AfterValidator:
    def check(value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("base64", f"{what} is not standard padded base64") from None
        if size is not None and len(raw) != size:
            raise PydanticCustomError("base64_size", f"{what} must decode to {size} bytes")
        if base64.b64encode(raw).decode() != value:
            raise PydanticCustomError("base64", f"{what} is not in canonical base64 form")
        return value

    return AfterValidator(check)


def ws_url_problem(value: str) -> str | None:
    """Why `value` is not a ws:// or wss:// URL with a host and a valid port, or None when it is one."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("ws", "wss"):
        return "a URL must start with ws:// or wss://"
    if not parts.hostname:
        return "the URL has no host"
    if port == 0:
        return "port 0 cannot be dialled"
    return None


def _check_url(value: str) -> str:
    problem = ws_url_problem(value)
    if problem:
        raise PydanticCustomError("url", problem)
    return value


def seed_url_problem(value: str) -> str | None:
    """Why `value` is not a seed URL to keep (a ws:// URL of at most MAX_SEED_URL bytes), or None."""
    if len(value.encode()) > MAX_SEED_URL:
        return f"a seed URL is at most {MAX_SEED_URL} bytes"
    return ws_url_problem(value)


def _check_seed_url(value: str) -> str:
    problem = seed_url_problem(value)
    if problem:
        raise PydanticCustomError("url", problem)
    return value


def _check_endpoint(value: str) -> str:
    if value == RELAY_ENDPOINT:
        return value
    problem = ws_url_problem(value)
    if problem:
        raise PydanticCustomError(
            "endpoint", f"endpoint must be {RELAY_ENDPOINT!r} or a ws:// URL: {problem}"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
FrameId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Key = Annotated[str, _b64(32, "key")]
Sig = Annotated[str, _b64(64, "sig")]
Nonce = Annotated[str, _b64(24, "nonce")]
Challenge32 = Annotated[str, _b64(32, "nonce")]
Epoch = Annotated[str, _b64(16, "epoch")]
Box = Annotated[str, StringConstraints(max_length=MAX_BOX), _b64(None, "box")]
Proof = Annotated[str, StringConstraints(max_length=1024), _b64(None, "proof")]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_url)]
SeedUrlText = Annotated[str, AfterValidator(_check_seed_url)]
"""A seed URL a party configures: longer than MAX_SEED_URL is refused. On the wire seed URLs
parse as `Url` (an r2 peer may pass a long one on), and the long ones are dropped, not the frame."""
Endpoint = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_endpoint)]
Millis = Annotated[int, Field(ge=0, le=MAX_INT)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
PosInt = Annotated[int, Field(ge=1, le=MAX_INT)]
SeedName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Rev = tuple[Epoch, Count]


class Frame(BaseModel):
    """Base of every frame: strict types (no "5" for 5), unknown extra fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)


class Exact(BaseModel):
    """Base of every object carried inside a frame: strict types and exactly its own fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- carried objects


class Record(Exact):
    """A user's signed claim to a name; every party verifies it before accepting it."""

    name: Name
    key: Key
    endpoint: Endpoint
    seq: PosInt
    sig: Sig


class SessionAuth(Exact):
    """A user's proof, signed by the record's key, that it holds this socket (the seed's challenge)."""

    name: Name
    seed_key: Key
    nonce: Challenge32
    at: Millis
    sig: Sig


class SeedAuth(Exact):
    """A seed's proof of its key on a link: both keys and both nonces, signed by one side."""

    at: Millis
    dialler: Key
    dialled: Key
    challenge: Challenge32
    hello_nonce: Challenge32
    sig: Sig


class Chat(Frame):
    type: Literal["chat"]
    id: FrameId
    from_: Name = Field(alias="from")
    to: Name
    nonce: Nonce
    box: Box


class Ack(Frame):
    type: Literal["ack"]
    id: FrameId
    proof: Proof


class Chats(Frame):
    """r3, on a direct link that negotiated BATCH_SUBPROTOCOL: several chats, each as sent alone."""

    type: Literal["chats"]
    chats: Annotated[list[Chat], Field(min_length=1, max_length=MAX_BATCH)]


class AckItem(Exact):
    """One chat's ack inside an `acks` frame: the id and proof of a single `ack`."""

    id: FrameId
    proof: Proof


class Acks(Frame):
    """r3: the acks of the chats of one `chats` frame that were stored."""

    type: Literal["acks"]
    acks: Annotated[list[AckItem], Field(min_length=1, max_length=MAX_BATCH)]


class CarriedChat(Chat):
    """A chat inside a relay or a mail item: exactly its fields, as sent on a direct socket."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


class CarriedAck(Ack):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


Carried = Annotated[Union[CarriedChat, CarriedAck], Field(discriminator="type")]
"""A frame one user sends another through the seeds (relay or mail); seeds never open it."""


class MailItem(Exact):
    """A frame held by the seeds for an offline recipient, signed by its sender."""

    to: Name
    from_: Name = Field(alias="from")
    frame: Carried
    at: Millis
    sig: Sig

    def ident(self) -> tuple[str, str, str]:
        """Its identity: (sender, frame type, frame id); a second deposit of it is the same item."""
        return self.from_, self.frame.type, self.frame.id


TakenId = tuple[Name, Literal["chat", "ack"], FrameId]


class Taken(Exact):
    """A recipient's signed word that it has these mail items: the only thing that deletes them."""

    to: Name
    ids: Annotated[list[TakenId], Field(min_length=1, max_length=MAX_TAKE_IDS)]
    at: Millis
    sig: Sig


class PresenceItem(Exact):
    """A home seed's word on whether a name is online there, at its own clock.

    An online item carries the user's session auth at that seed, so no seed can claim a user
    that never proved itself there.
    """

    name: Name
    seed: SeedName
    seed_key: Key
    online: bool
    at: Millis
    auth: SessionAuth | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _online_has_auth(self) -> Self:
        if self.online and self.auth is None:
            raise PydanticCustomError(
                "presence", "an online presence item carries the session auth"
            )
        if not self.online and self.auth is not None:
            raise PydanticCustomError("presence", "an offline presence item carries no auth")
        return self


class SeedInfo(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    name: SeedName
    url: Url
    key: Key
    up: bool
    rtt_ms: float | None


# ---------------------------------------------------------------- user -> seed


class Register(Frame):
    type: Literal["register"]
    id: FrameId
    record: Record
    auth: SessionAuth


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


class Publish(Frame):
    type: Literal["publish"]
    id: FrameId
    records: Annotated[list[Record], Field(max_length=500)]


class Relay(Frame):
    type: Literal["relay"]
    id: FrameId
    to: Name
    frame: Carried


class Deposit(Frame):
    type: Literal["deposit"]
    id: FrameId
    item: MailItem


class Take(Frame):
    type: Literal["take"]
    id: FrameId
    taken: Taken


class SeedHello(Frame):
    type: Literal["seed_hello"]
    id: FrameId
    name: SeedName
    url: Url
    key: Key
    seeds: Annotated[list[Url], Field(max_length=1000)]
    since: Rev | None
    nonce: Challenge32
    auth: SeedAuth
    revision: Annotated[int, Field(ge=1, le=1_000_000)] = 2  # r3: what it speaks (r2: absent)
    # r3 (docs/PROTOCOL.md, Seed broadcast): the broadcast it offers, "plumtree-1"; absent: flood
    broadcast: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )


# ---------------------------------------------------------------- seed -> user


class ChallengeFrame(Frame):
    """The first frame on every socket a seed accepts: the nonce a session or a seed signs."""

    type: Literal["challenge"]
    nonce: Challenge32
    seed: SeedName
    seed_key: Key


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
    seeds: Annotated[list[SeedInfo], Field(max_length=1000)]


class Watching(Frame):
    type: Literal["watching"]
    id: FrameId


class Presence(Frame):
    type: Literal["presence"]
    name: Name
    online: bool
    seed: str | None
    last_seen: Millis | None


class Published(Frame):
    type: Literal["published"]
    id: FrameId
    accepted: Count


class RelayOk(Frame):
    type: Literal["relay_ok"]
    id: FrameId


class Relayed(Frame):
    """A frame another user relayed to this socket's user; `from` is a hint, the box is the proof."""

    type: Literal["relayed"]
    from_: Name = Field(alias="from")
    frame: Carried


class Deposited(Frame):
    type: Literal["deposited"]
    id: FrameId


class Took(Frame):
    type: Literal["took"]
    id: FrameId


class MailPush(Frame):
    """Mail held for this socket's user, oldest first."""

    type: Literal["mail"]
    items: Annotated[list[MailItem], Field(max_length=2000)]


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
    since: Rev | None
    auth: SeedAuth
    revision: Annotated[int, Field(ge=1, le=1_000_000)] = 2  # r3: as in seed_hello
    broadcast: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, exclude_if=lambda v: v is None
    )  # r3: as in seed_hello


class Sync(Frame):
    type: Literal["sync"]
    records: Annotated[list[Record], Field(max_length=5000)] = []
    presence: Annotated[list[PresenceItem], Field(max_length=5000)] = []
    mail: Annotated[list[MailItem], Field(max_length=5000)] = []
    taken: Annotated[list[Taken], Field(max_length=5000)] = []
    rev: Rev
    done: bool


class Gossip(Frame):
    type: Literal["gossip"]
    records: Annotated[list[Record], Field(max_length=5000)] = []
    presence: Annotated[list[PresenceItem], Field(max_length=5000)] = []
    mail: Annotated[list[MailItem], Field(max_length=5000)] = []
    taken: Annotated[list[Taken], Field(max_length=5000)] = []
    rev: Rev


MAX_BROADCAST_IDS = 256  # ids in one ihave or graft frame (r3)
BroadcastId = Annotated[str, StringConstraints(min_length=1, max_length=16)]


class Ihave(Frame):
    """r3, on a tree link: ids of items the sender has and did not send whole on this link."""

    type: Literal["ihave"]
    ids: Annotated[list[BroadcastId], Field(min_length=1, max_length=MAX_BROADCAST_IDS)]


class Graft(Frame):
    """r3, on a tree link: send me these items, and send me items whole from now on."""

    type: Literal["graft"]
    ids: Annotated[list[BroadcastId], Field(max_length=MAX_BROADCAST_IDS)] = []


class Prune(Frame):
    """r3, on a tree link: send me ids, not items, from now on (your items reach me otherwise)."""

    type: Literal["prune"]


class PeerRelay(Frame):
    """A relayed frame on its way to `to`'s home seed (no id: it is not answered)."""

    type: Literal["relay"]
    from_: Name = Field(alias="from")
    to: Name
    frame: Carried


# ---------------------------------------------------------------- user <-> user


class ChatPlain(BaseModel):
    """The plaintext inside a box; the receiver checks it against the outer frame."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)

    id: FrameId
    from_: Name = Field(alias="from")
    to: Name
    ts: Millis
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT)]
    # r3 (docs/PROTOCOL.md, Groups): absent or "chat" for a message; "group" with a `group`
    # object for group frames; any other kind is shown as `text`, as an r2 node does
    kind: Annotated[str, StringConstraints(max_length=32)] = "chat"
    group: dict[str, Any] | None = None
    # r3 (docs/PROTOCOL.md, Replies, reactions, edits and deletes): a reply, reaction, edit or
    # delete naming another message (node/user/acts.py reads it); `text` stays readable without it
    act: dict[str, Any] | None = None


# ---------------------------------------------------------------- the unions, one per direction

ToSeed = Annotated[
    Union[Register, Lookup, Seeds, Watch, Publish, Relay, Deposit, Take, SeedHello],
    Field(discriminator="type"),
]
"""What a seed's server accepts from whoever dials it (users, and a seed opening a link)."""

FromSeed = Annotated[
    Union[
        ChallengeFrame,
        Registered,
        Found,
        SeedList,
        Watching,
        Presence,
        Published,
        RelayOk,
        Relayed,
        Deposited,
        Took,
        MailPush,
        Error,
    ],
    Field(discriminator="type"),
]
"""What a user receives from its seed (and a dialling seed, before the welcome)."""

SeedLink = Annotated[
    Union[SeedWelcome, Sync, Gossip, Lookup, Found, Error, PeerRelay, Ihave, Graft, Prune],
    Field(discriminator="type"),
]
"""What travels on an established seed-to-seed link, in either direction."""

Direct = Annotated[Union[Chat, Ack, Error, Chats, Acks], Field(discriminator="type")]
"""What travels between two users' direct endpoints (`chats` and `acks`: r3, negotiated)."""

TO_SEED: TypeAdapter[Any] = TypeAdapter(ToSeed)
FROM_SEED: TypeAdapter[Any] = TypeAdapter(FromSeed)
SEED_LINK: TypeAdapter[Any] = TypeAdapter(SeedLink)
DIRECT: TypeAdapter[Any] = TypeAdapter(Direct)
CHAT_PLAIN: TypeAdapter[ChatPlain] = TypeAdapter(ChatPlain)
CARRIED: TypeAdapter[Any] = TypeAdapter(Carried)
CHAT: TypeAdapter[Chat] = TypeAdapter(Chat)


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey(next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i])))
    return obj


def loads_unique(raw: str) -> Any:
    """JSON text as `json.loads` reads it, but ValueError for an object with a key twice (as
    `parse` refuses it): for a frame read by hand after the models refused it."""
    return json.loads(raw, object_pairs_hook=_no_duplicate_keys)


def echoable_id(fid: Any) -> str | None:
    """`fid` when an error may echo it as an id: a string of 1-64 characters that UTF-8 can
    spell (json.loads reads a lone surrogate escape, which no answer could then be written with)."""
    if not isinstance(fid, str) or not 1 <= len(fid) <= 64:
        return None
    try:
        fid.encode()
    except UnicodeEncodeError:
        return None
    return fid


def readable_id(raw: str | bytes) -> str | None:
    """The `id` of a frame that failed validation, when one can be read (for the error reply)."""
    try:
        obj = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return echoable_id(obj.get("id")) if isinstance(obj, dict) else None


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
        json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"an object has the key {exc} twice", readable_id(raw)
        ) from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame nests too deeply", None) from None
    except ValueError:
        pass  # not JSON: the validator below says so
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        code, message = describe(exc)
        raise ProtocolError(code, message, readable_id(raw)) from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "frame nests too deeply", None) from None


def dump(frame: BaseModel) -> str:
    """Serialise a frame to its wire text (aliases on, so `from_` goes out as `from`)."""
    return frame.model_dump_json(by_alias=True, exclude_none=False)


def dump_obj(obj: BaseModel) -> dict[str, Any]:
    """A carried object as the plain JSON object it is on the wire (for signing and sizing)."""
    return obj.model_dump(by_alias=True, mode="json")


def error_frame(code: ErrorCode, message: str, frame_id: str | None = None) -> str:
    return dump(Error(type="error", id=frame_id, code=code, message=message))


def frame_text(obj: dict[str, Any]) -> str:
    """Compact JSON text for a frame built by hand (tests and raw clients)."""
    return json.dumps(obj, separators=(",", ":"))
