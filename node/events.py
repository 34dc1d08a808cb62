"""The typed events a user node emits; the terminal UI and the headless client render only these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

ConnState = Literal["connecting", "connected", "failing_over", "offline"]
MsgState = Literal["queued", "sent", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class Event:
    def to_json(self) -> dict:
        """The headless client's line: the event name plus the fields, `from_` spelled `from`."""
        body = asdict(self)
        if "from_" in body:
            body["from"] = body.pop("from_")
        return {"event": EVENT_NAMES[type(self)], **body}


@dataclass(frozen=True, slots=True)
class Registered(Event):
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
    """

    id: str
    from_: str
    to: str
    ts: int
    text: str
    n: int = 0
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class MessageState(Event):
    id: str
    to: str
    state: MsgState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ContactAdded(Event):
    name: str
    new: bool


@dataclass(frozen=True, slots=True)
class ContactRemoved(Event):
    name: str


@dataclass(frozen=True, slots=True)
class KeyChanged(Event):
    name: str
    old_fingerprint: str
    new_fingerprint: str
    message: str


@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    code: str
    message: str
    name: str | None = None
    line: str | None = None


EVENT_NAMES: dict[type, str] = {
    Registered: "registered",
    SeedStatus: "seed",
    PresenceChanged: "presence",
    MessageReceived: "message",
    MessageState: "state",
    ContactAdded: "contact_added",
    ContactRemoved: "contact_removed",
    KeyChanged: "key_changed",
    ErrorEvent: "error",
}
