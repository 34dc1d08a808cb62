"""Sync at size: frames cut by encoded size, a new seed learns a big directory, a returning seed
gets only what changed since it left (with `since`)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from node.crypto.keys import Identity
from node.crypto.signing import sign_record
from node.wire.protocol import MAX_FRAME

from .helpers import FakeSeed, RawClient, eventually
from .procs import SeedProc


async def publish(url: str, count: int, prefix: str) -> None:
    """`count` new signed records handed to a seed with `publish` (no sessions needed), on a
    socket of its own for each batch (a socket's publish budget is 1,000 records at once)."""
    owner = Identity.generate()  # one key for all: the test is about the directory, not keys
    seq = 10**12
    batch: list[dict] = []
    for i in range(count):
        batch.append(sign_record(owner, f"{prefix}{i}", "relay:", seq + i).model_dump())
        if len(batch) == 200 or i == count - 1:
            client = await RawClient.open(url)
            reply = await client.request({"type": "publish", "records": batch}, timeout=60)
            assert reply["accepted"] == len(batch), reply
            await client.close()
            batch = []


def sizes(chunks: list[dict]) -> tuple[int, int]:
    """(records carried, bytes on the wire) of a sync as a FakeSeed received it."""
    records = sum(len(c.get("records", [])) for c in chunks)
    wire = sum(len(json.dumps(c, separators=(",", ":"))) for c in chunks)
    return records, wire


async def test_sync_frames_fit_the_limit_and_resume_from_since(seeds):
    a = await seeds("a")
    await publish(a.url, 3000, "user")
    first = FakeSeed()
    await first.connect(a.url, "listener")
    full_records, full_bytes = sizes(first.sync)
    assert full_records == 3000
    assert max(len(json.dumps(c, separators=(",", ":"))) for c in first.sync) <= MAX_FRAME
    assert len(first.sync) >= 10  # cut into frames by size (a 500-record chunk was ~115 KB)
    since = first.sync[-1]["rev"]
    await first.client.close()

    await publish(a.url, 1000, "later")
    again = FakeSeed(first.identity)  # the same seed (the same key) coming back
    await again.connect(a.url, "listener", since=since)
    records, wire = sizes(again.sync)
    print(
        f"\nsync: full {full_records} records in {full_bytes:,} B; after 1,000 changes {records} records in {wire:,} B"
    )
    assert records == 1000 and {r["name"] for c in again.sync for r in c.get("records", [])} == {
        f"later{i}" for i in range(1000)
    }
    assert wire < full_bytes / 2
    # another epoch (a seed that lost its directory) gets everything again
    stranger = FakeSeed(first.identity)
    await stranger.connect(a.url, "listener", since=["AAAAAAAAAAAAAAAAAAAAAA==", since[1]])
    assert sizes(stranger.sync)[0] == 4000


async def test_a_returning_seed_catches_up_on_changes_only(seeds):
    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    await publish(a.url, 500, "old")
    await eventually(lambda: len(b.directory) == 500, what="b to hold the first 500")
    port, data = b.port, b.config.data_dir
    await b.stop()
    await publish(a.url, 300, "new")
    received_before = a.frames.sent
    b2 = await seeds("b", peers=[a.url], port=port, data_dir=data)
    await eventually(lambda: len(b2.directory) == 800, what="b to catch up")
    assert "new299" in b2.directory and "old0" in b2.directory
    # a handful of frames for 300 records, not the ~20 a full sync of 800 takes
    assert a.frames.sent - received_before < 12


async def test_a_new_seed_learns_a_big_directory(tmp_path, full):
    """The figure (a mesh of 100,000 users learned within 10 s) is asserted with --full."""
    count = 100_000 if full else 5_000
    cfg = tmp_path / "seed.toml"
    cfg.write_text("[seed]\npeer_rate = 1000000000.0\npeer_burst = 1000000000.0\n")
    a = await asyncio.to_thread(SeedProc, tmp_path / "a", "a", config=cfg)
    try:
        await publish(a.url, count, "user")
        t0 = time.perf_counter()
        b = await asyncio.to_thread(SeedProc, tmp_path / "b", "b", 0, (a.url,), cfg)
        try:

            def known() -> int:
                with urllib.request.urlopen(
                    b.url.replace("ws://", "http://") + "/health", timeout=5
                ) as r:
                    return int(json.loads(r.read())["users_known"])

            async def all_known() -> bool:
                return await asyncio.to_thread(known) >= count

            await eventually(all_known, timeout=120, what="all users at the new seed")
            took = time.perf_counter() - t0
            print(f"\nsync: a new seed held all {count:,} users {took:.1f} s after it started")
            if full:
                assert took <= 10.0
        finally:
            await asyncio.to_thread(b.stop)
    finally:
        await asyncio.to_thread(a.stop)
