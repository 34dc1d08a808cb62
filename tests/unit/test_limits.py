"""Rate limits, backoff and the request correlator: the small shared parts of node/wire."""

from __future__ import annotations

import asyncio
import random

import pytest

from node.errors import ConnectionLost
from node.wire.backoff import Backoff
from node.wire.correlator import Correlator
from node.wire.limits import RateLimit, Verdict


def test_a_bucket_allows_its_burst_then_refuses_then_cuts():
    limit = RateLimit(rate=10, burst=5, now=0.0)
    assert [limit.check(0.0) for _ in range(5)] == [Verdict.ALLOW] * 5
    assert [limit.check(0.0) for _ in range(5)] == [Verdict.REFUSE] * 5
    assert limit.check(0.0) is Verdict.CUT  # refused more than `burst` times within the window


def test_a_bucket_refills_with_time_and_forgives_after_the_window():
    limit = RateLimit(rate=10, burst=5, now=0.0)
    for _ in range(5):
        limit.check(0.0)
    assert limit.check(0.05) is Verdict.REFUSE  # half a token
    assert limit.check(0.2) is Verdict.ALLOW  # 0.2 s at 10/s: two tokens
    for _ in range(4):
        limit.check(0.2)
    assert limit.check(11.0) is Verdict.ALLOW  # refills to the burst, not beyond
    assert limit.tokens == 4


def test_costs_and_allows_do_not_count_towards_a_cut():
    limit = RateLimit(rate=1, burst=10, now=0.0)
    assert limit.allows(0.0, cost=8) and not limit.allows(0.0, cost=8)
    assert limit.refused == 0


def test_backoff_grows_to_the_ceiling_and_resets():
    highest = Backoff(0.5, 10.0, rand=lambda: 1.0)  # each delay three times the one before
    assert [highest.next() for _ in range(4)] == [1.5, 4.5, 10.0, 10.0]
    highest.reset()
    assert highest.next() == 1.5
    lowest = Backoff(0.5, 10.0, rand=lambda: 0.0)
    assert [lowest.next() for _ in range(3)] == [0.5, 0.5, 0.5]


def test_backoff_jitter_spreads_two_nodes_and_keeps_its_bounds():
    """Users of a seed that died together must not retry together; no delay leaves [first, ceiling]."""
    one, two = Backoff(0.25, 10.0), Backoff(0.25, 10.0)  # the default random source
    schedule_one = [one.next() for _ in range(8)]
    assert schedule_one != [two.next() for _ in range(8)]
    seeded = Backoff(0.25, 10.0, rand=random.Random(7).random)
    delays = [seeded.next() for _ in range(2000)]
    assert all(0.25 <= d <= 10.0 for d in delays)
    assert len(set(delays)) > 100  # not a fixed schedule


async def test_backoff_sleep_wakes_early():
    wake = asyncio.Event()
    wake.set()
    assert await Backoff(60.0, 60.0).sleep(wake) is True
    assert not wake.is_set()


async def test_correlator_matches_replies_and_fails_waiters_when_the_socket_goes():
    c: Correlator[str] = Correlator()
    one, two = c.expect("1"), c.expect("2")
    assert c.resolve("2", "second") and two.result() == "second"
    assert not c.resolve("2", "again") and not c.resolve("nobody asked", "x")
    c.close("gone")
    with pytest.raises(ConnectionLost):
        one.result()
    late = c.expect("3")
    with pytest.raises(ConnectionLost):
        late.result()


async def test_correlator_wait_forgets_the_id_on_timeout():
    c: Correlator[str] = Correlator()
    fut = c.expect("x")
    with pytest.raises(TimeoutError):
        await c.wait("x", fut, timeout=0.01)
    assert len(c) == 0 and not c.resolve("x", "late")


def test_available_counts_what_the_bucket_admits_and_takes_nothing():
    limit = RateLimit(rate=1.0, burst=3.0, now=0.0)
    assert limit.available(0.0) == limit.available(0.0) == 3
    assert limit.check(0.0) is Verdict.ALLOW
    assert limit.available(0.0) == 2
    assert limit.available(0.5) == 2  # 2.5 tokens: two whole frames
    assert limit.available(10.0) == 3  # never past the burst
