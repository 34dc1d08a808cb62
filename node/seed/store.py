"""The seed's directory on disk (SQLite), written through group commit so durability costs no throughput.

A `registered` reply waits for `save()`, which resolves only once the record is committed and
synced; records that arrive while a commit is running are committed together in the next one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..storage.committer import GroupCommitter
from ..storage.migrations import migrate
from ..storage.sqlite import open_db
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
]


class SeedStore:
    """Records and known seed URLs; every write goes through the group committer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_db(path)
        migrate(self.db, STEPS, path)
        self.committer: GroupCommitter | None = None

    @property
    def commits(self) -> int:
        return self.committer.commits if self.committer else 0

    def load_records(self) -> Iterator[tuple[Record, int]]:
        """Every stored record and when it was last renewed (read at start, before any commit)."""
        rows = self.db.execute("SELECT name, key, endpoint, seq, sig, renewed FROM records")
        for name, key, endpoint, seq, sig, renewed in rows:
            record = Record.model_construct(name=name, key=key, endpoint=endpoint, seq=seq, sig=sig)
            yield record, renewed

    def load_seed_urls(self) -> list[str]:
        return [url for (url,) in self.db.execute("SELECT url FROM seeds")]

    def start(self) -> None:
        self.committer = GroupCommitter(self.db, _write)

    def add_seed_url(self, url: str) -> None:
        assert self.committer is not None
        self.committer.submit_quietly(("seed_url", url))

    def save(self, record: Record, renewed: int, folded: str) -> asyncio.Future[Any]:
        """Queue a record; the future resolves once it is durable on disk."""
        assert self.committer is not None
        row = (folded, record.name, record.key, record.endpoint, record.seq, record.sig, renewed)
        return self.committer.submit(("record", row))

    async def close(self) -> None:
        """Flush what is queued, then close the database."""
        if self.committer is not None:
            await self.committer.close()
        self.db.close()


def _write(db: sqlite3.Connection, rows: list[tuple[str, Any]]) -> list[None]:
    records = [row for kind, row in rows if kind == "record"]
    if records:
        db.executemany("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?)", records)
    urls = [(row,) for kind, row in rows if kind == "seed_url"]
    if urls:
        db.executemany("INSERT OR IGNORE INTO seeds(url) VALUES (?)", urls)
    return [None] * len(rows)
