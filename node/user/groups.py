"""Group conversations, the pure core: signed, versioned group states and the rules every member
applies to them (docs/PROTOCOL.md, "Groups (r3)"). No I/O: the time is an argument, signing is a
callable, and what to send is returned to the caller (node/user/group_node.py does the I/O).

A state names the group's topic, its members (each with the key it is pinned to) and its admins;
it is signed by an admin of the version before and names that version's hash, so a member can
check every state it is handed with nothing but the states it holds. Two admins changing the
group at once make two states of one version: the one with the lower hash wins everywhere, and
the loser's admin applies its change again on top of the winner.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from ..crypto.keys import b64, unb64
from ..crypto.signing import canonical, verify
from ..errors import InvalidInput
from ..wire.names import fold_name
from ..wire.protocol import FrameId, Key, Millis, Name, PosInt, Sig

STATE_PREFIX = b"p2pchat-group-state-v1:"
GID_PREFIX = b"p2pchat-group-id-v1:"
MAX_MEMBERS = 100
MAX_TOPIC = 200
MAX_STATE_BYTES = 16_000  # a state's canonical JSON, sig included: 100 members fit with room
KEEP_STATES = 64  # states of one group kept (current line and lost branches), oldest dropped
ANSWER_BACK = 4  # an ask is answered from this many versions below the asker's, for forks
MAX_ANSWER = 32  # states sent for one ask at most
# a member's messages at each receiver, per group: a burst (a mail backlog) then a steady rate
MSG_RATE, MSG_BURST = 5.0, 200.0
# state changes a receiver accepts per group
STATE_RATE, STATE_BURST = 1.0, 64.0

Gid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Hash = Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{64})?$")]
Nonce16 = Annotated[str, StringConstraints(min_length=24, max_length=24)]
Topic = Annotated[str, StringConstraints(max_length=MAX_TOPIC)]


class _Exact(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


class MemberModel(_Exact):
    name: Name
    key: Key


class StateModel(_Exact):
    """A group state exactly as signed: every field covered by `sig`."""

    gid: Gid
    nonce: Nonce16
    v: PosInt
    prev: Hash
    topic: Topic
    members: Annotated[list[MemberModel], Field(min_length=1, max_length=MAX_MEMBERS)]
    admins: Annotated[list[Name], Field(min_length=1, max_length=MAX_MEMBERS)]
    by: Name
    at: Millis
    sig: Sig


# ---------------------------------------------------------------- the group part of a plaintext


class GroupMsg(_Exact):
    type: Literal["msg"]
    gid: Gid
    v: PosInt
    mid: FrameId


class GroupStatePart(_Exact):
    type: Literal["state"]
    state: StateModel


class GroupAsk(_Exact):
    type: Literal["ask"]
    gid: Gid
    v: Annotated[int, Field(ge=0, le=2**53 - 1)]


class GroupLeave(_Exact):
    type: Literal["leave"]
    gid: Gid


GroupPart = Annotated[
    Union[GroupMsg, GroupStatePart, GroupAsk, GroupLeave], Field(discriminator="type")
]
GROUP_PART: TypeAdapter[GroupMsg | GroupStatePart | GroupAsk | GroupLeave] = TypeAdapter(GroupPart)


def parse_part(obj: Any) -> GroupMsg | GroupStatePart | GroupAsk | GroupLeave | None:
    """The `group` object of a plaintext, or None when it is not one this revision knows."""
    try:
        return GROUP_PART.validate_python(obj)
    except ValidationError:
        return None


# ---------------------------------------------------------------- states


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    key: str


@dataclass(frozen=True)
class GroupState:
    """A parsed, size-checked state; `raw` is the object as signed, `hash` its identity."""

    model: StateModel
    raw: dict[str, Any]
    hash: str

    @property
    def gid(self) -> str:
        return self.model.gid

    @property
    def v(self) -> int:
        return self.model.v

    @property
    def prev(self) -> str:
        return self.model.prev

    @property
    def topic(self) -> str:
        return self.model.topic

    @property
    def by(self) -> str:
        return self.model.by

    @property
    def members(self) -> list[Member]:
        return [Member(m.name, m.key) for m in self.model.members]

    @property
    def admins(self) -> list[str]:
        return list(self.model.admins)

    def member(self, name: str) -> Member | None:
        folded = fold_name(name)
        return next((m for m in self.members if fold_name(m.name) == folded), None)

    def is_admin(self, name: str) -> bool:
        folded = fold_name(name)
        return any(fold_name(a) == folded for a in self.model.admins)

    def signed_bytes(self) -> bytes:
        return STATE_PREFIX + canonical({k: v for k, v in self.raw.items() if k != "sig"})

    def encoded(self) -> str:
        return canonical(self.raw).decode()


STATE: TypeAdapter[StateModel] = TypeAdapter(StateModel)


def state_hash(raw: dict[str, Any]) -> str:
    """A state's identity: SHA-256 of its canonical JSON, signature included (hex)."""
    return hashlib.sha256(canonical(raw)).hexdigest()


def load_state(obj: Any) -> GroupState:
    """Parse a state and check what needs no other state: shape, size, lists. InvalidInput if bad."""
    try:
        model = STATE.validate_python(obj)
    except ValidationError as exc:
        raise InvalidInput(f"not a group state: {exc.errors()[0]['msg']}") from None
    raw = model.model_dump(by_alias=True, mode="json")
    size = len(canonical(raw))
    if size > MAX_STATE_BYTES:
        raise InvalidInput(f"a group state is at most {MAX_STATE_BYTES} bytes (this one {size})")
    names = [fold_name(m.name) for m in model.members]
    if len(set(names)) != len(names):
        raise InvalidInput("a member is listed twice")
    admins = [fold_name(a) for a in model.admins]
    if len(set(admins)) != len(admins) or not set(admins) <= set(names):
        raise InvalidInput("every admin must be a member, once")
    if fold_name(model.by) not in names and model.v == 1:
        raise InvalidInput("the creator must be a member")
    if (model.v == 1) != (model.prev == ""):
        raise InvalidInput("only version 1 has no previous hash")
    return GroupState(model, raw, state_hash(raw))


def group_id(creator_key: str, nonce: str) -> str:
    """A group's id, bound to its creator's key: nobody else can sign a first state for it."""
    return hashlib.sha256(GID_PREFIX + unb64(creator_key) + unb64(nonce)).hexdigest()[:32]


def _sign(body: dict[str, Any], sign: Callable[[bytes], str]) -> GroupState:
    raw = {**body, "sig": sign(STATE_PREFIX + canonical(body))}
    return load_state(raw)


def _members_json(members: Iterable[Member]) -> list[dict[str, str]]:
    return [{"name": m.name, "key": m.key} for m in members]


def create(
    name: str,
    key: str,
    sign: Callable[[bytes], str],
    topic: str,
    others: Iterable[Member],
    now: int,
    nonce: str | None = None,
) -> GroupState:
    """Version 1 of a new group: its creator is its first member and first admin."""
    nonce = nonce or b64(os.urandom(16))
    members = [Member(name, key), *[m for m in others if fold_name(m.name) != fold_name(name)]]
    _check_limits(topic, members)
    body = {
        "gid": group_id(key, nonce),
        "nonce": nonce,
        "v": 1,
        "prev": "",
        "topic": topic,
        "members": _members_json(members),
        "admins": [name],
        "by": name,
        "at": now,
    }
    return _sign(body, sign)


def _check_limits(topic: str, members: list[Member]) -> None:
    if len(topic) > MAX_TOPIC:
        raise InvalidInput(f"a topic holds at most {MAX_TOPIC} characters")
    if len(members) > MAX_MEMBERS:
        raise InvalidInput(f"a group has at most {MAX_MEMBERS} members")


@dataclass(frozen=True)
class Change:
    """What an admin changes in one state: used to make it, and to make it again after a loss."""

    add: tuple[Member, ...] = ()
    remove: tuple[str, ...] = ()
    promote: tuple[str, ...] = ()
    topic: str | None = None

    def empty(self) -> bool:
        return not (self.add or self.remove or self.promote or self.topic is not None)


def apply(
    state: GroupState, by: str, sign: Callable[[bytes], str], change: Change, now: int
) -> GroupState:
    """The next version of `state` with `change`, signed by admin `by`. InvalidInput if not allowed."""
    if not state.is_admin(by):
        raise InvalidInput(f"{by} is not an admin of this group")
    members = list(state.members)
    held = {fold_name(m.name) for m in members}
    for m in change.add:
        if fold_name(m.name) not in held:
            members.append(m)
            held.add(fold_name(m.name))
    gone = {fold_name(n) for n in change.remove}
    members = [m for m in members if fold_name(m.name) not in gone]
    admins = [a for a in state.admins if fold_name(a) not in gone]
    present = {fold_name(m.name): m.name for m in members}
    for n in change.promote:
        if fold_name(n) not in present:
            raise InvalidInput(f"{n} is not a member of this group")
        if all(fold_name(a) != fold_name(n) for a in admins):
            admins.append(present[fold_name(n)])
    if not members:
        raise InvalidInput("a group keeps at least one member")
    if not admins:  # the last admin left: the longest-standing member takes over
        admins = [members[0].name]
    topic = state.topic if change.topic is None else change.topic
    _check_limits(topic, members)
    body = {
        "gid": state.gid,
        "nonce": state.model.nonce,
        "v": state.v + 1,
        "prev": state.hash,
        "topic": topic,
        "members": _members_json(members),
        "admins": admins,
        "by": by,
        "at": now,
    }
    return _sign(body, sign)


def diff(parent: GroupState, child: GroupState) -> Change:
    """The change `child` made to `parent` (to make it again on top of another state)."""
    before = {fold_name(m.name) for m in parent.members}
    after = {fold_name(m.name) for m in child.members}
    was_admin = {fold_name(a) for a in parent.admins}
    return Change(
        add=tuple(m for m in child.members if fold_name(m.name) not in before),
        remove=tuple(m.name for m in parent.members if fold_name(m.name) not in after),
        promote=tuple(a for a in child.admins if fold_name(a) not in was_admin),
        topic=child.topic if child.topic != parent.topic else None,
    )


def still_needed(change: Change, state: GroupState) -> Change:
    """The part of `change` that `state` does not already show."""
    names = {fold_name(m.name) for m in state.members}
    return Change(
        add=tuple(m for m in change.add if fold_name(m.name) not in names),
        remove=tuple(n for n in change.remove if fold_name(n) in names),
        promote=tuple(n for n in change.promote if fold_name(n) in names and not state.is_admin(n)),
        topic=change.topic if change.topic is not None and change.topic != state.topic else None,
    )


# ---------------------------------------------------------------- one group's chain of states


class Verdict(Enum):
    ACCEPTED = "accepted"  # the new current state (extends the line, or wins a fork)
    HELD = "held"  # known already: a copy or a replay
    LOST = "lost"  # a valid state that loses to one held (same version, higher hash)
    AHEAD = "ahead"  # names a state not held: ask its sender for the states before it
    REFUSED = "refused"  # forged, out of order, or not for this group


@dataclass
class Offer:
    verdict: Verdict
    reason: str = ""
    displaced: list[GroupState] = field(default_factory=list)  # old line states it replaced


def check_signature(state: GroupState, parent: GroupState | None) -> str | None:
    """Why `state` is not a valid successor of `parent` (None for version 1), or None if it is."""
    if parent is None:
        creator = state.member(state.by)
        if creator is None or not state.is_admin(state.by):
            return "the first state is not signed by its creator"
        if group_id(creator.key, state.model.nonce) != state.gid:
            return "the group id is not its creator's"
        key = creator.key
    else:
        if state.gid != parent.gid or state.model.nonce != parent.model.nonce:
            return "not a state of this group"
        if state.v != parent.v + 1 or state.prev != parent.hash:
            return "out of order"
        signer = parent.member(state.by)
        if signer is None or not parent.is_admin(state.by):
            return f"signed by {state.by}, who was not an admin of version {parent.v}"
        key = signer.key
    if not verify(key, state.signed_bytes(), state.model.sig):
        return "the signature does not hold"
    return None


class Chain:
    """The states of one group a member holds: the current line (version 1 or the oldest kept, up
    to the newest) and the states that lost a fork. Every state offered is checked against these."""

    def __init__(self, line: list[GroupState], lost: Iterable[GroupState] = ()) -> None:
        if not line:
            raise ValueError("a chain starts with a state")
        self.line = list(line)
        self.lost: dict[str, GroupState] = {s.hash: s for s in lost}

    @classmethod
    def first(cls, state: GroupState) -> tuple[Chain | None, str | None]:
        """A chain from the first state of a group new to this member: version 1 checked in full;
        a later version (a member added later gets the current state only) by the key its own
        member list gives its signer, who must be an admin in it."""
        if state.v == 1:
            problem = check_signature(state, None)
        else:
            signer = state.member(state.by)
            problem = (
                None
                if signer is not None
                and state.is_admin(state.by)
                and verify(signer.key, state.signed_bytes(), state.model.sig)
                else "the state is not signed by one of its admins"
            )
        return (None, problem) if problem else (cls([state]), None)

    @property
    def top(self) -> GroupState:
        return self.line[-1]

    def knows(self, hash_: str) -> bool:
        return hash_ in self.lost or any(s.hash == hash_ for s in self.line)

    def offer(self, state: GroupState) -> Offer:
        """Apply the written rule to a state handed to this member (see the module docstring)."""
        if state.gid != self.top.gid:
            return Offer(Verdict.REFUSED, "not a state of this group")
        if self.knows(state.hash):
            return Offer(Verdict.HELD, "held already")
        if state.prev in self.lost:
            problem = check_signature(state, self.lost[state.prev])
            if problem:
                return Offer(Verdict.REFUSED, problem)
            self.lost[state.hash] = state
            self._trim()
            return Offer(Verdict.LOST, "it follows a state that lost")
        at = next((i for i, s in enumerate(self.line) if s.hash == state.prev), None)
        if at is None:
            if state.v > self.top.v:
                return Offer(Verdict.AHEAD, "the states before it are not held")
            return Offer(Verdict.REFUSED, "it follows no state held")
        parent = self.line[at]
        problem = check_signature(state, parent)
        if problem:
            return Offer(Verdict.REFUSED, problem)
        if at == len(self.line) - 1:
            self.line.append(state)
            self._trim()
            return Offer(Verdict.ACCEPTED)
        rival = self.line[at + 1]
        if state.hash > rival.hash:
            self.lost[state.hash] = state
            self._trim()
            return Offer(Verdict.LOST, f"version {state.v} is held with a lower hash")
        displaced = self.line[at + 1 :]
        self.line = self.line[: at + 1] + [state]
        for s in displaced:
            self.lost[s.hash] = s
        self._trim()
        return Offer(Verdict.ACCEPTED, displaced=displaced)

    def _trim(self) -> None:
        while len(self.line) > KEEP_STATES // 2:
            self.line.pop(0)
        while len(self.lost) > KEEP_STATES // 2:
            self.lost.pop(min(self.lost, key=lambda h: self.lost[h].v))

    def answer(self, asked_v: int) -> list[GroupState]:
        """The states to send a member who holds version `asked_v` (a little below it too, so a
        member on a lost branch can find where it forked)."""
        start = max(0, asked_v - ANSWER_BACK)
        return [s for s in self.line if s.v > start][-MAX_ANSWER:]

    def states(self) -> list[GroupState]:
        return [*self.line, *self.lost.values()]


def rebase(displaced: list[GroupState], line: list[GroupState], me: str) -> list[Change]:
    """The changes `me` made in states that just lost a fork, to make again on top of the winner.

    `line` is the chain now; each displaced state's parent is in it or among the displaced."""
    by_hash = {s.hash: s for s in [*line, *displaced]}
    changes = []
    for s in displaced:
        parent = by_hash.get(s.model.prev)
        if parent is not None and fold_name(s.by) == fold_name(me):
            change = diff(parent, s)
            if not change.empty():
                changes.append(change)
    return changes


def state_view(state: GroupState) -> dict[str, Any]:
    """What a UI shows of a state (the headless `group` line's fields)."""
    return {
        "group": state.gid,
        "version": state.v,
        "topic": state.topic,
        "members": [m.name for m in state.members],
        "admins": state.admins,
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
