"""The outbox as a state machine: order, window, rewinds, settling, expiry, backoff. No I/O."""

from node.user.outbox import Outbox, unknown_name
from node.user.store import StoredMessage


def msg(i: int, to: str = "Bob", ts: int = 1000) -> StoredMessage:
    return StoredMessage.new_outgoing(f"m{i}", "Sally", to, ts + i, f"text {i}")


def ids(batch) -> list[str]:
    return [m.id for m in batch]


def test_messages_leave_in_order_within_the_window():
    box = Outbox(window=3, expire_ms=10_000, retry_first=0.5, retry_max=8)
    for i in range(5):
        box.add(msg(i))
    assert ids(box.next_batch("bob")) == ["m0", "m1", "m2"]
    assert box.next_batch("bob") == []  # the window is full
    assert box.settle("bob", "m1").id == "m1"
    assert ids(box.next_batch("bob")) == ["m3"]
    box.add(msg(5))
    box.settle("bob", "m0")
    assert ids(box.next_batch("bob")) == ["m4"]
    assert box.pending_count() == 4 and box.recipient("bob") == "Bob"


def test_a_rewind_sends_everything_unacknowledged_again_in_order():
    box = Outbox(window=10, expire_ms=10_000, retry_first=0.5, retry_max=8)
    for i in range(4):
        box.add(msg(i))
    box.next_batch("bob")
    box.settle("bob", "m1")
    box.rewind("bob")  # the connection was lost
    assert ids(box.next_batch("bob")) == ["m0", "m2", "m3"]


def test_settling_twice_is_harmless_and_an_empty_queue_is_forgotten():
    box = Outbox(window=10, expire_ms=10_000, retry_first=0.5, retry_max=8)
    box.add(msg(0))
    assert box.settle("bob", "m0") is not None
    assert box.settle("bob", "m0") is None
    assert not box.has("bob") and box.drop_empty("bob") and box.peers() == []


def test_expiry_takes_old_messages_out():
    box = Outbox(window=10, expire_ms=500, retry_first=0.5, retry_max=8)
    box.add(msg(0, ts=1000))
    box.add(msg(1, ts=2000))
    assert ids(box.expired("bob", now=1600)) == ["m0"]
    assert ids(box.messages("bob")) == ["m1"]


def test_waits_grow_up_to_the_ceiling_and_progress_resets_them():
    box = Outbox(window=10, expire_ms=10_000, retry_first=0.5, retry_max=2)
    box.add(msg(0))
    assert box.wait("bob", "recipient offline")[1] is True
    assert box.wait("bob", "recipient offline")[1] is False  # the same reason is no news
    assert box.wait("bob", "no seed reachable")[1] is True
    assert all(0.5 <= box.wait("bob", "no seed reachable")[0] <= 2 for _ in range(50))
    box.progressed("bob")
    assert box.queues["bob"].backoff.delay == 0.5


def test_recipients_are_independent():
    box = Outbox(window=1, expire_ms=10_000, retry_first=0.5, retry_max=8)
    box.add(msg(0, to="Bob"))
    box.add(msg(1, to="Carol"))
    assert ids(box.next_batch("bob")) == ["m0"] and ids(box.next_batch("carol")) == ["m1"]
    box.returned("bob", "m0")
    assert box.in_flight("bob") == 0 and box.in_flight("carol") == 1


def test_an_unknown_name_waits_until_expiry_and_only_then_fails():
    """No seed knows the name: the messages stay queued with the reason, not failed; they leave
    only when they expire (or are cancelled)."""
    box = Outbox(window=10, expire_ms=1_000, retry_first=0.5, retry_max=8, rand=lambda: 0.0)
    box.add(msg(0, to="Ann", ts=1000))
    reason = unknown_name("Ann")
    assert "nobody is registered as Ann yet" in reason and "retrying" in reason
    assert box.wait("ann", reason) == (0.5, True)
    assert box.expired("ann", now=1900) == [] and box.has("ann")
    assert box.until_expiry("ann", now=1900) == 100
    assert ids(box.expired("ann", now=2001)) == ["m0"] and not box.has("ann")


def test_cancel_takes_a_queued_message_out_and_only_once():
    box = Outbox(window=10, expire_ms=10_000, retry_first=0.5, retry_max=8)
    box.add(msg(0))
    box.add(msg(1))
    assert box.cancel("m0").id == "m0"
    assert box.cancel("m0") is None and box.cancel("nope") is None
    assert ids(box.next_batch("bob")) == ["m1"]


def test_a_retried_failed_message_queues_again_with_its_expiry_from_the_retry():
    box = Outbox(window=10, expire_ms=1_000, retry_first=0.5, retry_max=8)
    box.add(msg(0, ts=1000))
    failed = box.expired("bob", now=5000)[0]
    again = box.requeue(failed, now=5000)
    assert again.state == "queued" and again.queued_at == 5000 and again.ts == failed.ts
    assert box.expired("bob", now=5500) == [] and ids(box.next_batch("bob")) == ["m0"]
    assert ids(box.expired("bob", now=6001)) == ["m0"]


def test_retry_now_starts_the_wait_short_and_makes_the_reason_news_again():
    draws = iter([1.0] * 4 + [0.0])  # the widest jitter while it grows, then the narrowest
    box = Outbox(
        window=10, expire_ms=10_000, retry_first=0.5, retry_max=8, rand=lambda: next(draws)
    )
    assert box.retry_now("bob") is False  # nothing queued
    box.add(msg(0))
    waits = [box.wait("bob", unknown_name("Bob"))[0] for _ in range(4)]
    assert waits[-1] == 8  # grown to the ceiling
    assert box.retry_now("bob") is True
    assert box.wait("bob", unknown_name("Bob")) == (0.5, True)
