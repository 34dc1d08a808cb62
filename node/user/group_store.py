"""Groups on disk, in the user store (schema step 4): each group's current state, every state held,
the group messages, and the per-member copies in flight (the group part of the outbox).

A per-member copy is not a row of `messages` (that table is the one-to-one history); it lives in
`group_out` until its member's ack, exactly as `messages` rows in state queued/sent/stored are
the one-to-one outbox. Writes go through the user store's committer (rows named `g_*`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from ..errors import InternalError
from ..wire.names import fold_name
from .act_schema import act_columns
from .store import Envelope, StoredMessage, UserStore


@dataclass(frozen=True, slots=True)
class GroupMessage:
    n: int
    gid: str
    sender: str
    mid: str
    v: int
    ts: int
    text: str
    outgoing: bool
    act: str | None = None  # r3: a reply's act (acts.py), as JSON
    changed: int = 0  # r3: 1 edited, 2 deleted


@dataclass(frozen=True, slots=True)
class Copy:
    """One member's copy of a group frame, and where it is."""

    recipient: str
    state: str
    reason: str | None


_MSG_COLUMNS = "n, gid, sender, mid, v, ts, text, outgoing, act, changed"


class GroupStore:
    """Reads and writes of the group tables, through the user store's connections."""

    def __init__(self, store: UserStore) -> None:
        self.store = store

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.store._read(sql, params)

    # ------------------------------------------------------------------ states

    def groups(self) -> list[tuple[str, str, int]]:
        """(gid, top hash, left_at) of every group held."""
        return [tuple(r) for r in self._read("SELECT gid, top, left_at FROM groups ORDER BY gid")]

    def states(self, gid: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT state FROM group_states WHERE gid = ? ORDER BY v", (gid,))
        return [json.loads(r[0]) for r in rows]

    def save_state(self, gid: str, hash_: str, v: int, encoded: str) -> None:
        self.store._queue("g_state", gid, hash_, v, encoded)

    def set_top(self, gid: str, hash_: str, v: int, topic: str) -> asyncio.Future[Any]:
        return self.store._submit("g_top", gid, hash_, v, topic)

    def set_left(self, gid: str, at: int) -> None:
        self.store._queue("g_left", at, gid)

    # ------------------------------------------------------------------ messages

    def add_message(
        self,
        gid: str,
        sender: str,
        mid: str,
        v: int,
        ts: int,
        text: str,
        out: bool,
        held: bool,
        act: str | None = None,
    ) -> asyncio.Future[int]:
        """Store a group message once; the future gives its number, or 0 for a copy."""
        return self.store._submit(
            "g_msg",
            gid,
            fold_name(sender),
            sender,
            mid,
            v,
            ts,
            text,
            int(out),
            int(held),
            act,
            *act_columns(act),
        )

    def held(self, gid: str) -> list[GroupMessage]:
        rows = self._read(
            f"SELECT {_MSG_COLUMNS} FROM group_messages WHERE gid = ? AND held = 1 ORDER BY n",
            (gid,),
        )
        return [_message(r) for r in rows]

    def held_count(self, gid: str | None = None) -> int:
        if gid is None:
            return int(self._read("SELECT COUNT(*) FROM group_messages WHERE held = 1")[0][0])
        rows = self._read("SELECT COUNT(*) FROM group_messages WHERE gid = ? AND held = 1", (gid,))
        return int(rows[0][0])

    def release(self, n: int) -> None:
        self.store._queue("g_release", n)

    def drop(self, n: int) -> None:
        self.store._queue("g_drop", n)

    def history(self, gid: str, before: int | None = None, limit: int = 100) -> list[GroupMessage]:
        """One page of a group's conversation in (ts, sender, mid) order, ending just before
        message number `before` (the newest page without it)."""
        where, params = self._after_or_before(gid, before, "<")
        rows = self._read(
            f"SELECT {_MSG_COLUMNS} FROM group_messages WHERE {where} "
            "ORDER BY ts DESC, skey DESC, mid DESC LIMIT ?",
            (*params, limit),
        )
        return [_message(r) for r in reversed(rows)]

    def history_after(self, gid: str, after: int, limit: int = 100) -> list[GroupMessage]:
        where, params = self._after_or_before(gid, after, ">")
        rows = self._read(
            f"SELECT {_MSG_COLUMNS} FROM group_messages WHERE {where} "
            "ORDER BY ts, skey, mid LIMIT ?",
            (*params, limit),
        )
        return [_message(r) for r in rows]

    def _after_or_before(self, gid: str, n: int | None, op: str) -> tuple[str, list[Any]]:
        where, params = "gid = ? AND held = 0 AND hidden = 0", [gid]
        if n is not None:
            mark = self._read("SELECT ts, skey, mid FROM group_messages WHERE n = ?", (n,))
            if mark:
                ts, skey, mid = mark[0]
                where += (
                    f" AND (ts {op} ? OR (ts = ? AND (skey {op} ? OR (skey = ? AND mid {op} ?))))"
                )
                params += [ts, ts, skey, skey, mid]
        return where, params

    # ------------------------------------------------------------------ per-member copies

    def add_copy(self, msg: StoredMessage) -> asyncio.Future[Any]:
        env = msg.envelope
        if env is None:  # only group copies come here
            raise InternalError("a message without a group envelope")
        return self.store._submit(
            "g_out",
            msg.peer,
            msg.id,
            env.gid,
            env.ref,
            msg.recipient,
            msg.ts,
            msg.text,
            env.part,
            msg.state,
            msg.reason,
            env.key,
            msg.act,
        )

    def set_copy_state(self, peer: str, msg_id: str, state: str, reason: str | None) -> None:
        self.store._queue("g_out_state", state, reason, peer, msg_id)

    def pending(self) -> list[StoredMessage]:
        """Copies not yet acknowledged nor failed, oldest first: they go back in the outbox."""
        rows = self._read(
            "SELECT peer, id, gid, ref, recipient, ts, text, part, state, reason, key, act "
            "FROM group_out "
            "WHERE state IN ('queued', 'sent', 'stored') ORDER BY ts"
        )
        return [
            StoredMessage(
                peer=r[0],
                id=r[1],
                outgoing=True,
                sender="",
                recipient=r[4],
                ts=r[5],
                text=r[6],
                state=r[8],
                reason=r[9],
                envelope=Envelope(r[2], r[3], r[7], r[10]),
                act=r[11],
            )
            for r in rows
        ]

    def copies(self, gid: str, ref: str) -> list[Copy]:
        """Where each member's copy of one message is (the per-member delivery view)."""
        rows = self._read(
            "SELECT recipient, state, reason FROM group_out WHERE gid = ? AND ref = ? "
            "ORDER BY recipient",
            (gid, ref),
        )
        return [Copy(r[0], r[1], r[2]) for r in rows]


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One group message as its sender sees it: delivered to `delivered` of `total` members,
    and who is missing with why (their copy's state and reason)."""

    delivered: int
    total: int
    missing: tuple[Copy, ...]

    def summary(self) -> str:
        head = f"delivered to {self.delivered} of {self.total}"
        if not self.missing:
            return head
        why = "; ".join(
            f"{c.recipient}: {c.state}" + (f" ({c.reason})" if c.reason else "")
            for c in self.missing
        )
        return f"{head}; missing {why}"


def delivery_view(copies: list[Copy]) -> DeliveryView:
    missing = tuple(c for c in copies if c.state != "delivered")
    return DeliveryView(len(copies) - len(missing), len(copies), missing)


def _message(r: tuple[Any, ...]) -> GroupMessage:
    return GroupMessage(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8], r[9])
