"""The group tables of the user store (its schema step 5) and their rows' writer: apart from
group_store.py so that store.py can name them without an import cycle."""

from __future__ import annotations

import sqlite3
from typing import Any

# schema step 5 of the user store (store.py STEPS)
GROUP_STEP = """
CREATE TABLE groups (
    gid TEXT PRIMARY KEY,
    top TEXT NOT NULL,        -- hash of the current state
    v INTEGER NOT NULL,
    topic TEXT NOT NULL,
    left_at INTEGER NOT NULL DEFAULT 0,  -- this user left or was removed (ms), 0 while a member
    read_upto INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE group_states (
    gid TEXT NOT NULL,
    hash TEXT NOT NULL,
    v INTEGER NOT NULL,
    state TEXT NOT NULL,      -- canonical JSON, as signed
    PRIMARY KEY (gid, hash)
) WITHOUT ROWID;
CREATE TABLE group_messages (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    gid TEXT NOT NULL,
    skey TEXT NOT NULL,       -- folded sender
    sender TEXT NOT NULL,
    mid TEXT NOT NULL,
    v INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    text TEXT NOT NULL,
    outgoing INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0  -- 1: stored aside until a state makes its sender a member
);
CREATE UNIQUE INDEX group_messages_id ON group_messages(gid, skey, mid);
CREATE INDEX group_messages_order ON group_messages(gid, ts, skey, mid);
CREATE TABLE group_out (
    peer TEXT NOT NULL,       -- folded member
    id TEXT NOT NULL,         -- this copy's chat id
    gid TEXT NOT NULL,
    ref TEXT NOT NULL,        -- the message's mid, or the state's hash
    recipient TEXT NOT NULL,
    ts INTEGER NOT NULL,
    text TEXT NOT NULL,
    part TEXT NOT NULL,       -- the plaintext's `group` object (JSON)
    state TEXT NOT NULL,
    reason TEXT,
    key TEXT NOT NULL,        -- the member's key as the group listed it
    PRIMARY KEY (peer, id)
) WITHOUT ROWID;
CREATE INDEX group_out_ref ON group_out(gid, ref);
CREATE INDEX group_out_pending ON group_out(state) WHERE state IN ('queued', 'sent', 'stored');
"""


def write_group_row(db: sqlite3.Connection, kind: str, args: list[Any]) -> Any:
    """Apply one `g_*` row of a batch (called by the user store's writer)."""
    if kind == "g_msg":
        cur = db.execute(
            "INSERT OR IGNORE INTO group_messages(gid, skey, sender, mid, v, ts, text, outgoing, "
            "held, act, hidden, ref, applied) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            args,
        )
        return cur.lastrowid if cur.rowcount == 1 else 0
    if kind == "g_state":
        db.execute("INSERT OR IGNORE INTO group_states VALUES (?,?,?,?)", args)
    elif kind == "g_top":
        db.execute(
            "INSERT INTO groups(gid, top, v, topic) VALUES (?,?,?,?) ON CONFLICT(gid) DO UPDATE "
            "SET top = excluded.top, v = excluded.v, topic = excluded.topic",
            args,
        )
    elif kind == "g_left":
        db.execute("UPDATE groups SET left_at = ? WHERE gid = ?", args)
    elif kind == "g_release":
        db.execute("UPDATE group_messages SET held = 0 WHERE n = ?", args)
    elif kind == "g_drop":
        db.execute("DELETE FROM group_messages WHERE n = ?", args)
    elif kind == "g_out":
        db.execute("INSERT OR IGNORE INTO group_out VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", args)
    elif kind == "g_out_state":
        db.execute("UPDATE group_out SET state = ?, reason = ? WHERE peer = ? AND id = ?", args)
    elif kind == "g_read":
        db.execute("UPDATE groups SET read_upto = MAX(read_upto, ?) WHERE gid = ?", args)
    else:
        raise ValueError(f"unknown row kind {kind!r}")
    return None
