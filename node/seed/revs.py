"""The seed's change counter: every change it accepts gets the next number, as `[EPOCH, N]`.

Pure: numbers are handed out from memory, and the counter's ceiling is reserved on disk a block
ahead, so after a crash or restart every new number is above any number handed out before
(a peer's `since` may name one), without a write per change.
"""

from __future__ import annotations

from ..errors import StoreError

BLOCK = 1_000_000


class Revs:
    def __init__(self, epoch: str, reserved: int, block: int = BLOCK) -> None:
        """Start above `reserved`, the ceiling saved by the previous run (0 for a new directory)."""
        self.epoch = epoch
        self.block = block
        self.n = reserved
        self.ceiling = reserved  # nothing may be handed out above this until it is saved higher
        self.pending: int | None = None  # a higher ceiling being saved

    def first_reservation(self) -> int:
        """The ceiling to save before any number is handed out (at start)."""
        self.ceiling = self.n + self.block
        return self.ceiling

    def next(self) -> int:
        if self.n >= self.ceiling:
            # the store has not saved a higher ceiling in time (it fails to commit): a number
            # handed out now could be handed out again after a restart
            raise StoreError("the change counter is past the ceiling saved on disk")
        self.n += 1
        return self.n

    def reservation_due(self) -> int | None:
        """A higher ceiling to save now, once half the block is used (None while none is due)."""
        if self.pending is None and self.ceiling - self.n < self.block // 2:
            self.pending = self.n + self.block
            return self.pending
        return None

    def reserved(self, ceiling: int) -> None:
        """The ceiling `ceiling` is on disk: numbers up to it may be handed out."""
        self.ceiling = max(self.ceiling, ceiling)
        if self.pending == ceiling:
            self.pending = None

    def current(self) -> tuple[str, int]:
        """The rev of the latest change."""
        return self.epoch, self.n
