"""Groups on the node: every group frame goes to each member as its own boxed chat (one outbox
entry, one ack per member, by whatever path reaches that member), and every one received is
checked against the states held (groups.py holds the rules; this module does the sending,
storing and showing). docs/PROTOCOL.md, "Groups (r3)".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..crypto.keys import Identity
from ..errors import ErrorCode, InternalError, InvalidInput, ProtocolError
from ..runtime import quiet_logger
from ..wire.limits import RateLimit
from ..wire.names import fold_name, require_name
from ..wire.protocol import MAX_TEXT, ChatPlain
from .act_node import ActNode
from .acts import Act, ActType, dump, fallback, load, make, parse_act
from .events import (
    Event,
    GroupChanged,
    MessageQueued,
    MessageReceived,
    MessageState,
    MsgPath,
    MsgState,
)
from .group_store import Copy, DeliveryView, GroupMessage, GroupStore, delivery_view
from .groups import (
    MSG_BURST,
    MSG_RATE,
    STATE_BURST,
    STATE_RATE,
    Chain,
    Change,
    GroupAsk,
    GroupLeave,
    GroupMsg,
    GroupState,
    GroupStatePart,
    Member,
    Verdict,
    apply,
    create,
    dumps,
    load_state,
    parse_part,
    rebase,
    still_needed,
)
from .store import Envelope, StoredMessage, UserStore, unique_match

log = quiet_logger("p2p.user.groups")

ASK_EVERY = 10.0  # seconds between asks (and answers) per group and member
MAX_HELD_PER_GROUP = 200
MAX_HELD = 1000
MIN_PREFIX = 6
MAX_GROUPS = 1000  # groups a user holds at most (anyone may add anyone to a group)


class GroupNode:
    """The groups this user is in: their chains of states, and the frames in and out."""

    def __init__(
        self,
        name: str,
        identity: Identity,
        store: UserStore,
        queue: Callable[[StoredMessage], None],
        resolve_key: Callable[[str], Awaitable[Member]],
        next_ts: Callable[[], int],
        now_ms: Callable[[], int],
        emit: Callable[[Event], None],
    ) -> None:
        self.name = name
        self.folded = fold_name(name)
        self.identity = identity
        self.gstore = GroupStore(store)
        self.queue = queue
        self.resolve_key = resolve_key
        self.next_ts = next_ts
        self.now_ms = now_ms
        self.emit = emit
        self.chains: dict[str, Chain] = {}
        self.left: set[str] = set()
        self.msg_limits: dict[tuple[str, str], RateLimit] = {}
        self.state_limits: dict[str, RateLimit] = {}
        self.asked: dict[tuple[str, str], float] = {}
        self.answered: dict[tuple[str, str], float] = {}
        # (gid, mid, folded member) -> (state, reason) reported lately (the disk may lag)
        self.recent: dict[tuple[str, str], dict[str, Copy]] = {}
        self.settled: set[int] = set()  # held messages released or dropped
        self.acts: ActNode | None = None  # r3 replies, reactions, edits, deletes (set by the node)
        self._load()

    def _load(self) -> None:
        for gid, top, left_at in self.gstore.groups():
            states: dict[str, GroupState] = {}
            for raw in self.gstore.states(gid):
                try:
                    s = load_state(raw)
                except InvalidInput:
                    continue
                states[s.hash] = s
            line = []
            at = states.get(top)
            while at is not None:
                line.append(at)
                at = states.get(at.prev)
            if not line:
                continue
            line.reverse()
            on_line = {s.hash for s in line}
            self.chains[gid] = Chain(line, [s for h, s in states.items() if h not in on_line])
            if left_at:
                self.left.add(gid)

    def pending(self) -> list[StoredMessage]:
        """Copies still to deliver (after a restart they go back in the outbox)."""
        return self.gstore.pending()

    # ------------------------------------------------------------------ reading

    def resolve(self, ref: str) -> str:
        """A group id from the id or a unique prefix of it (at least 6 characters)."""
        ref = ref.strip().lower()
        if ref in self.chains:
            return ref
        if len(ref) < MIN_PREFIX:
            raise InvalidInput(
                f"name a group by its id or at least {MIN_PREFIX} of its first characters"
            )
        hits = [g for g in self.chains if g.startswith(ref)]
        if not hits:
            raise InvalidInput(f"no group {ref}")
        if len(hits) > 1:
            raise InvalidInput(f"{ref} names {len(hits)} groups; give more of the id")
        return hits[0]

    def state(self, gid: str) -> GroupState:
        return self.chains[gid].top

    def groups(self) -> list[GroupState]:
        return [c.top for g, c in sorted(self.chains.items()) if g not in self.left]

    def history(self, gid: str, before: int | None = None, limit: int = 100) -> list[GroupMessage]:
        return self.gstore.history(gid, before, limit)

    def history_after(self, gid: str, after: int, limit: int = 100) -> list[GroupMessage]:
        return self.gstore.history_after(gid, after, limit)

    def delivery(self, gid: str, mid: str) -> DeliveryView:
        """Who has one of our group messages, and who not and why (the disk, and the states
        reported since that may not be written yet)."""
        copies = {fold_name(c.recipient): c for c in self.gstore.copies(gid, mid)}
        copies.update(self.recent.get((gid, mid), {}))
        return delivery_view([copies[k] for k in sorted(copies)])

    def is_member(self, gid: str) -> bool:
        chain = self.chains.get(gid)
        return (
            chain is not None and gid not in self.left and chain.top.member(self.name) is not None
        )

    # ------------------------------------------------------------------ commands

    async def new(self, topic: str, names: list[str]) -> GroupState:
        if len(self.chains) >= MAX_GROUPS:
            raise InvalidInput(f"you hold {MAX_GROUPS} groups already")
        others = [await self.resolve_key(require_name(n)) for n in names]
        state = create(
            self.name, self.identity.key, self.identity.sign, topic, others, self.now_ms()
        )
        chain, problem = Chain.first(state)
        if chain is None:  # our own state: never refused by our own rules
            raise InternalError(f"our own group state was refused: {problem}")
        self.chains[state.gid] = chain
        self._adopt(state, [])
        self._send_state(state, [])
        return state

    async def add(self, ref: str, name: str) -> GroupState:
        gid = self.resolve(ref)
        member = await self.resolve_key(require_name(name))
        if self.state(gid).member(name) is not None:
            raise InvalidInput(f"{name} is a member already")
        return self._change(gid, Change(add=(member,)))

    def remove(self, ref: str, name: str) -> GroupState:
        gid = self.resolve(ref)
        if self.state(gid).member(name) is None:
            raise InvalidInput(f"{name} is not a member")
        return self._change(gid, Change(remove=(name,)))

    def promote(self, ref: str, name: str) -> GroupState:
        gid = self.resolve(ref)
        if self.state(gid).is_admin(name):
            raise InvalidInput(f"{name} is an admin already")
        return self._change(gid, Change(promote=(name,)))

    def set_topic(self, ref: str, topic: str) -> GroupState:
        return self._change(self.resolve(ref), Change(topic=topic))

    def leave(self, ref: str) -> None:
        gid = self.resolve(ref)
        self._require_member(gid)
        top = self.state(gid)
        if top.is_admin(self.name):
            self._change(gid, Change(remove=(self.name,)))
        else:
            part = dumps({"type": "leave", "gid": gid})
            for admin in top.admins:
                m = top.member(admin)
                if m is not None:
                    self._copy(m, gid, f"leave:{top.v}", self._notice(top), part, None)
        self._mark_left(gid)

    def _require_member(self, gid: str) -> None:
        if not self.is_member(gid):
            raise InvalidInput("you are not a member of this group")

    def _change(self, gid: str, change: Change) -> GroupState:
        self._require_member(gid)
        chain = self.chains[gid]
        before = chain.top
        state = apply(before, self.name, self.identity.sign, change, self.now_ms())
        offer = chain.offer(state)
        if offer.verdict is not Verdict.ACCEPTED:  # our own change: never refused by our rules
            raise InternalError(f"our own group change was refused: {offer.reason}")
        self._adopt(state, [])
        self._send_state(state, before.members)
        return state

    async def send(self, ref: str, text: str, act: Act | None = None) -> str:
        """Send a message (or, r3, an act: its `text` the fallback) to every member of the group;
        its mid once queued."""
        gid = self.resolve(ref)
        if not text:
            raise InvalidInput("an empty message is not sent")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"a message holds at most {MAX_TEXT} characters")
        self._require_member(gid)
        top = self.state(gid)
        mid = uuid.uuid4().hex
        ts = self.next_ts()
        raw = dump(act) if act is not None else None
        stored = self.gstore.add_message(gid, self.name, mid, top.v, ts, text, True, False, raw)
        part = dumps({"type": "msg", "gid": gid, "v": top.v, "mid": mid})
        for m in top.members:
            if fold_name(m.name) != self.folded:
                self._copy(m, gid, mid, text, part, ts, raw)
        n = await stored if act is not None else 0  # an act's line is drawn from the store
        if act is None or act.type == "reply":
            self.emit(
                MessageQueued(
                    id=mid,
                    to=gid,
                    state="queued",
                    from_=self.name,
                    ts=ts,
                    text=act.text if act is not None else text,
                    group=gid,
                    reply_to=act.ref if act is not None else None,
                )
            )
        if act is None:
            await stored
        elif n and self.acts is not None:
            self.acts.apply("g", gid, n, self.name, ts, act)
        return mid

    # ------------------------------------------------------------------ r3: acts (acts.py)

    def find_message(self, ref: str, gid: str | None = None) -> tuple[str, str]:
        """(group id, mid) of a visible group message (in group `gid`, if given) by its mid or a
        unique prefix of it."""
        where, params = "hidden = 0 AND held = 0 AND mid >= ? AND mid < ?", [ref, ref + "\uffff"]
        if gid is not None:
            where += " AND gid = ?"
            params.append(gid)
        rows = self.gstore._read(
            f"SELECT DISTINCT gid, mid FROM group_messages WHERE {where} LIMIT 2", tuple(params)
        )
        exact = [r for r in rows if r[1] == ref]
        row = unique_match(exact or rows, ref, f"no group message has the id {ref}")
        return row[0], row[1]

    def pick(self, gid: str, ref: str | None, mine: bool = False) -> GroupMessage:
        """A group message by mid prefix, or the newest line (ours, when `mine`)."""
        if ref is None:
            where = "gid = ? AND hidden = 0 AND held = 0 AND changed != 2"
            where += " AND outgoing = 1" if mine else ""
            rows = self.gstore._read(
                f"SELECT mid FROM group_messages WHERE {where} "
                "ORDER BY ts DESC, skey DESC, mid DESC LIMIT 1",
                (gid,),
            )
            if not rows:
                raise InvalidInput("no message of yours in this group" if mine else "no message")
            ref = rows[0][0]
        _, mid = self.find_message(ref, gid)
        rows = self.gstore._read(
            "SELECT n, gid, sender, mid, v, ts, text, outgoing, act, changed FROM group_messages "
            "WHERE gid = ? AND mid = ? AND hidden = 0 ORDER BY outgoing DESC, n",
            (gid, mid),
        )
        r = rows[0]
        return GroupMessage(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8], r[9])

    async def act(self, ref: str, kind: ActType, target_ref: str | None, text: str = "") -> str:
        """A reply (`text`), reaction (`text` the emoji), edit (`text`) or delete in a group."""
        gid = self.resolve(ref)
        mine = kind in ("edit", "delete")
        target = self.pick(gid, target_ref, mine)
        if mine and fold_name(target.sender) != self.folded:
            raise InvalidInput(f"you can {kind} only your own messages")
        if target.changed == 2:
            raise InvalidInput("that message was deleted")
        if kind == "react":
            act = make(kind, target.mid, emoji=text)
        elif kind == "delete":
            act = make(kind, target.mid)
        else:
            act = make(kind, target.mid, text)
        shown = target.text if target.act is None else (load(target.act) or act).text
        return await self.send(gid, fallback(act, "" if target.changed == 2 else shown), act)

    # ------------------------------------------------------------------ sending

    def _notice(self, state: GroupState) -> str:
        """The `text` an r2 node shows for a state, ask or leave frame."""
        return f"[group {state.topic[:80]}: a newer client shows groups]"

    def _copy(
        self,
        to: Member,
        gid: str,
        ref: str,
        text: str,
        part: str,
        ts: int | None,
        act: str | None = None,
    ) -> None:
        """One member's copy of a group frame: stored, then queued like any message to it (its
        ack's proof is checked against the key the group lists for the member)."""
        msg = StoredMessage(
            peer=fold_name(to.name),
            id=uuid.uuid4().hex,
            outgoing=True,
            sender=self.name,
            recipient=to.name,
            ts=ts if ts is not None else self.next_ts(),
            text=text,
            state="queued",
            envelope=Envelope(gid, ref, part, to.key),
            act=act,
        )
        self.gstore.add_copy(msg)
        self._note(msg, "queued", None)
        self.queue(msg)

    def _note(self, msg: StoredMessage, state: str, reason: str | None) -> None:
        """Remember a copy's state for the delivery view (the disk may lag a little)."""
        env = msg.envelope
        if env is None:  # only group copies come here
            raise InternalError("a message without a group envelope")
        copies = self.recent.get((env.gid, env.ref))
        if copies is None:
            if len(self.recent) > 1000:  # the oldest messages are read from the disk again
                del self.recent[next(iter(self.recent))]
            copies = self.recent[(env.gid, env.ref)] = {}
        held = copies.get(msg.peer)
        if state != "queued" or held is None or held.state in ("queued", "sent"):
            copies[msg.peer] = Copy(msg.recipient, state, reason)

    def _send_state(self, state: GroupState, old_members: list[Member]) -> None:
        """A new state goes to every member of the version before and of this one."""
        to: dict[str, Member] = {}
        for m in [*old_members, *state.members]:
            to.setdefault(fold_name(m.name), m)
        to.pop(self.folded, None)
        part = dumps({"type": "state", "state": state.raw})
        for member in to.values():
            self._copy(member, state.gid, state.hash, self._notice(state), part, None)

    def _adopt(self, state: GroupState, displaced: list[GroupState]) -> asyncio.Future[Any]:
        """A state is now current: stored, shown, and the consequences drawn; the future
        resolves once it is on disk."""
        gid = state.gid
        chain = self.chains[gid]
        for s in (*displaced, state):
            self.gstore.save_state(gid, s.hash, s.v, s.encoded())
        saved = self.gstore.set_top(gid, state.hash, state.v, state.topic)
        self.emit(
            GroupChanged(
                group=gid,
                version=state.v,
                topic=state.topic,
                members=tuple(m.name for m in state.members),
                admins=tuple(state.admins),
            )
        )
        if state.member(self.name) is None:
            self._mark_left(gid)
        self._release_held(gid)
        if displaced and state.is_admin(self.name):
            for change in rebase(displaced, chain.line, self.name):
                needed = still_needed(change, chain.top)
                if not needed.empty():
                    try:
                        self._change(gid, needed)
                    except InvalidInput as exc:
                        log.info("could not make a lost change again in %s: %s", gid, exc)
        return saved

    def _mark_left(self, gid: str) -> None:
        if gid not in self.left:
            self.left.add(gid)
            self.gstore.set_left(gid, self.now_ms())

    # ------------------------------------------------------------------ receiving

    def receive(self, sender: str, key: str, inner: ChatPlain) -> asyncio.Future[int]:
        """A group frame from `sender` (its box opened with `key`): checked, stored, answered.

        Raises ProtocolError to refuse; the future resolves (to 0: this module shows what it
        stores) once what must be on disk before the ack is.
        """
        part = parse_part(inner.group)
        if part is None:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "not a group frame this node reads", inner.id
            )
        if isinstance(part, GroupMsg):
            return self._on_message(sender, key, inner, part)
        if isinstance(part, GroupStatePart):
            return self._on_state(sender, key, inner, part)
        if isinstance(part, GroupAsk):
            self._on_ask(sender, key, part)
        elif isinstance(part, GroupLeave):
            self._on_leave(sender, key, part)
        return _done()

    def _listed(self, gid: str, sender: str, key: str) -> bool:
        chain = self.chains.get(gid)
        if chain is None:
            return False
        m = chain.top.member(sender)
        return m is not None and m.key == key

    def _on_message(
        self, sender: str, key: str, inner: ChatPlain, part: GroupMsg
    ) -> asyncio.Future[int]:
        gid = part.gid
        limit = self.msg_limits.get((gid, fold_name(sender)))
        now = time.monotonic()
        if limit is None:
            if len(self.msg_limits) > 10_000:
                self.msg_limits.clear()
            limit = self.msg_limits[(gid, fold_name(sender))] = RateLimit(MSG_RATE, MSG_BURST, now)
        if not limit.allows(now):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many group messages; slow down", inner.id
            )
        chain = self.chains.get(gid)
        if chain is not None and gid in self.left:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "not a member of this group", inner.id)
        listed = self._listed(gid, sender, key)
        if not listed and (chain is None or part.v > chain.top.v):
            # a state this member does not hold yet may list the sender: kept aside, and asked for
            if (
                self.gstore.held_count(gid) >= MAX_HELD_PER_GROUP
                or self.gstore.held_count() >= MAX_HELD
            ):
                raise ProtocolError(
                    ErrorCode.RATE_LIMITED, "too many messages wait for a group state", inner.id
                )
            self._ask(gid, Member(sender, key))
            held = self.gstore.add_message(
                gid, sender, part.mid, part.v, inner.ts, inner.text, False, True
            )
            # the state it waits for may have come while it was being written
            held.add_done_callback(lambda _: self._release_held(gid))
            return _zero(held)
        if not listed:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "not a member of this group", inner.id)
        if chain is not None and part.v > chain.top.v:
            self._ask(gid, Member(sender, key))
        # r3: a reply, reaction, edit or delete; an edit or delete of another member's message
        # is refused
        act = parse_act(inner.act)
        if act is not None and self.acts is not None and self.acts.refused("g", gid, sender, act):
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, "only its sender may edit or delete a message", inner.id
            )
        raw = dump(act) if act is not None else None
        stored = self.gstore.add_message(
            gid, sender, part.mid, part.v, inner.ts, inner.text, False, False, raw
        )
        msg = GroupMessage(0, gid, sender, part.mid, part.v, inner.ts, inner.text, False, raw)
        stored.add_done_callback(lambda fut: self._show(msg, fut))
        if self.acts is not None:
            after = self.acts.stored("g", gid, stored, sender, inner.ts, part.mid)
            stored.add_done_callback(lambda _: after(act))
        return _zero(stored)

    def _show(self, msg: GroupMessage, fut: asyncio.Future[int]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        if n := fut.result():
            self._emit_message(msg, n)

    def _emit_message(self, msg: GroupMessage, n: int) -> None:
        act = load(msg.act)
        if act is not None and act.type != "reply":
            return  # a reaction, edit or delete shows as the change it makes (act_node.py)
        self.emit(
            MessageReceived(
                id=msg.mid,
                from_=msg.sender,
                to=msg.gid,
                ts=msg.ts,
                text=act.text if act is not None else msg.text,
                n=n,
                group=msg.gid,
                reply_to=act.ref if act is not None else None,
            )
        )

    def _release_held(self, gid: str) -> None:
        """Messages kept aside for this group: shown once a state lists their sender, else
        dropped once the state held is at their version."""
        chain = self.chains.get(gid)
        if chain is None:
            return
        top = chain.top
        for msg in self.gstore.held(gid):
            if msg.n in self.settled:
                continue  # released or dropped already, the write not on disk yet
            if top.member(msg.sender) is not None and gid not in self.left:
                self.gstore.release(msg.n)
                self._emit_message(msg, msg.n)
            elif msg.v <= top.v:
                self.gstore.drop(msg.n)
            else:
                continue  # it names a version still to come
            if len(self.settled) > 10_000:
                self.settled.clear()
            self.settled.add(msg.n)

    def _on_state(
        self, sender: str, key: str, inner: ChatPlain, part: GroupStatePart
    ) -> asyncio.Future[int]:
        try:
            state = load_state(part.state.model_dump(by_alias=True, mode="json"))
        except InvalidInput as exc:
            raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc), inner.id) from None
        gid = state.gid
        now = time.monotonic()
        if gid not in self.state_limits and len(self.state_limits) > 10_000:
            self.state_limits.clear()
        limit = self.state_limits.setdefault(gid, RateLimit(STATE_RATE, STATE_BURST, now))
        if not limit.allows(now):
            raise ProtocolError(ErrorCode.RATE_LIMITED, "too many group states", inner.id)
        chain = self.chains.get(gid)
        if chain is None:
            chain, problem = Chain.first(state)
            me = state.member(self.name)
            sent = state.member(sender)
            if chain is None or me is None or me.key != self.identity.key:
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST,
                    problem or "a group state that does not list you",
                    inner.id,
                )
            if sent is None or sent.key != key:
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST, "a group state from someone not in it", inner.id
                )
            if len(self.chains) >= MAX_GROUPS:
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST, f"{self.name} is in too many groups", inner.id
                )
            self.chains[gid] = chain
            return _zero(self._adopt(state, []))
        listed_before = chain.top.member(self.name) is not None
        offer = chain.offer(state)
        if offer.verdict is Verdict.ACCEPTED:
            if not listed_before and state.member(self.name) is not None and gid in self.left:
                self.left.discard(gid)  # added back after leaving or being removed
                self.gstore.set_left(gid, 0)
            return _zero(self._adopt(state, offer.displaced))
        if offer.verdict is Verdict.LOST:
            self.gstore.save_state(gid, state.hash, state.v, state.encoded())
        elif offer.verdict is Verdict.AHEAD:
            self._ask(gid, Member(sender, key))
        elif offer.verdict is Verdict.REFUSED:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, f"group state refused: {offer.reason}", inner.id
            )
        return _done()

    def _ask(self, gid: str, sender: Member) -> None:
        now = time.monotonic()
        key = (gid, fold_name(sender.name))
        if now - self.asked.get(key, -ASK_EVERY) < ASK_EVERY:
            return
        self.asked[key] = now
        if len(self.asked) > 10_000:
            self.asked.clear()
        chain = self.chains.get(gid)
        v = chain.top.v if chain is not None else 0
        part = dumps({"type": "ask", "gid": gid, "v": v})
        self._copy(sender, gid, f"ask:{v}", "[group: a newer client shows groups]", part, None)

    def _on_ask(self, sender: str, key: str, part: GroupAsk) -> None:
        gid = part.gid
        if not self._listed(gid, sender, key) or gid in self.left:
            return
        now = time.monotonic()
        who = (gid, fold_name(sender))
        if now - self.answered.get(who, -ASK_EVERY) < ASK_EVERY:
            return
        self.answered[who] = now
        if len(self.answered) > 10_000:
            self.answered.clear()
        for state in self.chains[gid].answer(part.v):
            pdump = dumps({"type": "state", "state": state.raw})
            self._copy(Member(sender, key), gid, state.hash, self._notice(state), pdump, None)

    def _on_leave(self, sender: str, key: str, part: GroupLeave) -> None:
        gid = part.gid
        if not self._listed(gid, sender, key) or not self.is_member(gid):
            return
        if self.state(gid).is_admin(self.name):
            try:
                self._change(gid, Change(remove=(sender,)))
            except InvalidInput as exc:
                log.info("could not remove %s, who left %s: %s", sender, gid, exc)

    # ------------------------------------------------------------------ per-member states

    def on_copy_state(
        self,
        msg: StoredMessage,
        state: MsgState,
        reason: str | None,
        path: MsgPath | None,
        write: bool,
    ) -> None:
        """A member's copy moved on: written (delivered, failed, stored) and shown."""
        env = msg.envelope
        if env is None:  # only group copies come here
            raise InternalError("a message without a group envelope")
        if write:
            self.gstore.set_copy_state(msg.peer, msg.id, state, reason)
        if env.ref.startswith(("ask:", "leave:")):
            return  # housekeeping frames: nothing to show
        self._note(msg, state, reason)
        self.emit(
            MessageState(
                id=env.ref, to=msg.recipient, state=state, reason=reason, path=path, group=env.gid
            )
        )


def _done() -> asyncio.Future[int]:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    fut.set_result(0)
    return fut


def _zero(fut: asyncio.Future[Any]) -> asyncio.Future[int]:
    """A future that resolves to 0 when `fut` is done (errors passed on)."""
    out: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(f: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if f.cancelled():
            out.cancel()
        elif (exc := f.exception()) is not None:
            out.set_exception(exc)
        else:
            out.set_result(0)

    fut.add_done_callback(done)
    return out
