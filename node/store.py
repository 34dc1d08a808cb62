"""The seed's directory on disk (SQLite), with group commit so durability does not cost throughput.

A `registered` reply waits for `save()`, which returns only once the record is committed and synced;
records that arrive while a commit is running are committed together in the next one.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


class GroupCommitter:
    """Runs queued writes in batches on a worker thread: one transaction and one sync per batch.

    `submit(row)` returns a future that resolves once the row is committed, so a reply that
    promises durability can wait for it while the loop goes on accepting more work. `write` may
    return one result per row (whether an insert took, say); each future resolves to its own.
    """

    def __init__(self, db: sqlite3.Connection, write: Callable[[sqlite3.Connection, list[Any]], list | None]) -> None:
        self.db = db
        self.write = write
        self.lock = threading.Lock()
        self._pending: list[tuple[Any, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.commits = 0
        self._task = asyncio.ensure_future(self._run())

    def submit(self, row: Any) -> asyncio.Future[None]:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((row, fut))
        self._wake.set()
        return fut

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._commit, [row for row, _ in batch])
            except Exception as exc:  # disk full, I/O error: tell every waiter
                log.error("commit to %s failed: %s", self.db, exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreError(f"commit failed: {exc}"))
                continue
            self.commits += 1
            for i, (_, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result(results[i] if results is not None else None)

    def _commit(self, rows: list[Any]) -> list | None:
        with self.lock, self.db:
            self.db.execute("BEGIN")
            return self.write(self.db, rows)

    def execute(self, sql: str, params: tuple = ()) -> list[Any]:
        """A small statement outside the batches (rare writes, reads); serialised with commits."""
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._task


class SeedStore:
    """Records and known seed URLs; record writes go through the group committer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_db(path)
        self.db.executescript(SCHEMA)
        self.committer: GroupCommitter | None = None

    @property
    def commits(self) -> int:
        return self.committer.commits if self.committer else 0

    def load_records(self) -> Iterator[tuple[Record, int]]:
        rows = self.db.execute("SELECT name, key, endpoint, seq, sig, renewed FROM records")
        for name, key, endpoint, seq, sig, renewed in rows:
            record = Record.model_construct(name=name, key=key, endpoint=endpoint, seq=seq, sig=sig)
            yield record, renewed

    def load_seed_urls(self) -> list[str]:
        return [url for (url,) in self.db.execute("SELECT url FROM seeds")]

    def add_seed_url(self, url: str) -> None:
        assert self.committer is not None
        self.committer.execute("INSERT OR IGNORE INTO seeds(url) VALUES (?)", (url,))

    def start(self) -> None:
        self.committer = GroupCommitter(self.db, _write_records)

    def save(self, record: Record, renewed: int, nkey: str) -> asyncio.Future[None]:
        """Queue a record; the future resolves once it is durable on disk."""
        assert self.committer is not None
        return self.committer.submit((nkey, record.name, record.key, record.endpoint, record.seq, record.sig, renewed))

    async def close(self) -> None:
        """Flush what is queued, then close the database."""
        if self.committer is not None:
            await self.committer.close()
        self.db.close()


def _write_records(db: sqlite3.Connection, rows: list[tuple]) -> None:
    db.executemany("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?)", rows)
