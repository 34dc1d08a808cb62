"""A user's state on disk (SQLite): the record seq, contacts with pinned keys, history and outbox.

The outbox is not a table of its own: it is the outgoing messages still in state `queued` or
`sent`, so a message can never be in the history and lost from the outbox, or the reverse.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from .protocol import name_key
from .store import GroupCommitter, open_db

SCHEMA = """
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
    peer TEXT NOT NULL,    -- name key of the other party
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
"""

@dataclass(frozen=True, slots=True)
class StoredMessage:
    n: int
    peer: str
    id: str
    outgoing: bool
    sender: str
    recipient: str
    ts: int
    text: str
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    key: str | None
    changed_key: str | None
    new: bool


_COLUMNS = "n, peer, id, outgoing, sender, recipient, ts, text, state, reason"


def _message(row: tuple) -> StoredMessage:
    return StoredMessage(row[0], row[1], row[2], bool(row[3]), *row[4:])


class UserStore:
    def __init__(self, path: Path) -> None:
        self.db = open_db(path)
        self.db.executescript(SCHEMA)
        # reads use their own connection: in WAL mode they never wait for a commit in progress
        self.reader = open_db(path)
        self.committer: GroupCommitter | None = None
        self._contacts = self._load_contacts()
        self.unsaved: dict[tuple[str, str], tuple[str, str | None]] = {}

    def start(self) -> None:
        self.committer = GroupCommitter(self.db, _write)

    async def close(self) -> None:
        if self.committer is not None:
            await self.committer.close()
        self.reader.close()
        self.db.close()

    def _read(self, sql: str, params: tuple = ()) -> list:
        return self.reader.execute(sql, params).fetchall()

    def _exec(self, sql: str, params: tuple = ()) -> list:
        assert self.committer is not None
        return self.committer.execute(sql, params)

    # ------------------------------------------------------------------ identity

    def next_seq(self, now: int) -> int:
        """`max(last + 1, now)`, persisted before it is used so seq only ever grows."""
        rows = self._exec("SELECT v FROM meta WHERE k = 'seq'")
        seq = max((rows[0][0] + 1) if rows else 1, now)
        self._exec("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
        return seq

    # ------------------------------------------------------------------ contacts

    def _load_contacts(self) -> dict[str, Contact]:
        rows = self._read("SELECT nkey, name, key, changed_key, new FROM contacts")
        return {r[0]: Contact(r[1], r[2], r[3], bool(r[4])) for r in rows}

    def contacts(self) -> list[Contact]:
        return [self._contacts[k] for k in sorted(self._contacts)]

    def contact(self, name: str) -> Contact | None:
        """From memory: contacts are few, owned by this process, and read on every message."""
        return self._contacts.get(name_key(name))

    def _set(self, name: str, **changes) -> None:
        self._contacts[name_key(name)] = replace(self._contacts[name_key(name)], **changes)

    def add_contact(self, name: str, now: int, new: bool = False) -> bool:
        if name_key(name) in self._contacts:
            return False
        self._exec("INSERT INTO contacts(nkey, name, new, added) VALUES (?, ?, ?, ?)", (name_key(name), name, int(new), now))
        self._contacts[name_key(name)] = Contact(name, None, None, new)
        return True

    def remove_contact(self, name: str) -> bool:
        if self._contacts.pop(name_key(name), None) is None:
            return False
        self._exec("DELETE FROM contacts WHERE nkey = ?", (name_key(name),))
        return True

    def mark_seen(self, name: str) -> None:
        if name_key(name) in self._contacts:
            self._exec("UPDATE contacts SET new = 0 WHERE nkey = ?", (name_key(name),))
            self._set(name, new=False)

    def pin(self, name: str, key: str) -> None:
        contact = self.contact(name)
        if contact is not None and contact.key is None:
            self._exec("UPDATE contacts SET key = ? WHERE nkey = ?", (key, name_key(name)))
            self._set(name, key=key)

    def set_changed_key(self, name: str, key: str | None) -> None:
        if name_key(name) in self._contacts:
            self._exec("UPDATE contacts SET changed_key = ? WHERE nkey = ?", (key, name_key(name)))
            self._set(name, changed_key=key)

    def accept_key(self, name: str) -> str | None:
        contact = self.contact(name)
        if contact is None or contact.changed_key is None:
            return None
        self._exec("UPDATE contacts SET key = changed_key, changed_key = NULL WHERE nkey = ?", (name_key(name),))
        self._set(name, key=contact.changed_key, changed_key=None)
        return contact.changed_key

    # ------------------------------------------------------------------ messages

    def add_outgoing(self, msg_id: str, sender: str, recipient: str, ts: int, text: str):
        """Queue an outgoing message (durable once the returned future resolves)."""
        assert self.committer is not None
        return self.committer.submit(("add", name_key(recipient), msg_id, 1, sender, recipient, ts, text, "queued", None))

    def add_incoming(self, msg_id: str, sender: str, recipient: str, ts: int, text: str):
        """Store a received message; the future resolves to its number `n`, or 0 when that id was stored before."""
        assert self.committer is not None
        return self.committer.submit(("add", name_key(sender), msg_id, 0, sender, recipient, ts, text, "received", None))

    def set_state(self, peer: str, msg_id: str, state: str, reason: str | None = None):
        """Record a new state; history shows it at once, the disk once the batch commits."""
        assert self.committer is not None
        key = (name_key(peer), msg_id)
        self.unsaved[key] = (state, reason)
        fut = self.committer.submit(("state", state, reason, name_key(peer), msg_id))
        fut.add_done_callback(lambda f: self.unsaved.pop(key, None) if self.unsaved.get(key) == (state, reason) else None)
        return fut

    def unshown(self) -> list[StoredMessage]:
        """Received messages after the `shown` mark, oldest first; the first call sets the mark to now."""
        rows = self._read("SELECT v FROM meta WHERE k = 'shown'")
        if not rows:
            latest = self._read("SELECT COALESCE(MAX(n), 0) FROM messages")[0][0]
            self.mark_shown(latest)
            return []
        rows = self._read(f"SELECT {_COLUMNS} FROM messages WHERE n > ? AND outgoing = 0 ORDER BY n", (rows[0][0],))
        return [_message(r) for r in rows]

    def mark_shown(self, n: int) -> None:
        """Move the `shown` mark to message `n` (written with the next batch)."""
        assert self.committer is not None
        self.committer.submit(("meta", "shown", n))

    def pending(self) -> list[StoredMessage]:
        """The outbox: outgoing messages not yet delivered nor failed, oldest first."""
        rows = self._read(f"SELECT {_COLUMNS} FROM messages WHERE state IN ('queued', 'sent') ORDER BY n")
        return [_message(r) for r in rows]

    def history(self, peer: str, before: int | None = None, limit: int = 100) -> list[StoredMessage]:
        """One page of a conversation, oldest first, ending just before message number `before`."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM messages WHERE peer = ? AND n < ? ORDER BY n DESC LIMIT ?",
            (name_key(peer), before if before is not None else 2**62, limit),
        )
        messages = [_message(r) for r in reversed(rows)]
        if self.unsaved:
            messages = [self._overlay(m) for m in messages]
        return messages

    def _overlay(self, msg: StoredMessage) -> StoredMessage:
        pending = self.unsaved.get((msg.peer, msg.id)) if msg.outgoing else None
        return replace(msg, state=pending[0], reason=pending[1]) if pending else msg


def _write(db: sqlite3.Connection, rows: list[tuple]) -> list[int | bool]:
    """Apply a batch in order; for each add, the new message's number, or 0 for a copy (the unique index spots it)."""
    results: list[int | bool] = []
    for row in rows:
        if row[0] == "add":
            cur = db.execute(
                "INSERT OR IGNORE INTO messages(peer, id, outgoing, sender, recipient, ts, text, state, reason) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                row[1:],
            )
            results.append(cur.lastrowid if cur.rowcount == 1 else 0)
        elif row[0] == "meta":
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", row[1:])
            results.append(True)
        else:
            db.execute("UPDATE messages SET state = ?, reason = ? WHERE peer = ? AND outgoing = 1 AND id = ?", row[1:])
            results.append(True)
    return results
