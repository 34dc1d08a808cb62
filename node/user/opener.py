"""A `chats` batch's boxes opened, and their ack proofs sealed, on a worker thread: one job a batch.

PyNaCl releases the GIL while it decrypts and encrypts, so a worker thread can open a batch's
boxes while the event loop and the commit thread go on. Handing a job to a thread costs about
100 µs of CPU, as much as opening and proving five chats, so only a batch goes (a lone `chat` is
opened inline), and every check stays where it was: the inbox uses what the job found only for a
chat whose contact key is still the one the job used, and opens inline whatever the job could not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from ..crypto.boxes import Boxes
from ..errors import ProtocolError
from ..runtime import quiet_logger
from ..wire.protocol import Chat, ChatPlain

log = quiet_logger("p2p.user.opener")


@dataclass(frozen=True, slots=True)
class Opened:
    """One chat's box tried with `key`: its plaintext (None: it did not open with that key) and,
    when it opened, the proof an ack for it carries."""

    key: str
    inner: ChatPlain | None
    proof: str | None


def open_all(boxes: Boxes, jobs: Sequence[tuple[str, Chat]]) -> list[Opened]:
    """Runs on a worker thread: each (key, chat) opened and, when it opens, proven."""
    out: list[Opened] = []
    for key, chat in jobs:
        try:
            inner = boxes.open(key, chat)
        except ProtocolError:
            out.append(Opened(key, None, None))
            continue
        out.append(Opened(key, inner, boxes.ack_proof(key, chat.from_, chat.id, chat.to)))
    return out


class Opener:
    """Opens the boxes of a batch with their senders' pinned keys on `pool`, as one job."""

    def __init__(self, boxes: Boxes, pool: Executor) -> None:
        self.boxes = boxes
        self.pool = pool
        self.jobs = 0  # jobs handed to the pool
        self.opened = 0  # boxes handed to the pool in them

    async def open_batch(self, jobs: Sequence[tuple[str, Chat]]) -> list[Opened] | None:
        """What the job found for each (key, chat), in order; None when the pool could not take
        it (stopping) or the job failed: the inbox opens inline."""
        if not jobs:
            return None
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self.pool, open_all, self.boxes, list(jobs)
            )
        except RuntimeError:  # the pool is shut down (the node is stopping)
            return None
        self.jobs += 1
        self.opened += len(jobs)
        try:
            return await future
        except Exception:  # a bug: the inbox opens the batch inline, as it would a lone chat
            log.exception("opening a batch on the opens thread failed")
            return None
