"""Flood: a client sending as fast as it can is refused, then cut off; 20 well-behaved clients keep
their lookup latency. A peer seed flooding gossip is bounded the same way."""

from __future__ import annotations

import asyncio
import json
import time

from node.identity import Identity
from node.wire import dial, now_ms

from ..helpers import RawClient, record
from .procs import SeedProc


async def bystanders(url: str, count: int, seconds: float) -> list[float]:
    """`count` clients each doing a lookup every 50 ms for `seconds`; every latency in ms."""
    samples: list[float] = []

    async def one(k: int) -> None:
        client = await RawClient.open(url)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            reply = await client.request({"type": "lookup", "name": "target"})
            assert reply["type"] == "found", reply
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
        await client.close()

    await asyncio.gather(*[one(k) for k in range(count)])
    return samples


def p99(samples: list[float]) -> float:
    s = sorted(samples)
    return s[int(len(s) * 0.99)]


async def flood(url: str, seconds: float, stats: dict) -> None:
    """Send lookups without reading, reconnecting whenever the seed cuts us off."""
    deadline = time.monotonic() + seconds
    frame = '{"type":"lookup","id":"x","name":"target"}'
    while time.monotonic() < deadline:
        ws = await dial(url)
        stats["connections"] += 1
        try:
            while time.monotonic() < deadline:
                await ws.send(frame)
                stats["sent"] += 1
        except Exception:
            stats["cut_off"] += 1
        finally:
            if ws.close_code == 1008:
                stats["closed_1008"] += 1
            await ws.close()


async def test_flooding_client_is_refused_and_others_keep_their_latency(tmp_path, full):
    seconds = 20.0 if full else 3.0
    seed = await asyncio.to_thread(SeedProc, tmp_path / "seed", "flood-seed")
    try:
        target = await RawClient.open(seed.url)
        await target.request({"type": "register", "record": record(Identity.generate(), "target")})
        probe = await RawClient.open(seed.url)
        # the flooder is told rate_limited before it is cut off
        for i in range(1000):  # the default burst is 400: then 400 refusals, then the cut
            await probe.send_raw(json.dumps({"type": "lookup", "id": f"p{i}", "name": "target", "hops": 0}))
        await asyncio.wait_for(probe.ws.wait_closed(), 5)
        assert probe.ws.close_code == 1008
        codes = [probe.unmatched.get_nowait().get("code") for _ in range(probe.unmatched.qsize())]
        assert codes.count(None) >= 400 and "rate_limited" in codes  # served within its burst, then told

        quiet = await bystanders(seed.url, 20, seconds)
        stats = {"connections": 0, "sent": 0, "cut_off": 0, "closed_1008": 0}
        flooding = asyncio.ensure_future(flood(seed.url, seconds, stats))
        loud = await bystanders(seed.url, 20, seconds)
        await flooding
        assert seed.alive
        print(f"\nflood: {stats['sent']:,} frames on {stats['connections']} connections, "
              f"{stats['closed_1008']} cut off with 1008; bystander p99 quiet {p99(quiet):.2f} ms, "
              f"under flood {p99(loud):.2f} ms ({len(loud)} lookups)")
        assert stats["closed_1008"] >= 1
        assert p99(loud) <= 2 * p99(quiet) + 2.0, (p99(quiet), p99(loud))
    finally:
        await asyncio.to_thread(seed.stop)


async def test_gossip_flood_from_a_peer_is_bounded(tmp_path):
    config = tmp_path / "seed.toml"
    config.write_text("[seed]\npeer_rate = 50.0\npeer_burst = 100.0\n")
    seed = await asyncio.to_thread(SeedProc, tmp_path / "seed", "gossip-seed", config=config)
    try:
        peer = await RawClient.open(seed.url)
        welcome = await peer.request({"type": "seed_hello", "name": "noisy", "url": "ws://127.0.0.1:1",
                                      "key": Identity.generate().key, "seeds": []})
        assert welcome["type"] == "seed_welcome"
        owner = Identity.generate()
        for i in range(400):
            rec = owner.sign_record("gossiped", "ws://127.0.0.1:9", now_ms() + i)
            await peer.send_raw(json.dumps({"type": "gossip", "records": [rec.model_dump()], "presence": []}))
        await asyncio.wait_for(peer.ws.wait_closed(), 10)
        assert peer.ws.close_code == 1008
        user = await RawClient.open(seed.url)
        found = await user.request({"type": "lookup", "name": "gossiped", "hops": 0})
        assert found["type"] == "found"  # what came within the limit was applied, and the seed serves on
        assert seed.alive
    finally:
        await asyncio.to_thread(seed.stop)
