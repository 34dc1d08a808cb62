"""Acknowledged registrations survive SIGKILL; registrations arriving together commit together."""

from __future__ import annotations

import asyncio

from node.crypto.keys import Identity

from .helpers import RawClient, record
from .procs import SeedProc


async def test_every_acknowledged_record_survives_sigkill(tmp_path):
    seed = await asyncio.to_thread(SeedProc, tmp_path / "k", "k")
    # one registration per socket: a socket holds one name
    names = [f"user{i:03d}" for i in range(150)]
    clients = [await RawClient.open(seed.url) for _ in names]
    replies = await asyncio.gather(
        *[
            c.request({"type": "register", "record": record(Identity.generate(), n)})
            for c, n in zip(clients, names, strict=True)
        ]
    )
    assert all(r["type"] == "registered" for r in replies)
    await asyncio.to_thread(seed.kill)  # SIGKILL, right after the last acknowledgement

    again = await asyncio.to_thread(SeedProc, tmp_path / "k", "k")
    probe = await RawClient.open(again.url)
    found = await asyncio.gather(
        *[probe.request({"type": "lookup", "name": n, "hops": 0}) for n in names]
    )
    missing = [n for n, f in zip(names, found, strict=True) if f["type"] != "found"]
    assert not missing, f"acknowledged but lost: {missing[:5]}"
    # nobody is online after a restart until they register again
    assert all(f["online"] is False for f in found)
    assert await asyncio.to_thread(again.stop) == 0  # SIGTERM


async def test_registrations_that_arrive_together_commit_together(seeds):
    seed = await seeds("g")
    clients = [await RawClient.open(seed.url) for _ in range(100)]
    before = seed.store.commits
    replies = await asyncio.gather(
        *[
            c.request({"type": "register", "record": record(Identity.generate(), f"g{i}")})
            for i, c in enumerate(clients)
        ]
    )
    assert all(r["type"] == "registered" for r in replies)
    commits = seed.store.commits - before
    assert 1 <= commits < 50, f"{commits} commits for 100 registrations: no group commit"
