"""Registrations' signatures checked off the event loop, in one batch per turn of the loop.

A registration carries two Ed25519 signatures (the record's and the session auth's). PyNaCl
releases the GIL while it verifies, so a worker thread checks them while the loop parses,
stores and answers. Handing one check to a thread costs about as much as the check itself, so
every check asked for in one turn of the loop goes to the pool as one job. Under load a thread
still waits for the GIL between checks while the loop runs, so the two took turns instead of
sharing the cores: a turn with many checks goes to worker processes instead, as the signed bytes
(built on the loop), and only booleans come back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from nacl.bindings import crypto_sign_open

from ..crypto.keys import unb64
from ..crypto.signing import record_bytes, session_bytes, verify_record, verify_session
from ..wire.protocol import Record, SessionAuth

# checks in one job at most (a bigger batch only delays the first answers in it)
BATCH = 64
# checks in one turn that start the worker processes (a burst; a quiet seed never starts them)
PROCESS_START = 16
# checks in one turn from which they go to the worker processes once they are up (a process hop
# costs more than a thread's; a few checks at a time do not keep the loop busy enough to starve
# a thread), in jobs of PROCESS_JOB, so the loop answers the first while the next are checked
PROCESS_AT = 4
PROCESS_JOB = 8

Signed = tuple[bytes, bytes, bytes]  # (key, signed bytes, signature)


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


def holds(signed: Signed | None) -> bool | None:
    """Runs in a worker process: whether one signature holds (None: none was asked)."""
    if signed is None:
        return None
    key, data, sig = signed
    try:
        crypto_sign_open(sig + data, key)
    except Exception:  # noqa: BLE001 - a bad signature, key or size: it does not hold
        return False
    return True


def check_signed(batch: list[tuple[Signed | None, Signed | None]]) -> list[Signatures]:
    """Runs in a worker process: the pairs (record's, auth's) built by `signed` on the loop."""
    return [Signatures(holds(r), holds(a) is True) for r, a in batch]


def signed(
    record: Record | None, auth: SessionAuth, key: str
) -> tuple[Signed | None, Signed | None]:
    """The bytes each signature covers, with its key and signature decoded (None for an auth
    whose key or signature is not base64: it does not hold)."""
    try:
        record_part = (
            None
            if record is None
            else (
                unb64(record.key),
                record_bytes(record.name, record.key, record.endpoint, record.seq),
                unb64(record.sig),
            )
        )
    except ValueError:
        record_part = (b"", b"", b"")  # does not hold
    try:
        auth_part: Signed | None = (unb64(key), session_bytes(auth), unb64(auth.sig))
    except ValueError:
        auth_part = None
    return record_part, auth_part


class Processes:
    """Worker processes for big turns of checks, started on the first one (until they are up,
    threads check as before), stopped with the seed."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.ready = False
        self.starting: asyncio.Future[object] | None = None

    def usable(self, start: bool) -> Executor | None:
        """The pool once it answers; the first call with `start` starts it."""
        if self.ready:
            return self.pool
        if start and self.pool is None and self.workers > 0:
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("forkserver")
            )
            self.starting = asyncio.get_running_loop().run_in_executor(self.pool, os.getpid)
            self.starting.add_done_callback(self._started)
        return None

    def _started(self, fut: asyncio.Future[object]) -> None:
        self.ready = not fut.cancelled() and fut.exception() is None

    def close(self) -> None:
        self.ready = False
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


class Verifier:
    """Collects the checks asked for in one loop turn and runs them as one job on `pool`, or on
    `processes` when the turn has PROCESS_AT checks or more."""

    def __init__(self, pool: Executor, processes: Processes | None = None) -> None:
        self.pool = pool
        self.processes = processes
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
        processes = (
            self.processes.usable(len(batch) >= PROCESS_START)
            if self.processes is not None and len(batch) >= PROCESS_AT
            else None
        )
        if processes is None:
            self._job(self.pool, check, batch, futures)
            return
        for i in range(0, len(batch), PROCESS_JOB):
            part = [signed(r, a, k) for r, a, k in batch[i : i + PROCESS_JOB]]
            self._job(processes, check_signed, part, futures[i : i + PROCESS_JOB])

    def _job(
        self,
        pool: Executor,
        fn: Callable[[list[Any]], list[Signatures]],
        batch: list[Any],
        futures: list[asyncio.Future[Signatures | None]],
    ) -> None:
        """One job on `pool`; its answers go to `futures` (None for each when it fails)."""
        try:
            job = asyncio.get_running_loop().run_in_executor(pool, fn, batch)
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
