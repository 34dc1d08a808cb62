"""The rows acts write in the user store (schema step 6, store.py): apart from act_node.py so that
store.py can name them without an import cycle."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

_TABLES = {"p": "messages", "g": "group_messages"}


def act_columns(act_json: str | None) -> tuple[int, str | None, int]:
    """(hidden, ref, applied) of a message being stored: a reaction, edit or delete is no line of
    its own, and waits for its target (applied 0) until act_node.py finds it."""
    if act_json is None:
        return 0, None, 1
    act = json.loads(act_json)
    if act["type"] == "reply":
        return 0, act["ref"], 1
    return 1, act["ref"], 0


def write_act_row(db: sqlite3.Connection, kind: str, args: list[Any]) -> Any:
    """Apply one `a_*` row of a batch; edits, deletes and reactions give 1 when they changed
    something (a later act already applied wins: each sender's `ts` grows)."""
    table = _TABLES[args[0]]
    if kind == "a_edit":
        _, text, act, ts, n = args
        cur = db.execute(
            f"UPDATE {table} SET text = ?, act = ?, changed = 1, changed_ts = ? "
            "WHERE n = ? AND changed != 2 AND changed_ts < ?",
            (text, act, ts, n, ts),
        )
        return cur.rowcount
    if kind == "a_delete":
        _, ts, n = args
        cur = db.execute(
            f"UPDATE {table} SET text = '', act = NULL, changed = 2, changed_ts = ? "
            "WHERE n = ? AND changed != 2",
            (ts, n),
        )
        db.execute("DELETE FROM reactions WHERE scope = ? AND target = ?", (args[0], n))
        return cur.rowcount
    if kind == "a_react":
        scope, target, who, emoji, ts = args
        cur = db.execute(
            "INSERT INTO reactions VALUES (?,?,?,?,?) ON CONFLICT(scope, target, who) DO UPDATE "
            "SET emoji = excluded.emoji, ts = excluded.ts WHERE excluded.ts > reactions.ts",
            (scope, target, who, emoji, ts),
        )
        return cur.rowcount
    if kind == "a_applied":
        _, applied, n = args
        db.execute(f"UPDATE {table} SET applied = ? WHERE n = ?", (applied, n))
        return None
    raise ValueError(f"unknown row kind {kind!r}")
