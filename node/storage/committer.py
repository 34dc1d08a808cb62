"""Group commit: writes queued from the event loop, committed in batches on a worker thread.

One transaction and one fsync per batch, so durability does not cost throughput; the loop never
runs SQL on the writing connection, so it never waits behind a commit's fsync. A write that fails
fails alone: the batch's other rows are committed again one by one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from ..errors import InternalError, P2PError, StoreError
from ..runtime import quiet_logger

log = quiet_logger("p2p.storage")

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
            outcomes = await asyncio.to_thread(self._commit, [row for row, _ in batch])
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, _Failed):
                    error = _reported(outcome.exc)
                    if not fut.done():
                        fut.set_exception(error)
                elif not fut.done():
                    fut.set_result(outcome)

    def _commit(self, rows: list[Any]) -> list[Any]:
        """One result (or `_Failed`) per row. When the batch fails, each row is tried again in a
        transaction of its own, so one bad write (or a bug) costs only its own row."""
        try:
            return self._transaction(rows)
        except Exception as exc:  # noqa: BLE001 - the boundary: each failure goes to its row's waiter
            if len(rows) == 1:
                return [_Failed(exc)]
        outcomes: list[Any] = []
        for row in rows:
            try:
                outcomes += self._transaction([row])
            except Exception as exc:  # noqa: BLE001 - as above, for the row alone
                outcomes.append(_Failed(exc))
        return outcomes

    def _transaction(self, rows: list[Any]) -> list[Any]:
        with self.db:
            self.db.execute("BEGIN")
            results = self.write(self.db, rows)
            if len(results) != len(rows):
                raise InternalError(f"a write returned {len(results)} results for {len(rows)} rows")
        self.commits += 1
        return results

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._task


class _Failed:
    """What a row's write raised, carried from the commit thread to the row's waiter."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _reported(exc: Exception) -> P2PError:
    """Log a failed write and say what its waiter gets: a storage failure is a StoreError; a bug
    (anything that is not the database's nor the node's own error) is logged with its traceback
    and is an InternalError, never passed off as "commit failed"."""
    if isinstance(exc, sqlite3.Error):
        log.error("a write failed: %s", exc)
        return StoreError(f"commit failed: {exc}")
    if isinstance(exc, P2PError) and not isinstance(exc, InternalError):
        log.error("a write was refused: %s", exc)
        return exc
    log.error("a write failed on a bug: %r", exc, exc_info=exc)
    return exc if isinstance(exc, InternalError) else InternalError("internal error (logged)")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
