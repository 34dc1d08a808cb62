"""The outbox as a state machine with no I/O: what to send next to whom, how many in flight, when to retry.

Per recipient, messages leave in the order they were queued, at most `window` unacknowledged at
once; a lost connection puts everything unacknowledged back in line, in order, so the recipient
stores them in order. Delays double while a recipient cannot be reached and reset on progress.
The delivery code (delivery.py) does the I/O and asks this what to do; tests drive it directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..wire.backoff import Backoff
from .store import StoredMessage


@dataclass
class PeerQueue:
    """One recipient's messages in the order queued, and where each is."""

    backoff: Backoff
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    unsent: deque[str] = field(default_factory=deque)
    inflight: set[str] = field(default_factory=set)
    waiting_for: str | None = None  # why delivery waits, as last reported


class Outbox:
    def __init__(self, window: int, expire_ms: int, retry_first: float, retry_max: float) -> None:
        self.window = window
        self.expire_ms = expire_ms
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.queues: dict[str, PeerQueue] = {}

    def add(self, msg: StoredMessage) -> None:
        """Queue a message behind the recipient's others."""
        queue = self.queues.get(msg.peer)
        if queue is None:
            queue = self.queues[msg.peer] = PeerQueue(Backoff(self.retry_first, self.retry_max))
        queue.messages[msg.id] = msg
        queue.unsent.append(msg.id)

    def peers(self) -> list[str]:
        return list(self.queues)

    def pending_count(self) -> int:
        return sum(len(q.messages) for q in self.queues.values())

    def has(self, peer: str) -> bool:
        """True while something is queued for `peer`."""
        queue = self.queues.get(peer)
        return queue is not None and bool(queue.messages)

    def messages(self, peer: str) -> list[StoredMessage]:
        queue = self.queues.get(peer)
        return list(queue.messages.values()) if queue else []

    def recipient(self, peer: str) -> str | None:
        """The recipient's name as the first queued message spells it."""
        queue = self.queues.get(peer)
        if queue is None or not queue.messages:
            return None
        return next(iter(queue.messages.values())).recipient

    def drop_empty(self, peer: str) -> bool:
        """Forget a recipient with nothing queued; True when it was forgotten."""
        queue = self.queues.get(peer)
        if queue is not None and not queue.messages:
            del self.queues[peer]
            return True
        return False

    # ------------------------------------------------------------------ sending

    def expired(self, peer: str, now: int) -> list[StoredMessage]:
        """Messages queued longer than `expire_ms` ago; they leave the outbox."""
        queue = self.queues.get(peer)
        if queue is None:
            return []
        cutoff = now - self.expire_ms
        old = [m for m in queue.messages.values() if m.ts < cutoff]
        for msg in old:
            self.settle(peer, msg.id)
        return old

    def rewind(self, peer: str) -> None:
        """A new connection: everything unacknowledged goes back in line, in the order queued."""
        queue = self.queues.get(peer)
        if queue is not None:
            queue.inflight.clear()
            queue.unsent = deque(queue.messages)

    def next_batch(self, peer: str) -> list[StoredMessage]:
        """The next messages to send, in order, as many as the window has room for; now in flight."""
        queue = self.queues.get(peer)
        if queue is None:
            return []
        batch = []
        while queue.unsent and len(queue.inflight) < self.window:
            msg_id = queue.unsent.popleft()
            msg = queue.messages.get(msg_id)
            if msg is None or msg_id in queue.inflight:
                continue  # settled meanwhile, or a duplicate entry from an earlier rewind
            queue.inflight.add(msg_id)
            batch.append(msg)
        return batch

    def in_flight(self, peer: str) -> int:
        queue = self.queues.get(peer)
        return len(queue.inflight) if queue else 0

    def in_flight_ids(self, peer: str) -> list[str]:
        queue = self.queues.get(peer)
        return list(queue.inflight) if queue else []

    def returned(self, peer: str, msg_id: str) -> None:
        """An in-flight message came back unacknowledged (the recipient asked to retry)."""
        queue = self.queues.get(peer)
        if queue is not None:
            queue.inflight.discard(msg_id)

    def settle(self, peer: str, msg_id: str) -> StoredMessage | None:
        """A message leaves the outbox (delivered, failed or expired); None when it had already."""
        queue = self.queues.get(peer)
        if queue is None:
            return None
        queue.inflight.discard(msg_id)
        return queue.messages.pop(msg_id, None)

    # ------------------------------------------------------------------ waiting

    def wait(self, peer: str, reason: str) -> tuple[float, bool]:
        """Delivery to `peer` must wait: the delay before the next try, and whether the reason is new."""
        queue = self.queues[peer]
        new_reason = reason != queue.waiting_for
        queue.waiting_for = reason
        return queue.backoff.next(), new_reason

    def progressed(self, peer: str) -> None:
        """Something went through: the next wait starts short again."""
        queue = self.queues.get(peer)
        if queue is not None:
            queue.backoff.reset()

    def waiting_for(self, peer: str) -> str | None:
        queue = self.queues.get(peer)
        return queue.waiting_for if queue else None
