"""The typed events a user node emits, and the stream they come out of.

The terminal UI and the headless client draw and print only these: nothing they show is read
from the node by other means while it runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal, Self

ConnState = Literal["connecting", "connected", "failing_over", "offline"]
MsgState = Literal["queued", "sent", "stored", "delivered", "failed"]
# how a message left: straight to the recipient's endpoint, through the seeds, or as mail
MsgPath = Literal["direct", "relay", "mail"]


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """`value` as `asdict` would give it: nested dataclasses as dicts, containers copied."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class Event:
    def to_json(self) -> dict[str, Any]:
        """The headless client's line: the event name plus the fields, `from_` spelled `from`."""
        names = _FIELDS.get(type(self))
        if names is None:
            names = _FIELDS[type(self)] = tuple(f.name for f in fields(self))
        # what `asdict` gives, without its deep copy of every plain value (a received message's
        # line is printed for each message: asdict was most of its cost)
        body = {name: _plain(getattr(self, name)) for name in names}
        if "from_" in body:
            body["from"] = body.pop("from_")
        if "group" in body and body["group"] is None:
            del body["group"]  # one-to-one lines stay as they were
        if "reply_to" in body and body["reply_to"] is None:
            del body["reply_to"]  # r3: only a reply says what it answers
        return {"event": EVENT_NAMES[type(self)], **body}


@dataclass(frozen=True, slots=True)
class NameRegistered(Event):
    """The node holds its name at a seed (a first registration, or one after a failover)."""

    name: str
    seed: str
    url: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class SeedState:
    url: str
    name: str | None
    up: bool | None
    rtt_ms: float | None
    home: bool
    embedded: bool = False
    key: str | None = None  # the key the mesh listed it with (what it must prove)


@dataclass(frozen=True, slots=True)
class SeedStatus(Event):
    state: ConnState
    home: str | None
    seeds: tuple[SeedState, ...] = field(default=())
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PresenceChanged(Event):
    name: str
    online: bool
    seed: str | None
    last_seen: int | None


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A message stored for the first time; `n` is its number in local history (it only grows).

    `replayed` marks one stored before but perhaps never shown: see UserNode.unshown().
    `key_changed` marks one from a key other than the sender's pinned one, not accepted yet: it
    must never be shown as if it came from the key the user trusts.
    """

    id: str
    from_: str
    to: str
    ts: int
    text: str
    n: int = 0
    replayed: bool = False
    key_changed: bool = False
    group: str | None = None  # r3: a group message (`id` its mid, `to` the group id)
    reply_to: str | None = None  # r3: a reply's target id (`text` is the reply's own text)


@dataclass(frozen=True, slots=True)
class MessageChanged(Event):
    """r3: a message was edited or deleted, or its reactions changed: the line as it is now.

    `peer` is the conversation (the other party's folded name, or the group id with `group`);
    `reactions` are (emoji, how many), `by` who made the change."""

    id: str
    peer: str
    n: int
    text: str
    edited: bool
    deleted: bool
    reactions: tuple[tuple[str, int], ...]
    by: str
    group: str | None = None


@dataclass(frozen=True, slots=True)
class MessageState(Event):
    """An outgoing message moved on (or was held back, `reason` saying why).

    `sent` carries the path it took (direct or relay), `stored` is mail held by the mesh for an
    offline recipient, `delivered` comes only with an acknowledgement whose proof opens. `reason`
    is a sentence for people; `code`, when a peer refused with one, is the protocol's code for
    programs (never inside `reason`).
    """

    id: str
    to: str
    state: MsgState
    reason: str | None = None
    path: MsgPath | None = None
    code: str | None = None
    group: str | None = None  # r3: one member's copy of a group frame (`id` the message's mid)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageQueued(MessageState):
    """A message just sent by this user: durable in the outbox, with what a UI needs to draw its line."""

    from_: str
    ts: int
    text: str
    reply_to: str | None = None  # r3: a reply's target id


@dataclass(frozen=True, slots=True)
class ContactAdded(Event):
    name: str
    new: bool


@dataclass(frozen=True, slots=True)
class ContactRemoved(Event):
    name: str


@dataclass(frozen=True, slots=True)
class ContactRespelled(Event):
    """A contact's name as its owner registered it, once a verified record shows it: the user
    may have typed `bob` for `Bob`, and the name is shown as its owner writes it."""

    name: str


@dataclass(frozen=True, slots=True)
class KeyChanged(Event):
    name: str
    old_fingerprint: str
    new_fingerprint: str
    message: str


@dataclass(frozen=True, slots=True)
class SessionReplaced(Event):
    """The name registered again somewhere newer (another app of this user): this node stopped
    reconnecting and stays offline until `UserNode.reconnect()` is called."""

    name: str
    message: str


@dataclass(frozen=True, slots=True)
class GroupChanged(Event):
    """A group state this node accepted (its own included): the group as it stands now."""

    group: str
    version: int
    topic: str
    members: tuple[str, ...]
    admins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    code: str
    message: str
    name: str | None = None
    line: str | None = None


EVENT_NAMES: dict[type, str] = {
    NameRegistered: "registered",
    SeedStatus: "seed",
    PresenceChanged: "presence",
    MessageReceived: "message",
    MessageChanged: "changed",
    MessageState: "state",
    MessageQueued: "state",
    ContactAdded: "contact_added",
    ContactRemoved: "contact_removed",
    ContactRespelled: "contact_respelled",
    KeyChanged: "key_changed",
    SessionReplaced: "session_replaced",
    ErrorEvent: "error",
    GroupChanged: "group",
}


class EventStream:
    """One subscriber's queue of events; iterate it with `async for`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()

    async def next(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)
