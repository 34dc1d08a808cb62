"""Replies, reactions, edits and deletes on the node (r3): an act, once stored, is applied to its
target in the same conversation (acts.py holds the rules), and the target's new look is shown
as a `MessageChanged` event. One-to-one messages are scope "p" (table `messages`, a conversation
is a peer), group messages scope "g" (`group_messages`, a conversation is a group).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..runtime import quiet_logger
from ..wire.names import fold_name
from .acts import DELETED, EDITED, Act, Scope, edited_act, load, may_change, shown_text, tally
from .events import Event, MessageChanged
from .store import UserStore

log = quiet_logger("p2p.user.acts")

_TABLE = {"p": "messages", "g": "group_messages"}
_CONV = {"p": "peer", "g": "gid"}
_ID = {"p": "id", "g": "mid"}
_VISIBLE = {"p": "hidden = 0", "g": "hidden = 0 AND held = 0"}
MAX_WAITING = 100_000  # targets remembered as awaited; beyond, every message is looked up


@dataclass(frozen=True, slots=True)
class Target:
    """A message an act names, as stored now."""

    scope: Scope
    conv: str  # folded peer, or group id
    n: int
    id: str
    sender: str
    text: str  # as shown (a reply's own text; empty once deleted)
    act: Act | None
    changed: int
    outgoing: bool


class ActNode:
    """Applies acts to their targets and tells the UI what each target looks like now."""

    def __init__(self, store: UserStore, emit: Callable[[Event], None]) -> None:
        self.store = store
        self.emit = emit
        # (scope, conversation, target id) that acts wait for: a message arriving is looked up
        # only when something waits for it (the common case costs no read)
        self.waiting: set[tuple[str, str, str]] | None = set()
        for scope in ("p", "g"):
            rows = self.store._read(
                f"SELECT DISTINCT {_CONV[scope]}, ref FROM {_TABLE[scope]} "
                f"WHERE applied = 0 AND ref IS NOT NULL LIMIT {MAX_WAITING + 1}"
            )
            for conv, ref in rows:
                self._wait(scope, conv, ref)

    def _wait(self, scope: str, conv: str, ref: str) -> None:
        if self.waiting is not None:
            self.waiting.add((scope, conv, ref))
            if len(self.waiting) > MAX_WAITING:
                self.waiting = None  # too many to remember: look every message up

    # ------------------------------------------------------------------ reading

    def target(self, scope: Scope, conv: str, ref: str, sender: str | None = None) -> Target | None:
        """The visible message `ref` in a conversation; with `sender`, theirs first (an id is
        chosen by its sender, so two parties' ids may be equal), else the first stored."""
        rows = self.store._read(
            f"SELECT n, {_ID[scope]}, sender, text, act, changed, outgoing FROM {_TABLE[scope]} "
            f"WHERE {_CONV[scope]} = ? AND {_ID[scope]} = ? AND {_VISIBLE[scope]} "
            "ORDER BY n LIMIT 4",
            (conv, ref),
        )
        targets = [
            Target(scope, conv, r[0], r[1], r[2], r[3], load(r[4]), r[5], bool(r[6])) for r in rows
        ]
        if sender is not None:
            targets.sort(key=lambda t: fold_name(t.sender) != fold_name(sender))
        return targets[0] if targets else None

    def by_number(self, scope: Scope, n: int) -> Target | None:
        rows = self.store._read(
            f"SELECT n, {_ID[scope]}, sender, text, act, changed, outgoing, {_CONV[scope]} "
            f"FROM {_TABLE[scope]} WHERE n = ?",
            (n,),
        )
        if not rows:
            return None
        r = rows[0]
        return Target(scope, r[7], r[0], r[1], r[2], r[3], load(r[4]), r[5], bool(r[6]))

    def shown(self, t: Target) -> str:
        return shown_text(t.text, t.act, t.changed)

    def reactions(self, scope: Scope, n: int) -> tuple[tuple[str, int], ...]:
        rows = self.store._read(
            "SELECT emoji FROM reactions WHERE scope = ? AND target = ? ORDER BY ts",
            (scope, n),
        )
        return tally([r[0] for r in rows])

    def my_reaction(self, scope: Scope, n: int, me: str) -> str:
        rows = self.store._read(
            "SELECT emoji FROM reactions WHERE scope = ? AND target = ? AND who = ?",
            (scope, n, fold_name(me)),
        )
        return rows[0][0] if rows else ""

    def refused(self, scope: Scope, conv: str, sender: str, act: Act) -> bool:
        """True when an edit or delete names a message held here that its sender did not write
        (the receiver refuses it before storing it)."""
        if act.type not in ("edit", "delete"):
            return False
        t = self.target(scope, conv, act.ref, sender)
        return t is not None and not may_change(act, sender, t.sender)

    # ------------------------------------------------------------------ applying

    def apply(self, scope: Scope, conv: str, n: int, sender: str, ts: int, act: Act) -> None:
        """Apply a stored act (message number `n`) to its target, if held; else it waits for the
        target (`arrived`). A reply changes nothing: it is a line that names another."""
        if act.type == "reply":
            return
        t = self.target(scope, conv, act.ref, sender)
        if t is None:
            self._wait(scope, conv, act.ref)
            return  # kept (applied = 0) until its target arrives
        if not may_change(act, sender, t.sender):
            log.info("ignored a %s of %s's message by %s", act.type, t.sender, sender)
            self.store._queue("a_applied", scope, 2, n)
            return
        if t.changed == DELETED:  # final: nothing changes it any more
            self.store._queue("a_applied", scope, 1, n)
            return
        rows: list[tuple[Any, ...]] = [("a_applied", scope, 1, n)]
        if act.type == "edit":
            rows.append(("a_edit", scope, act.text, edited_act(t.act, act.text), ts, t.n))
        elif act.type == "delete":
            rows.append(("a_delete", scope, ts, t.n))
        else:
            rows.append(("a_react", scope, t.n, fold_name(sender), act.emoji, ts))
        futures = [self.store._submit(*row) for row in rows]
        futures[-1].add_done_callback(lambda fut: self._changed(fut, scope, t.n, sender))

    def arrived(self, scope: Scope, conv: str, msg_id: str) -> None:
        """A message just stored: acts that came before it (by another path) apply now."""
        if self.waiting is not None:
            if (scope, conv, msg_id) not in self.waiting:
                return
            self.waiting.discard((scope, conv, msg_id))
        rows = self.store._read(
            f"SELECT n, sender, act, ts FROM {_TABLE[scope]} "
            f"WHERE {_CONV[scope]} = ? AND ref = ? AND applied = 0 LIMIT 100",
            (conv, msg_id),
        )
        for n, sender, raw, ts in rows:
            act = load(raw)
            if act is not None:
                self.apply(scope, conv, n, sender, ts, act)

    def stored(
        self, scope: Scope, conv: str, fut: asyncio.Future[int], sender: str, ts: int, msg_id: str
    ) -> Callable[[Act | None], None]:
        """What to do once a message of this conversation is on disk: apply it if it is an act,
        and apply the acts that waited for it."""

        def after(act: Act | None) -> None:
            if fut.cancelled() or fut.exception() is not None or not fut.result():
                return
            if act is not None:
                self.apply(scope, conv, fut.result(), sender, ts, act)
            self.arrived(scope, conv, msg_id)

        return after

    def _changed(self, fut: asyncio.Future[Any], scope: Scope, n: int, by: str) -> None:
        if fut.cancelled() or fut.exception() is not None or not fut.result():
            return  # nothing changed (an older act than one applied already)
        t = self.by_number(scope, n)
        if t is None:
            return
        self.emit(
            MessageChanged(
                id=t.id,
                peer=t.conv,
                n=t.n,
                text=self.shown(t),
                edited=t.changed == EDITED,
                deleted=t.changed == DELETED,
                reactions=self.reactions(scope, n),
                by=by,
                group=t.conv if scope == "g" else None,
            )
        )
