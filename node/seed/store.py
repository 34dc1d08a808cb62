"""The seed's state on disk (SQLite): records, seed URLs, peers' sync points, mail and takes.

Every write goes through group commit, so durability costs no throughput: a `registered` or
`deposited` reply waits for the commit of its row. Reads use their own connection, which in
WAL mode never waits behind a commit's fsync.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InternalError
from ..storage.committer import GroupCommitter
from ..storage.migrations import open_versioned
from ..wire.protocol import Record

# numbered migrations (storage/migrations.py): step N takes a database from version N-1 to N
STEPS = [
    # 1: records and known seed URLs (a database from before versioning already has these)
    """
    CREATE TABLE IF NOT EXISTS records (
        nkey TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        seq INTEGER NOT NULL,
        sig TEXT NOT NULL,
        renewed INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS seeds (url TEXT PRIMARY KEY) WITHOUT ROWID;
    """,
    # 2: protocol revision 2: change numbers, claims, authenticated seeds, sync points, mail
    """
    ALTER TABLE records ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX records_rev ON records(rev);
    CREATE TABLE meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    ALTER TABLE seeds ADD COLUMN key TEXT;
    ALTER TABLE seeds ADD COLUMN learned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE seeds ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE peers (key TEXT PRIMARY KEY, epoch TEXT NOT NULL, since INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE mail (
        sender TEXT NOT NULL,      -- folded name of `from`
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        recipient TEXT NOT NULL,   -- folded name of `to`
        at INTEGER NOT NULL,
        size INTEGER NOT NULL,
        rev INTEGER NOT NULL,
        item TEXT NOT NULL,        -- the item's JSON
        PRIMARY KEY (recipient, sender, type, id)
    ) WITHOUT ROWID;
    CREATE INDEX mail_recipient ON mail(recipient, at);
    CREATE INDEX mail_rev ON mail(rev);
    CREATE INDEX mail_at ON mail(at);
    CREATE TABLE takes (
        rev INTEGER PRIMARY KEY,
        recipient TEXT NOT NULL,
        until INTEGER NOT NULL,
        taken TEXT NOT NULL        -- the take's JSON, replicated whole
    );
    CREATE INDEX takes_until ON takes(until);
    CREATE TABLE taken_ids (
        recipient TEXT NOT NULL,
        sender TEXT NOT NULL,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        until INTEGER NOT NULL,
        PRIMARY KEY (recipient, sender, type, id)
    ) WITHOUT ROWID;
    CREATE INDEX taken_until ON taken_ids(recipient, until);
    """,
    # 3: per-link budgets: where each mail item came from (a user address group or a link), for
    # the per-source shares of the seed's mail; when each key was first proven at a configured URL
    """
    ALTER TABLE mail ADD COLUMN source TEXT NOT NULL DEFAULT '';
    CREATE TABLE seed_keys (key TEXT PRIMARY KEY, url TEXT NOT NULL, first_seen INTEGER NOT NULL)
        WITHOUT ROWID;
    """,
]


@dataclass(frozen=True, slots=True)
class SeedUrl:
    """A seed URL this seed knows, and what it knows of it."""

    url: str
    key: str | None
    learned: int  # when it was first learned (ms); 0 for a configured one
    verified: int  # when a handshake with it last succeeded (ms); 0 for never


class SeedStore:
    """Records, seed URLs, peers' sync points, mail and takes; writes go through the committer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db, self.reader = open_versioned(path, STEPS)
        self.committer: GroupCommitter | None = None

    @property
    def commits(self) -> int:
        return self.committer.commits if self.committer else 0

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.reader.execute(sql, params).fetchall()

    def start(self) -> None:
        self.committer = GroupCommitter(self.db, _write)

    def submit(self, *row: Any) -> asyncio.Future[Any]:
        if self.committer is None:
            raise InternalError("the store is not started")
        return self.committer.submit(row)

    def queue(self, *row: Any) -> None:
        if self.committer is None:
            raise InternalError("the store is not started")
        self.committer.submit_quietly(row)

    async def close(self) -> None:
        """Flush what is queued, then close the database."""
        if self.committer is not None:
            await self.committer.close()
        self.reader.close()
        self.db.close()

    # ------------------------------------------------------------------ at start (before commits)

    def _at_start(self) -> None:
        """These read and write the writing connection on the loop: only before the commit thread
        shares it."""
        if self.committer is not None:
            raise InternalError("a start-up read or write after the store started")

    def load_records(self) -> Iterator[tuple[Record, int, int, int]]:
        """Every stored record, with when it was renewed and claimed here, and its change number."""
        self._at_start()
        rows = self.db.execute(
            "SELECT name, key, endpoint, seq, sig, renewed, claimed, rev FROM records"
        )
        for name, key, endpoint, seq, sig, renewed, claimed, rev in rows:
            record = Record.model_construct(name=name, key=key, endpoint=endpoint, seq=seq, sig=sig)
            yield record, renewed, claimed, rev

    def epoch_and_reserved(self) -> tuple[str, int]:
        """This directory's epoch (drawn when it is first opened) and the saved counter ceiling."""
        self._at_start()
        rows = dict(self.db.execute("SELECT k, v FROM meta").fetchall())
        epoch = rows.get("epoch")
        if epoch is None:
            epoch = base64.b64encode(os.urandom(16)).decode()
            self.db.execute("INSERT INTO meta VALUES ('epoch', ?)", (epoch,))
        return str(epoch), int(rows.get("reserved", 0))

    def save_reserved_now(self, ceiling: int) -> None:
        """Save the counter ceiling before serving (the one synchronous write at start)."""
        self._at_start()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('reserved', ?)", (ceiling,))

    def load_seed_urls(self) -> list[SeedUrl]:
        self._at_start()
        rows = self.db.execute("SELECT url, key, learned, verified FROM seeds")
        return [SeedUrl(*row) for row in rows]

    def load_first_seen(self) -> list[tuple[str, str, int]]:
        """(key, configured URL, when first proven there) of every key proven at a configured URL."""
        self._at_start()
        return [tuple(row) for row in self.db.execute("SELECT key, url, first_seen FROM seed_keys")]

    def load_sync_points(self) -> dict[str, tuple[str, int]]:
        """Per peer key: the epoch and highest change number of it applied in full here."""
        self._at_start()
        rows = self.db.execute("SELECT key, epoch, since FROM peers")
        return {key: (epoch, since) for key, epoch, since in rows}

    # ------------------------------------------------------------------ writes

    def save_record(
        self, record: Record, folded: str, renewed: int, claimed: int, rev: int
    ) -> asyncio.Future[Any]:
        """Queue a record; the future resolves once it is durable on disk."""
        row = (
            folded,
            record.name,
            record.key,
            record.endpoint,
            record.seq,
            record.sig,
            renewed,
            claimed,
            rev,
        )
        return self.submit("record", row)

    def save_reserved(self, ceiling: int) -> asyncio.Future[Any]:
        return self.submit("meta", "reserved", ceiling)

    def save_seed_url(self, seed: SeedUrl) -> None:
        self.queue("seed_url", (seed.url, seed.key, seed.learned, seed.verified))

    def forget_seed_url(self, url: str) -> None:
        self.queue("seed_url_gone", url)

    def save_first_seen(self, key: str, url: str, at: int) -> None:
        self.queue("seed_key", (key, url, at))

    def save_sync_point(self, key: str, epoch: str, since: int) -> None:
        self.queue("peer", (key, epoch, since))


def _write(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[Any]:
    """Apply a batch in order; a mail insert's result says whether it took (False: held already)."""
    results: list[Any] = []
    for kind, *args in rows:
        result: Any = None
        if kind == "record":
            db.execute(
                "INSERT OR REPLACE INTO records(nkey, name, key, endpoint, seq, sig, renewed, claimed, rev) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                args[0],
            )
        elif kind == "record_cas":
            # the storage seam's put: written only if the name's change number is the expected one
            row, expected = args
            held = db.execute("SELECT rev FROM records WHERE nkey = ?", (row[0],)).fetchone()
            result = (held[0] if held else 0) == expected
            if result:
                db.execute(
                    "INSERT OR REPLACE INTO records(nkey, name, key, endpoint, seq, sig, renewed, claimed, rev) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    row,
                )
        elif kind == "barrier":
            pass  # resolves once everything queued before it is committed
        elif kind == "meta":
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", args)
        elif kind == "seed_url":
            db.execute(
                "INSERT OR REPLACE INTO seeds(url, key, learned, verified) VALUES (?,?,?,?)",
                args[0],
            )
        elif kind == "seed_url_gone":
            db.execute("DELETE FROM seeds WHERE url = ?", args)
        elif kind == "peer":
            db.execute("INSERT OR REPLACE INTO peers VALUES (?,?,?)", args[0])
        elif kind == "mail":
            cur = db.execute("INSERT OR IGNORE INTO mail VALUES (?,?,?,?,?,?,?,?,?)", args[0])
            result = cur.rowcount == 1
        elif kind == "seed_key":
            db.execute("INSERT OR IGNORE INTO seed_keys VALUES (?,?,?)", args[0])
        elif kind == "take":
            rev, recipient, until, taken_json, ids = args
            db.execute(
                "INSERT OR REPLACE INTO takes VALUES (?,?,?,?)", (rev, recipient, until, taken_json)
            )
            for sender, mtype, mid in ids:  # only the recipient's own items: nobody takes another's
                db.execute(
                    "DELETE FROM mail WHERE recipient = ? AND sender = ? AND type = ? AND id = ?",
                    (recipient, sender, mtype, mid),
                )
                db.execute(
                    "INSERT OR REPLACE INTO taken_ids VALUES (?,?,?,?,?)",
                    (recipient, sender, mtype, mid, until),
                )
        elif kind == "taken_trim":
            recipient, keep = args
            db.execute(
                "DELETE FROM taken_ids WHERE (recipient, sender, type, id) IN (SELECT recipient, sender, type, id FROM taken_ids "
                "WHERE recipient = ? ORDER BY until DESC LIMIT -1 OFFSET ?)",
                (recipient, keep),
            )
        elif kind == "expire":
            mail_before, taken_before = args
            db.execute("DELETE FROM mail WHERE at < ?", (mail_before,))
            db.execute("DELETE FROM takes WHERE until < ?", (taken_before,))
            db.execute("DELETE FROM taken_ids WHERE until < ?", (taken_before,))
        else:
            raise InternalError(f"unknown row kind {kind!r}")
        results.append(result)
    return results
