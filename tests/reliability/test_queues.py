"""What sockets that never read cost a seed process (issue 18), measured: run with --full.

The behaviour (a socket closed past its byte bound, a sync within the link's queue, a hung user
dropped) is asserted in tests/test_frames_queues.py; these scenarios print the seed's memory
under the attacks as they were reported.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail
from node.wire.sockets import dial

from ..helpers import RawClient, eventually, hello_frame, record
from ..procs import SeedProc, rss_kb
from ..test_frames_queues import _lookup_frames, _non_reader, _small_socket
from ..test_trust import _chat, http_health

MIB = 1024 * 1024


async def _linked(seed, count: int, sent_before: int) -> dict | None:
    """/health once `count` sockets are open and their syncs have begun (20 frames each)."""
    health = await http_health(seed)
    up = health["connections"] >= count and health["frames"]["sent"] - sent_before >= 20 * count
    return health if up else None


async def _sample_peak(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, rss_kb(pid))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass
    return max(peak, rss_kb(pid))


async def test_sockets_that_never_read_cost_a_bounded_memory(tmp_path, full):
    """Problem 5: 60 unregistered sockets asking lookups and never reading took a seed from
    43 MiB to 1,091 MiB in ~50 s (each queue held up to 10,000 answers)."""
    if not full:
        pytest.skip("a measured scenario: run it with pytest --full")
    seed = await asyncio.to_thread(SeedProc, tmp_path / "seed", "hogged")
    try:
        reg = await RawClient.open(seed.url)
        fat = record(Identity.generate(), "fat", "ws://127.0.0.1:9/" + "e" * 2000)
        assert (await reg.request({"type": "register", "record": fat}))["type"] == "registered"
        rss0 = rss_kb(seed.p.pid)
        stop = asyncio.Event()
        sampler = asyncio.ensure_future(_sample_peak(seed.p.pid, stop))
        hogs = [await _non_reader(seed.url) for _ in range(60)]
        loop = asyncio.get_running_loop()
        duration = 50.0

        async def ask(hog) -> int:
            """Lookups at 190 a second (under the rate limit) until the seed closes it."""
            sent, start = 0, loop.time()
            frames = _lookup_frames("fat", 19)
            try:
                while loop.time() - start < duration:
                    for text in frames:
                        await hog.send(text)
                    sent += len(frames)
                    await asyncio.sleep(0.1)
            except Exception:  # noqa: BLE001 - closed by the seed
                return sent
            return -sent

        began = loop.time()
        results = await asyncio.gather(*(ask(h) for h in hogs))
        took = loop.time() - began
        answer = await reg.request({"type": "lookup", "name": "fat", "hops": 0})
        stop.set()
        peak = await sampler
        closed = sum(1 for r in results if r >= 0)
        print(
            f"\n60 sockets asking lookups and never reading: {sum(abs(r) for r in results)} "
            f"lookups, {closed} sockets closed within {took:.1f} s; "
            f"seed RSS {rss0 / 1024:.0f} -> peak {peak / 1024:.0f} MiB"
        )
        assert answer["type"] == "found"
        assert peak - rss0 < 300 * 1024, "the seed's memory grew by more than 300 MiB"
        for hog in hogs:
            hog.transport.abort()
    finally:
        await asyncio.to_thread(seed.stop)


MAIL_CONFIG = """[seed]
mail_per_recipient = 1000000
mail_per_recipient_bytes = 1073741824
mail_per_sender = 1000000
mail_per_sender_bytes = 1073741824
mail_per_pair = 1000000
mail_per_pair_bytes = 1073741824
rate = 100000.0
burst = 100000.0
max_connections_per_address = 100000
new_names_per_minute = 1000000000.0
"""


async def test_stranger_links_that_never_read_cost_no_copy_of_the_mail(tmp_path, full):
    """Problem 4: with 200 MiB of mail held, 4 stranger links that never read took a seed from
    48 MiB to 901 MiB: the initial sync to each was built whole in memory and queued at once."""
    if not full:
        pytest.skip("a measured scenario: run it with pytest --full")
    config = tmp_path / "mail.toml"
    config.write_text(MAIL_CONFIG)
    seed = await asyncio.to_thread(SeedProc, tmp_path / "seed", "mailbag", config=config)
    try:
        alice_id, bob_id = Identity.generate(), Identity.generate()
        alice = await RawClient.open(seed.url)
        reply = await alice.request({"type": "register", "record": record(alice_id, "alice")})
        assert reply["type"] == "registered"
        bob = await RawClient.open(seed.url)
        reply = await bob.request({"type": "register", "record": record(bob_id, "bob")})
        assert reply["type"] == "registered"
        await bob.close()
        held = 200 * MIB
        item_bytes = 46_000
        count = held // item_bytes
        for start in range(0, count, 100):
            items = [
                sign_mail(
                    alice_id, "bob", "alice", _chat("alice", "bob", box_chars=45_000), now_ms()
                )
                for _ in range(start, min(count, start + 100))
            ]
            replies = await asyncio.gather(
                *(
                    alice.request(
                        {"type": "deposit", "item": i.model_dump(by_alias=True)}, timeout=60
                    )
                    for i in items
                )
            )
            assert all(r["type"] == "deposited" for r in replies), replies[0]
        sent_before = (await http_health(seed))["frames"]["sent"]
        rss0 = rss_kb(seed.p.pid)
        stop = asyncio.Event()
        sampler = asyncio.ensure_future(_sample_peak(seed.p.pid, stop))
        links = []
        for i in range(4):
            ws = await dial(seed.url, sock=await _small_socket(seed.url), max_queue=4)
            challenge = json.loads(await ws.recv())
            await ws.send(json.dumps(hello_frame(Identity.generate(), challenge, name=f"s{i}")))
            links.append(ws)  # and never read again
        # the links are up, each with a sync to send; they stay until their keepalive finds them
        # silent (two intervals of 20 s)
        health = await eventually(
            lambda: _linked(seed, 4, sent_before), timeout=20, what="the stranger links up"
        )
        await asyncio.sleep(30)
        stop.set()
        peak = await sampler
        print(
            f"\n{count} mail items ({held / MIB:.0f} MiB) held, 4 stranger links never reading: "
            f"seed RSS {rss0 / 1024:.0f} -> peak {peak / 1024:.0f} MiB "
            f"({health['frames']['sent'] - sent_before} sync frames queued to them at first)"
        )
        assert peak - rss0 < 150 * 1024, "the seed's memory grew by more than 150 MiB"
        await eventually(lambda: seed.alive, what="the seed alive")
        for ws in links:
            ws.transport.abort()
    finally:
        await asyncio.to_thread(seed.stop)
