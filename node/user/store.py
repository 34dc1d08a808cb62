"""A user's state on disk (SQLite): the record seq, contacts with pinned keys, history and outbox.

The outbox is not a table of its own: it is the outgoing messages still in state `queued` or
`sent`, so a message can never be in the history and lost from the outbox, or the reverse.
Every write goes through the group committer; reads use their own connection, which in WAL mode
never waits for a commit, so the event loop never runs SQL behind an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InternalError, InvalidInput
from ..storage.committer import GroupCommitter
from ..storage.migrations import open_versioned
from ..wire.names import fold_name
from .act_schema import act_columns as _act_columns
from .act_schema import write_act_row
from .group_schema import GROUP_STEP, write_group_row

T = TypeVar("T")

# seconds the `shown` mark may wait for another write to ride with (a lone mark is its own commit)
MARK_DELAY = 1.0

# numbered migrations (storage/migrations.py): step N takes a database from version N-1 to N
STEPS = [
    # 1: meta, contacts, messages (a database from before versioning already has these)
    """
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS contacts (
        nkey TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key TEXT,              -- pinned key, first seen
        changed_key TEXT,      -- a different key seen since; traffic stops until accepted
        new INTEGER NOT NULL DEFAULT 0,
        added INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS messages (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        peer TEXT NOT NULL,    -- folded name of the other party
        id TEXT NOT NULL,
        outgoing INTEGER NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        ts INTEGER NOT NULL,
        text TEXT NOT NULL,
        state TEXT NOT NULL,   -- queued, sent, delivered, failed (outgoing); received (incoming)
        reason TEXT
    );
    CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages(peer, outgoing, id);
    CREATE INDEX IF NOT EXISTS messages_peer ON messages(peer, n);
    CREATE INDEX IF NOT EXISTS messages_pending ON messages(state) WHERE state IN ('queued', 'sent');
    """,
    # 2: protocol revision 2: each contact's last verified record (published to a seed that lost
    # it), conversations ordered by (ts, id) as messages arrive by several paths, stored mail
    """
    ALTER TABLE contacts ADD COLUMN record TEXT;
    CREATE INDEX messages_order ON messages(peer, ts, id);
    DROP INDEX messages_pending;
    CREATE INDEX messages_pending ON messages(state) WHERE state IN ('queued', 'sent', 'stored');
    """,
    # 3: the terminal client: read markers, blocks, verified marks (what was stored before this
    # step counts as read; blocked names need not be contacts)
    """
    ALTER TABLE contacts ADD COLUMN read_upto INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE contacts ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
    UPDATE contacts SET read_upto = (SELECT COALESCE(MAX(n), 0) FROM messages);
    CREATE TABLE IF NOT EXISTS blocked (
        nkey TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        since INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: nothing lost: each contact's last seen as this node last learned it (a new seed may not
    # know it), messages that came from a changed key not yet accepted (kept, shown flagged),
    # and when a message was queued again by /retry (its expiry counts from then)
    """
    ALTER TABLE contacts ADD COLUMN last_seen INTEGER;
    ALTER TABLE messages ADD COLUMN key_changed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN queued_at INTEGER;
    """,
    # 5: groups (protocol r3): states, group messages, per-member copies in flight (group_schema.py)
    GROUP_STEP,
    # 6: replies, reactions, edits and deletes (protocol r3, acts.py): each message's act (JSON,
    # NULL for a plain one), whether it is a line of its own, its target, whether its target was
    # found, and on a target its edited/deleted mark with the time of the act that set it;
    # reactions, one per person per message; the same on group messages and copies
    """
    ALTER TABLE messages ADD COLUMN act TEXT;
    ALTER TABLE messages ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN ref TEXT;
    ALTER TABLE messages ADD COLUMN applied INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE messages ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN changed_ts INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_ref ON messages(peer, ref) WHERE ref IS NOT NULL;
    ALTER TABLE group_messages ADD COLUMN act TEXT;
    ALTER TABLE group_messages ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE group_messages ADD COLUMN ref TEXT;
    ALTER TABLE group_messages ADD COLUMN applied INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE group_messages ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE group_messages ADD COLUMN changed_ts INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX group_messages_ref ON group_messages(gid, ref) WHERE ref IS NOT NULL;
    ALTER TABLE group_out ADD COLUMN act TEXT;
    CREATE TABLE reactions (
        scope TEXT NOT NULL,      -- 'p': a message of `messages`, 'g': of `group_messages`
        target INTEGER NOT NULL,  -- the message's number n there
        who TEXT NOT NULL,        -- folded name of the one who reacted
        emoji TEXT NOT NULL,      -- '' once taken back (kept, so an older reaction stays out)
        ts INTEGER NOT NULL,
        PRIMARY KEY (scope, target, who)
    ) WITHOUT ROWID;
    """,
]


def unique_match(found: list[T], ref: str, missing: str) -> T:
    """The one item an id or id prefix typed by the user names: InvalidInput with `missing` when
    none does, and asking for more of the id when several do."""
    if not found:
        raise InvalidInput(missing)
    if len(found) > 1:
        raise InvalidInput(f"more than one message id starts with {ref}: type more of it")
    return found[0]


@dataclass(frozen=True, slots=True)
class Envelope:
    """What makes an outgoing copy a group frame: its group, the message id or state hash it
    carries, and the plaintext's `group` object (JSON). Group copies live in `group_out`."""

    gid: str
    ref: str
    part: str
    key: str = ""  # the member's key as the group lists it: its ack's proof must open with it


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """One message of the history, either way; `n` is its number in local history (0: not stored yet)."""

    n: int = 0
    peer: str
    id: str
    outgoing: bool
    sender: str
    recipient: str
    ts: int
    text: str
    state: str
    reason: str | None = None
    key_changed: bool = False  # incoming from a key other than the pinned one, not accepted then
    queued_at: int | None = None  # queued again by /retry at this time (expiry counts from it)
    envelope: Envelope | None = None  # a group frame's copy for one member (group_store.py)
    act: str | None = None  # r3: a reply, reaction, edit or delete (acts.py), as JSON
    changed: int = 0  # r3: 1 edited, 2 deleted (acts.py)

    @property
    def since(self) -> int:
        """When the message joined the outbox (last): its expiry counts from here."""
        return self.queued_at if self.queued_at is not None else self.ts

    @classmethod
    def new_outgoing(
        cls, msg_id: str, sender: str, recipient: str, ts: int, text: str
    ) -> StoredMessage:
        return cls(
            peer=fold_name(recipient),
            id=msg_id,
            outgoing=True,
            sender=sender,
            recipient=recipient,
            ts=ts,
            text=text,
            state="queued",
        )

    @classmethod
    def new_incoming(
        cls,
        msg_id: str,
        sender: str,
        recipient: str,
        ts: int,
        text: str,
        key_changed: bool = False,
    ) -> StoredMessage:
        return cls(
            peer=fold_name(sender),
            id=msg_id,
            outgoing=False,
            sender=sender,
            recipient=recipient,
            ts=ts,
            text=text,
            state="received",
            key_changed=key_changed,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StoredMessage:
        n, peer, msg_id, outgoing, sender, recipient, ts, text, state, reason, flagged, since = row[
            :12
        ]
        return cls(
            n=n,
            peer=peer,
            id=msg_id,
            outgoing=bool(outgoing),
            sender=sender,
            recipient=recipient,
            ts=ts,
            text=text,
            state=state,
            reason=reason,
            key_changed=bool(flagged),
            queued_at=since,
            act=row[12],
            changed=row[13],
        )


_COLUMNS = (
    "n, peer, id, outgoing, sender, recipient, ts, text, state, reason, key_changed, queued_at, "
    "act, changed"
)


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    key: str | None
    changed_key: str | None
    new: bool
    record: str | None = None  # the JSON of its last verified record
    read_upto: int = 0  # number n of the last message the user has read
    verified: bool = False  # the user compared the pinned key's fingerprint out of band
    # wrote first, and the user has neither answered nor added them: per-sender limits apply
    # (stored in `new`: 1 new stranger, 2 stranger seen, 0 chosen; no schema change)
    stranger: bool = False
    last_seen: int | None = None  # the latest time it was known online (kept across seeds)


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db, self.reader = open_versioned(path, STEPS)
        self.committer: GroupCommitter | None = None
        self._contacts = self._load_contacts()
        self._blocked: dict[str, str] = dict(self._read("SELECT nkey, name FROM blocked"))
        rows = self._read("SELECT v FROM meta WHERE k = 'seq'")
        self._seq: int = rows[0][0] if rows else 0
        self.unsaved: dict[tuple[str, str], tuple[str, str | None]] = {}
        self._mark: int | None = None  # a `shown` mark not queued yet
        self._mark_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.committer = GroupCommitter(self.db, _write)

    async def close(self) -> None:
        if self.committer is not None:
            self._write_mark()
            await self.committer.close()
        self.reader.close()
        self.db.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.reader.execute(sql, params).fetchall()

    def _submit(self, *row: Any) -> asyncio.Future[Any]:
        if self.committer is None:
            raise InternalError("the store is not started")
        self._write_mark()
        return self.committer.submit(row)

    def _queue(self, *row: Any) -> None:
        if self.committer is None:
            raise InternalError("the store is not started")
        self._write_mark()
        self.committer.submit_quietly(row)

    def _write_mark(self) -> None:
        """Queue the `shown` mark that is waiting, if any (with the write that called this)."""
        if self._mark_timer is not None:
            self._mark_timer.cancel()
            self._mark_timer = None
        if self._mark is not None and self.committer is not None:
            mark, self._mark = self._mark, None
            self.committer.submit_quietly(("meta", "shown", mark))

    # ------------------------------------------------------------------ identity

    async def next_seq(self, now: int) -> int:
        """`max(last + 1, now)`, durable before it is returned so seq only ever grows."""
        self._seq = max(self._seq + 1, now)
        seq = self._seq
        await self._submit("meta", "seq", seq)
        return seq

    # ------------------------------------------------------------------ contacts

    def _load_contacts(self) -> dict[str, Contact]:
        rows = self._read(
            "SELECT nkey, name, key, changed_key, new, record, read_upto, verified, last_seen "
            "FROM contacts"
        )
        return {
            r[0]: Contact(r[1], r[2], r[3], r[4] == 1, r[5], r[6], bool(r[7]), r[4] in (1, 2), r[8])
            for r in rows
        }

    def contacts(self) -> list[Contact]:
        return [self._contacts[k] for k in sorted(self._contacts)]

    def contact(self, name: str) -> Contact | None:
        """From memory: contacts are few, owned by this process, and read on every message."""
        return self._contacts.get(fold_name(name))

    def _set(self, name: str, **changes: Any) -> None:
        folded = fold_name(name)
        self._contacts[folded] = replace(self._contacts[folded], **changes)

    def add_contact(self, name: str, now: int, new: bool = False) -> bool:
        folded = fold_name(name)
        if folded in self._contacts:
            return False
        # what is already in the history with this name counts as read (a contact added again)
        upto = self._read("SELECT COALESCE(MAX(n), 0) FROM messages WHERE peer = ?", (folded,))
        self._contacts[folded] = Contact(name, None, None, new, read_upto=upto[0][0], stranger=new)
        self._queue("contact_add", folded, name, int(new), now)
        self._queue("contact_set", "read_upto", upto[0][0], folded)
        return True

    def remove_contact(self, name: str) -> bool:
        folded = fold_name(name)
        if self._contacts.pop(folded, None) is None:
            return False
        self._queue("contact_remove", folded)
        return True

    def mark_seen(self, name: str) -> None:
        contact = self.contact(name)
        if contact is not None:
            self._set(name, new=False)
            self._queue("contact_set", "new", 2 if contact.stranger else 0, fold_name(name))

    def choose(self, name: str) -> bool:
        """The user answered or added someone who wrote first: no longer a stranger. True when
        that changed something."""
        contact = self.contact(name)
        if contact is None or not contact.stranger:
            return False
        self._set(name, new=False, stranger=False)
        self._queue("contact_set", "new", 0, fold_name(name))
        return True

    def incoming_totals(self, name: str) -> tuple[int, int]:
        """(messages, text bytes) stored from `name` (committed ones)."""
        rows = self._read(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(text AS BLOB))), 0) FROM messages "
            "WHERE peer = ? AND outgoing = 0",
            (fold_name(name),),
        )
        return int(rows[0][0]), int(rows[0][1])

    def has_incoming(self, name: str, msg_id: str) -> bool:
        """True when that message from `name` is stored (committed) already."""
        rows = self._read(
            "SELECT 1 FROM messages WHERE peer = ? AND outgoing = 0 AND id = ?",
            (fold_name(name), msg_id),
        )
        return bool(rows)

    def pin(self, name: str, key: str) -> None:
        contact = self.contact(name)
        if contact is not None and contact.key is None:
            self._set(name, key=key)
            self._queue("contact_set", "key", key, fold_name(name))

    def set_changed_key(self, name: str, key: str | None) -> None:
        if fold_name(name) in self._contacts:
            self._set(name, changed_key=key)
            self._queue("contact_set", "changed_key", key, fold_name(name))
            if key is not None:  # a verified mark was for the old key
                self.set_verified(name, False)

    def seen(self, name: str, at: int) -> int | None:
        """A contact was known online at `at`: kept when later than what is kept; the latest."""
        contact = self.contact(name)
        if contact is None:
            return None
        if contact.last_seen is None or at > contact.last_seen:
            self._set(name, last_seen=at)
            self._queue("contact_set", "last_seen", at, fold_name(name))
            return at
        return contact.last_seen

    def keep_record(self, name: str, record_json: str) -> None:
        """Remember a contact's latest verified record (to hand a seed that lost it)."""
        contact = self.contact(name)
        if contact is not None and contact.record != record_json:
            self._set(name, record=record_json)
            self._queue("contact_set", "record", record_json, fold_name(name))

    def respell(self, spelling: str) -> bool:
        """Write a contact's name as `spelling` (same name, other case); False when it already was."""
        contact = self.contact(spelling)
        if contact is None or contact.name == spelling:
            return False
        folded = fold_name(spelling)
        self._contacts[folded] = replace(contact, name=spelling)
        self._queue("contact_set", "name", spelling, folded)
        return True

    def accept_key(self, name: str) -> str | None:
        contact = self.contact(name)
        if contact is None or contact.changed_key is None:
            return None
        self._set(name, key=contact.changed_key, changed_key=None)
        self._queue("contact_set", "key", contact.changed_key, fold_name(name))
        self._queue("contact_set", "changed_key", None, fold_name(name))
        return contact.changed_key

    # ------------------------------------------------------------------ messages

    def add_message(self, msg: StoredMessage) -> asyncio.Future[int]:
        """Store a message; the future resolves to its number `n`, or 0 when that id was stored before."""
        return self._submit(
            "add",
            msg.peer,
            msg.id,
            int(msg.outgoing),
            msg.sender,
            msg.recipient,
            msg.ts,
            msg.text,
            msg.state,
            msg.reason,
            int(msg.key_changed),
            msg.act,
            *_act_columns(msg.act),
        )

    def set_state(
        self, peer: str, msg_id: str, state: str, reason: str | None = None
    ) -> asyncio.Future[Any]:
        """Record a new state; history shows it at once, the disk once the batch commits."""
        key = (fold_name(peer), msg_id)
        self.unsaved[key] = (state, reason)
        fut = self._submit("state", state, reason, fold_name(peer), msg_id)

        def saved(_: asyncio.Future[Any]) -> None:
            if self.unsaved.get(key) == (state, reason):
                del self.unsaved[key]

        fut.add_done_callback(saved)
        return fut

    def requeue(self, msg: StoredMessage, now: int, reason: str | None) -> asyncio.Future[Any]:
        """A failed message goes back to the outbox (/retry); its expiry counts from `now`."""
        self._queue("queued_at", now, msg.peer, msg.id)
        return self.set_state(msg.peer, msg.id, "queued", reason)

    def outgoing(self, peer: str | None, msg_id: str) -> list[StoredMessage]:
        """Outgoing messages whose id is `msg_id` or starts with it (what a user typed)."""
        where, params = "outgoing = 1 AND id >= ? AND id < ?", [msg_id, msg_id + "\uffff"]
        if peer is not None:
            where += " AND peer = ?"
            params.append(fold_name(peer))
        rows = self._read(f"SELECT {_COLUMNS} FROM messages WHERE {where} LIMIT 2", tuple(params))
        exact = [r for r in rows if r[2] == msg_id]
        return [self._overlay(StoredMessage.from_row(r)) for r in (exact or rows)]

    def find(self, peer: str | None, prefix: str, mine: bool = False) -> list[StoredMessage]:
        """r3: visible messages (either way, or ours only) whose id starts with `prefix`, newest
        first; at most 2 (a caller wants one)."""
        where, params = "hidden = 0 AND id >= ? AND id < ?", [prefix, prefix + "\uffff"]
        if peer is not None:
            where += " AND peer = ?"
            params.append(fold_name(peer))
        if mine:
            where += " AND outgoing = 1"
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY n DESC LIMIT 2", tuple(params)
        )
        exact = [r for r in rows if r[2] == prefix]
        return [StoredMessage.from_row(r) for r in (exact or rows)]

    def last_visible(self, peer: str, mine: bool = False) -> StoredMessage | None:
        """r3: the newest line of a conversation (ours only, when `mine`), not deleted."""
        where = "peer = ? AND hidden = 0 AND changed != 2" + (" AND outgoing = 1" if mine else "")
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY ts DESC, id DESC LIMIT 1",
            (fold_name(peer),),
        )
        return StoredMessage.from_row(rows[0]) if rows else None

    def last_outgoing(self, peer: str | None, states: tuple[str, ...]) -> StoredMessage | None:
        """The newest outgoing message (with `peer`, if given) now in one of `states` (never
        `delivered`: nothing follows it). Read from disk, then the states not written yet."""
        where, params = "outgoing = 1 AND state != 'delivered'", []
        if peer is not None:
            where += " AND peer = ?"
            params.append(fold_name(peer))
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY n DESC LIMIT 50",
            tuple(params),
        )
        for row in rows:
            msg = self._overlay(StoredMessage.from_row(row))
            if msg.state in states:
                return msg
        return None

    def unshown(self) -> list[StoredMessage]:
        """Received messages after the `shown` mark, oldest first; the first call sets the mark to now."""
        rows = self._read("SELECT v FROM meta WHERE k = 'shown'")
        if not rows:
            latest = self._read("SELECT COALESCE(MAX(n), 0) FROM messages")[0][0]
            self.mark_shown(latest)
            return []
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE n > ? AND outgoing = 0 AND hidden = 0 "
            "ORDER BY n",
            (rows[0][0],),
        )
        return [StoredMessage.from_row(r) for r in rows]

    def mark_shown(self, n: int) -> None:
        """Move the `shown` mark to message `n`: written with the next write, or alone within
        MARK_DELAY s, so a message received costs one commit, not two. A run killed before the mark
        is written shows the messages after the last written one again, marked replayed."""
        self._mark = n
        if self._mark_timer is None:
            self._mark_timer = asyncio.get_running_loop().call_later(MARK_DELAY, self._write_mark)

    def pending(self) -> list[StoredMessage]:
        """The outbox: outgoing messages not yet delivered nor failed, oldest first."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE state IN ('queued', 'sent', 'stored') ORDER BY n"
        )
        return [StoredMessage.from_row(r) for r in rows]

    def history(
        self, peer: str, before: int | None = None, limit: int = 100
    ) -> list[StoredMessage]:
        """One page of a conversation in (ts, id) order, ending just before message number `before`.

        Messages reach a user by several paths (direct, relay, mail), so the order they were
        stored in is not the conversation's: the contract orders it by (ts, id).
        """
        where, params = "peer = ? AND hidden = 0", [fold_name(peer)]
        if before is not None:
            mark = self._read("SELECT ts, id FROM messages WHERE n = ?", (before,))
            if mark:
                where += " AND (ts < ? OR (ts = ? AND id < ?))"
                params += [mark[0][0], mark[0][0], mark[0][1]]
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY ts DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        messages = [StoredMessage.from_row(r) for r in reversed(rows)]
        if self.unsaved:
            messages = [self._overlay(m) for m in messages]
        return messages

    def _overlay(self, msg: StoredMessage) -> StoredMessage:
        pending = self.unsaved.get((msg.peer, msg.id)) if msg.outgoing else None
        return replace(msg, state=pending[0], reason=pending[1]) if pending else msg

    # ------------------------------------------------------------------ for the terminal client
    # read markers, blocks, verified marks and search (added with the step for the terminal client)

    def mark_read(self, name: str, n: int) -> None:
        """The user has read the conversation with `name` up to message number `n` (never moves back)."""
        contact = self.contact(name)
        if contact is not None and n > contact.read_upto:
            self._set(name, read_upto=n)
            self._queue("contact_set", "read_upto", n, fold_name(name))

    def unread(self) -> dict[str, int]:
        """Incoming messages after each contact's read marker, by folded name (only those with some)."""
        counts: dict[str, int] = {}
        for folded, contact in self._contacts.items():
            rows = self._read(
                "SELECT COUNT(*) FROM messages WHERE peer = ? AND n > ? AND outgoing = 0 "
                "AND hidden = 0",
                (folded, contact.read_upto),
            )
            if rows[0][0]:
                counts[folded] = rows[0][0]
        return counts

    def set_verified(self, name: str, verified: bool) -> None:
        if fold_name(name) in self._contacts:
            self._set(name, verified=verified)
            self._queue("contact_set", "verified", int(verified), fold_name(name))

    def block(self, name: str, now: int) -> bool:
        """Refuse `name`'s messages from now on; False when it was blocked already."""
        folded = fold_name(name)
        if folded in self._blocked:
            return False
        self._blocked[folded] = name
        self._queue("block", folded, name, now)
        return True

    def unblock(self, name: str) -> bool:
        folded = fold_name(name)
        if self._blocked.pop(folded, None) is None:
            return False
        self._queue("unblock", folded)
        return True

    def is_blocked(self, name: str) -> bool:
        """From memory, like contacts: asked for every message that arrives."""
        return fold_name(name) in self._blocked

    def blocked(self) -> list[str]:
        return [self._blocked[k] for k in sorted(self._blocked)]

    def search(self, peer: str, text: str, limit: int = 50) -> list[StoredMessage]:
        """Messages with `peer` whose text holds `text` (ASCII case folded), newest first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE peer = ? AND hidden = 0 "
            "AND text LIKE ? ESCAPE '\\' "
            "ORDER BY n DESC LIMIT ?",
            (fold_name(peer), pattern, limit),
        )
        return [self._overlay(StoredMessage.from_row(r)) for r in rows]

    def history_after(self, peer: str, after: int, limit: int = 100) -> list[StoredMessage]:
        """One page of a conversation in (ts, id) order, starting just after message number `after`."""
        where, params = "peer = ? AND hidden = 0", [fold_name(peer)]
        mark = self._read("SELECT ts, id FROM messages WHERE n = ?", (after,))
        if mark:
            where += " AND (ts > ? OR (ts = ? AND id > ?))"
            params += [mark[0][0], mark[0][0], mark[0][1]]
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE {where} ORDER BY ts, id LIMIT ?",
            (*params, limit),
        )
        return [self._overlay(StoredMessage.from_row(r)) for r in rows]

    def history_around(self, peer: str, n: int, limit: int = 100) -> list[StoredMessage]:
        """About `limit` messages with message `n` in the middle, in (ts, id) order."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE n = ? AND peer = ?", (n, fold_name(peer))
        )
        if not rows:
            return self.history(peer, limit=limit)
        middle = self._overlay(StoredMessage.from_row(rows[0]))
        before = self.history(peer, n, limit // 2)
        return [*before, middle, *self.history_after(peer, n, limit - len(before) - 1)]


_CONTACT_COLUMNS = {
    "name",
    "new",
    "key",
    "changed_key",
    "record",
    "read_upto",
    "verified",
    "last_seen",
}


def _write(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[Any]:
    """Apply a batch in order; for each add, the new message's number, or 0 for a copy (the unique index spots it)."""
    results: list[Any] = []
    for kind, *args in rows:
        if kind.startswith("a_"):  # replies, reactions, edits, deletes (act_node.py)
            results.append(write_act_row(db, kind, args))
            continue
        if kind.startswith("g_"):  # groups (group_schema.py)
            results.append(write_group_row(db, kind, args))
            continue
        if kind == "add":
            cur = db.execute(
                "INSERT OR IGNORE INTO messages(peer, id, outgoing, sender, recipient, ts, text, "
                "state, reason, key_changed, act, hidden, ref, applied) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                args,
            )
            results.append(cur.lastrowid if cur.rowcount == 1 else 0)
            continue
        if kind == "state":
            db.execute(
                "UPDATE messages SET state = ?, reason = ? WHERE peer = ? AND outgoing = 1 AND id = ?",
                args,
            )
        elif kind == "queued_at":
            db.execute(
                "UPDATE messages SET queued_at = ? WHERE peer = ? AND outgoing = 1 AND id = ?", args
            )
        elif kind == "meta":
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", args)
        elif kind == "contact_add":
            db.execute(
                "INSERT OR IGNORE INTO contacts(nkey, name, new, added) VALUES (?, ?, ?, ?)", args
            )
        elif kind == "contact_remove":
            db.execute("DELETE FROM contacts WHERE nkey = ?", args)
        elif kind == "block":
            db.execute("INSERT OR REPLACE INTO blocked(nkey, name, since) VALUES (?, ?, ?)", args)
        elif kind == "unblock":
            db.execute("DELETE FROM blocked WHERE nkey = ?", args)
        elif kind == "contact_set":
            column, value, folded = args
            if column not in _CONTACT_COLUMNS:
                raise InternalError(f"no contact column {column!r}")
            db.execute(f"UPDATE contacts SET {column} = ? WHERE nkey = ?", (value, folded))
        else:
            raise InternalError(f"unknown row kind {kind!r}")
        results.append(None)
    return results
