"""Group commit: writes queued from the event loop, committed in batches on a worker thread.

One transaction and one fsync per batch, so durability does not cost throughput; the loop never
runs SQL on the writing connection, so it never waits behind a commit's fsync.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from ..errors import StoreError

log = logging.getLogger("p2p.storage")

Writer = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class GroupCommitter:
    """Runs queued rows through `write` in batches, one transaction each, on a worker thread.

    `submit(row)` returns a future that resolves, once the row is committed, to what `write`
    returned for it (one result per row: whether an insert took, a new row number, ...), so a
    reply that promises durability can wait for it while the loop goes on accepting more work.
    Rows are applied in the order they were submitted.
    """

    def __init__(self, db: sqlite3.Connection, write: Writer) -> None:
        self.db = db
        self.write = write
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.commits = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def submit(self, row: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((row, fut))
        self._wake.set()
        return fut

    def submit_quietly(self, row: Any) -> None:
        """Queue a row nobody waits for (a failure is logged by the batch)."""
        self.submit(row).add_done_callback(_retrieve)

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
                log.error("commit of %d rows failed: %s", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreError(f"commit failed: {exc}"))
                continue
            self.commits += 1
            for (_, fut), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)

    def _commit(self, rows: list[Any]) -> list[Any]:
        with self.db:
            self.db.execute("BEGIN")
            return self.write(self.db, rows)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._task


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
