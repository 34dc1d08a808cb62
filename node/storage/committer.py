"""Group commit: writes queued from the event loop, committed in batches on a thread of its own.

One transaction and one fsync per batch, so durability does not cost throughput; the loop never
runs SQL on the writing connection, so it never waits behind a commit's fsync. The rows queued in
one turn of the loop go to the thread together, and the thread takes every batch that came while
it was committing into its next transaction; it is woken through a queue, not an executor job,
so a batch costs one hop each way and no task wake-up on the loop. A write that fails fails
alone: the batch's other rows are committed again one by one.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from ..errors import InternalError, P2PError, StoreError
from ..runtime import quiet_logger

log = quiet_logger("p2p.storage")

Writer = Callable[[sqlite3.Connection, list[Any]], list[Any]]
Batch = list[tuple[Any, "asyncio.Future[Any]"]]


class GroupCommitter:
    """Runs queued rows through `write` in batches, one transaction each, on a thread of its own.

    `submit(row)` returns a future that resolves, once the row is committed, to what `write`
    returned for it (one result per row: whether an insert took, a new row number, ...), so a
    reply that promises durability can wait for it while the loop goes on accepting more work.
    Rows are applied in the order they were submitted.
    """

    def __init__(self, db: sqlite3.Connection, write: Writer) -> None:
        self.db = db
        self.write = write
        self.loop = asyncio.get_running_loop()
        self._pending: Batch = []
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._closing = False
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, row: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        if self._closing:
            fut.set_exception(StoreError("the store is closing"))
            return fut
        if not self._pending:
            self.loop.call_soon(self._flush)
        self._pending.append((row, fut))
        return fut

    def submit_quietly(self, row: Any) -> None:
        """Queue a row nobody waits for (a failure is logged by the batch)."""
        self.submit(row).add_done_callback(_retrieve)

    def _flush(self) -> None:
        """This turn's rows, to the commit thread as one batch."""
        if self._pending:
            batch, self._pending = self._pending, []
            self._queue.put(batch)

    def _run(self) -> None:
        """The commit thread: each transaction takes every batch queued since the last one."""
        closing = False
        while not closing:
            batch = self._queue.get()
            if batch is None:
                break
            while True:  # what came while the last transaction committed joins this one
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                batch += more
            outcomes = self._commit([row for row, _ in batch])
            self._to_loop(self._settle, batch, outcomes)
        self._to_loop(self._done)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            pass

    def _settle(self, batch: Batch, outcomes: list[Any]) -> None:
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, _Failed):
                error = _reported(outcome.exc)
                if not fut.done():
                    fut.set_exception(error)
            elif not fut.done():
                fut.set_result(outcome)

    def _done(self) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

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
        """Commit what is queued, then stop the thread."""
        if not self._closing:
            self._closing = True
            self._flush()
            self._queue.put(None)
        await asyncio.shield(self._closed)


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
