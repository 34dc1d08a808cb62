"""The outbox as a state machine with no I/O: what to send next to whom, how many in flight, when to retry.

Per recipient, messages leave in the order they were queued, at most `window` unacknowledged at
once; a lost connection puts everything unacknowledged back in line, in order. A message stays
until its end-to-end acknowledgement, whatever path it took: sent straight to the recipient,
relayed through the seeds, or stored by them as mail. Delays double while a recipient cannot be
reached and reset on progress. A name no seed knows is not a failure: it may register later (a
seed restarted or not synced yet, a friend not set up yet), so its messages wait like any other
until they expire or the user cancels them. The delivery code (delivery.py) does the I/O and
asks this what to do; tests drive it directly.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..wire.backoff import Backoff
from .store import StoredMessage

CANCELLED = "cancelled"


class HeldReason(str):
    """A reason to wait that only a person (or the name's owner) can end, not the network: a
    script that stops at the end of its input does not wait on it."""


def unknown_name(name: str) -> str:
    """Why messages to a name no seed knows wait (the words say they are not given up on)."""
    return HeldReason(f"unknown name: nobody is registered as {name} yet; retrying")


def key_changed(name: str) -> str:
    """Why messages to a contact whose key changed wait."""
    return HeldReason(f"key changed; /accept {name} to send")


@dataclass
class PeerQueue:
    """One recipient's messages in the order queued, and where each is."""

    backoff: Backoff
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    unsent: deque[str] = field(default_factory=deque)
    inflight: set[str] = field(default_factory=set)
    relayed: dict[str, float] = field(
        default_factory=dict
    )  # id -> when the seed took it (relay_ok)
    stored: dict[str, float] = field(default_factory=dict)  # id -> when the mesh took it as mail
    waiting_for: str | None = None  # why delivery waits, as last reported


class Outbox:
    def __init__(
        self,
        window: int,
        expire_ms: int,
        retry_first: float,
        retry_max: float,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """`rand` is the retry delays' jitter source (fixed in unit tests)."""
        self.window = window
        self.rand = rand
        self.expire_ms = expire_ms
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.queues: dict[str, PeerQueue] = {}
        self.peer_of: dict[str, str] = {}  # message id -> recipient, for acks by any path

    def add(self, msg: StoredMessage, stored_at: float | None = None) -> None:
        """Queue a message behind the recipient's others (`stored_at`: held as mail already)."""
        queue = self.queues.get(msg.peer)
        if queue is None:
            queue = self.queues[msg.peer] = PeerQueue(
                Backoff(self.retry_first, self.retry_max, self.rand)
            )
        queue.messages[msg.id] = msg
        queue.unsent.append(msg.id)
        self.peer_of[msg.id] = msg.peer
        if stored_at is not None:
            queue.stored[msg.id] = stored_at

    def find(self, msg_id: str) -> StoredMessage | None:
        """The queued message with this id, whoever it is for."""
        peer = self.peer_of.get(msg_id)
        queue = self.queues.get(peer) if peer is not None else None
        return queue.messages.get(msg_id) if queue is not None else None

    def peers(self) -> list[str]:
        return list(self.queues)

    def peer_messages(self) -> list[StoredMessage]:
        return [m for q in self.queues.values() for m in q.messages.values()]

    def pending_count(self) -> int:
        return sum(len(q.messages) for q in self.queues.values())

    def unsettled_count(self, held: bool = False) -> int:
        """Messages not held by the mesh as mail, in queues that wait on the network (or, with
        `held`, on a person: an unknown name, a changed key)."""
        return sum(
            len(q.messages) - len(q.stored)
            for q in self.queues.values()
            if isinstance(q.waiting_for, HeldReason) == held
        )

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
        old = [m for m in queue.messages.values() if m.since < cutoff]
        for msg in old:
            self.settle(peer, msg.id)
        return old

    def until_expiry(self, peer: str, now: int) -> int:
        """Milliseconds until the oldest queued message expires (0 when one has)."""
        queue = self.queues.get(peer)
        if queue is None or not queue.messages:
            return 0
        oldest = min(m.since for m in queue.messages.values())
        return max(0, oldest + self.expire_ms - now)

    def rewind(self, peer: str) -> None:
        """A new connection: everything unacknowledged goes back in line, in the order queued."""
        queue = self.queues.get(peer)
        if queue is not None:
            queue.inflight.clear()
            queue.relayed.clear()
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
            queue.relayed.pop(msg_id, None)

    def relayed(self, peer: str, msg_id: str, now: float) -> None:
        """The seed took a relayed message on its way (relay_ok): only an ack says it arrived."""
        queue = self.queues.get(peer)
        if queue is not None and msg_id in queue.messages:
            queue.relayed[msg_id] = now

    def overdue(self, peer: str, now: float, timeout: float) -> list[StoredMessage]:
        """Relayed messages with no ack `timeout` seconds after relay_ok: they go to mail."""
        queue = self.queues.get(peer)
        if queue is None:
            return []
        late = [i for i, at in queue.relayed.items() if now - at >= timeout]
        return [queue.messages[i] for i in late if i in queue.messages]

    def stored(self, peer: str, msg_id: str, now: float) -> bool:
        """The mesh holds the message as mail; True the first time (the state to report)."""
        queue = self.queues.get(peer)
        if queue is None or msg_id not in queue.messages:
            return False
        first = msg_id not in queue.stored
        queue.stored[msg_id] = now
        queue.inflight.discard(msg_id)
        queue.relayed.pop(msg_id, None)
        return first

    def to_store(self, peer: str, now: float, again_after: float) -> list[StoredMessage]:
        """Messages to deposit as mail: those never stored, and those stored longer ago than
        `again_after` (a deposit is idempotent; a seed that lost the item gets it back)."""
        queue = self.queues.get(peer)
        if queue is None:
            return []
        return [
            m
            for i, m in queue.messages.items()
            if now - queue.stored.get(i, -again_after) >= again_after
        ]

    def all_stored(self, peer: str) -> bool:
        queue = self.queues.get(peer)
        return (
            queue is not None
            and bool(queue.messages)
            and all(i in queue.stored for i in queue.messages)
        )

    def settle(self, peer: str, msg_id: str) -> StoredMessage | None:
        """A message leaves the outbox (delivered, failed or expired); None when it had already."""
        queue = self.queues.get(peer)
        if queue is None:
            return None
        queue.inflight.discard(msg_id)
        queue.relayed.pop(msg_id, None)
        queue.stored.pop(msg_id, None)
        self.peer_of.pop(msg_id, None)
        return queue.messages.pop(msg_id, None)

    # ------------------------------------------------------------------ the user's say

    def cancel(self, msg_id: str) -> StoredMessage | None:
        """The user gives up on a queued message: it leaves the outbox (None: it was not in it)."""
        peer = self.peer_of.get(msg_id)
        return self.settle(peer, msg_id) if peer is not None else None

    def requeue(self, msg: StoredMessage, now: int) -> StoredMessage:
        """A failed message goes back in line (/retry); its expiry counts from `now`."""
        again = replace(msg, state="queued", reason=None, queued_at=now)
        self.add(again)
        self.retry_now(again.peer)
        return again

    def retry_now(self, peer: str) -> bool:
        """The user asks to try again now: the wait starts short and the reason is news again;
        False when nothing is queued for `peer`."""
        queue = self.queues.get(peer)
        if queue is None or not queue.messages:
            return False
        queue.backoff.reset()
        queue.waiting_for = None
        return True

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
