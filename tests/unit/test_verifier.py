"""Registrations' signatures are checked on a worker thread, one job per turn of the loop."""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor

from node.crypto.keys import Identity
from node.crypto.signing import sign_record, sign_session
from node.seed.verifier import BATCH, Signatures, Verifier

from .pools import CountingPool

NONCE = base64.b64encode(bytes(32)).decode()


async def test_checks_asked_in_one_turn_are_one_job_and_each_gets_its_answer():
    me, other = Identity.generate(), Identity.generate()
    good = sign_record(me, "erin", "ws://127.0.0.1:9", 5)
    forged = good.model_copy(update={"endpoint": "ws://127.0.0.1:10"})
    auth = sign_session(me, "erin", other.key, NONCE, 1)
    pool = CountingPool(2)
    verifier = Verifier(pool)
    futures = [
        verifier.check(good, auth, me.key),
        verifier.check(forged, auth, me.key),
        verifier.check(None, auth, other.key),
    ]
    results = await asyncio.gather(*futures)
    assert results == [
        Signatures(True, True),
        Signatures(False, True),
        Signatures(None, False),
    ]
    assert pool.jobs == 1
    # a turn with more than a batch is split so the first answers do not wait for all
    many = [verifier.check(None, auth, me.key) for _ in range(BATCH + 1)]
    assert all(r == Signatures(None, True) for r in await asyncio.gather(*many))
    assert pool.jobs == 3
    pool.shutdown()


async def test_a_pool_that_is_shut_down_answers_none_so_the_caller_checks_itself():
    me = Identity.generate()
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    verifier = Verifier(pool)
    assert await verifier.check(None, sign_session(me, "erin", me.key, NONCE, 1), me.key) is None
