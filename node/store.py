"""The seed's directory on disk (SQLite), with group commit so durability does not cost throughput.

A `registered` reply waits for `save()`, which returns only once the record is committed and synced;
records that arrive while a commit is running are committed together in the next one.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreError
from .protocol import Record

log = logging.getLogger(__name__)

SCHEMA = """
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
"""


def open_db(path: Path) -> sqlite3.Connection:
    """Open a WAL database whose commits are synced (synchronous=FULL)."""
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from None


class SeedStore:
    """Records and known seed URLs; writes go through one committer task in batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_db(path)
        self.db.executescript(SCHEMA)
        self._pending: list[tuple[Record, int, str, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0

    def load_records(self) -> Iterator[tuple[Record, int]]:
        rows = self.db.execute("SELECT name, key, endpoint, seq, sig, renewed FROM records")
        for name, key, endpoint, seq, sig, renewed in rows:
            record = Record.model_construct(name=name, key=key, endpoint=endpoint, seq=seq, sig=sig)
            yield record, renewed

    def load_seed_urls(self) -> list[str]:
        return [url for (url,) in self.db.execute("SELECT url FROM seeds")]

    def add_seed_url(self, url: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO seeds(url) VALUES (?)", (url,))

    def start(self) -> None:
        self._task = asyncio.create_task(self._committer(), name="store-committer")

    def save(self, record: Record, renewed: int, nkey: str) -> asyncio.Future[None]:
        """Queue a record; the future resolves once it is durable on disk."""
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((record, renewed, nkey, fut))
        self._wake.set()
        return fut

    async def _committer(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._commit, batch)
            except Exception as exc:  # disk full, I/O error: tell every waiter
                log.error("store commit failed: %s", exc)
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreError(f"commit failed: {exc}"))
                continue
            self.commits += 1
            for *_, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    def _commit(self, batch: list[tuple[Record, int, str, asyncio.Future[None]]]) -> None:
        rows = [(k, r.name, r.key, r.endpoint, r.seq, r.sig, renewed) for r, renewed, k, _ in batch]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?)", rows)

    async def close(self) -> None:
        """Flush what is queued, then close the database."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        self.db.close()
