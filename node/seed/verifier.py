"""Registrations' signatures checked off the event loop, in one batch per turn of the loop.

A registration carries two Ed25519 signatures (the record's and the session auth's). PyNaCl
releases the GIL while it verifies, so a worker thread checks them while the loop parses,
stores and answers: both cores work. Handing one check to a thread costs about as much as the
check itself, so every check asked for in one turn of the loop goes to the pool as one job.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass

from ..crypto.signing import verify_record, verify_session
from ..wire.protocol import Record, SessionAuth

# checks in one job at most (a bigger batch only delays the first answers in it)
BATCH = 64


@dataclass(frozen=True, slots=True)
class Signatures:
    """What the pool found: the record's signature (None when it was not asked) and the auth's."""

    record: bool | None
    session: bool


def check(batch: list[tuple[Record | None, SessionAuth, str]]) -> list[Signatures]:
    """Runs on a worker thread."""
    return [
        Signatures(None if r is None else verify_record(r), verify_session(a, key))
        for r, a, key in batch
    ]


class Verifier:
    """Collects the checks asked for in one loop turn and runs them as one job on `pool`."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.waiting: list[tuple[Record | None, SessionAuth, str]] = []
        self.futures: list[asyncio.Future[Signatures | None]] = []

    def check(
        self, record: Record | None, auth: SessionAuth, key: str
    ) -> asyncio.Future[Signatures | None]:
        """The signatures of `record` (None: not needed) and of `auth` under `key`, checked soon;
        None when the pool could not check them (the caller checks them itself)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Signatures | None] = loop.create_future()
        if not self.waiting:
            loop.call_soon(self._flush)
        self.waiting.append((record, auth, key))
        self.futures.append(fut)
        if len(self.waiting) >= BATCH:
            self._flush()
        return fut

    def _flush(self) -> None:
        if not self.waiting:
            return
        batch, futures = self.waiting, self.futures
        self.waiting, self.futures = [], []
        try:
            job = asyncio.get_running_loop().run_in_executor(self.pool, check, batch)
        except RuntimeError:  # the pool is shut down (the seed is stopping)
            for fut in futures:
                fut.set_result(None)
            return

        def done(job: asyncio.Future[list[Signatures]]) -> None:
            if job.cancelled() or job.exception() is not None:
                for fut in futures:
                    if not fut.done():
                        fut.set_result(None)
                return
            for fut, result in zip(futures, job.result(), strict=True):
                if not fut.done():
                    fut.set_result(result)

        job.add_done_callback(done)
