"""A registered stranger floods a headless user's endpoint with real chats (issue 18, 9): what it
costs the victim (CPU) and how its history grows, against the allowance a stranger gets."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

from node.crypto.boxes import Boxes
from node.crypto.keys import Identity

from ..helpers import RawClient, record
from ..procs import UserProc
from ..test_sender_limits import flood


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(data_dir, peer: str) -> tuple[int, int]:
    db = sqlite3.connect(data_dir / "user.sqlite3")
    try:
        n, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(text)), 0) FROM messages WHERE peer = ?",
            (peer,),
        ).fetchone()
        return n, size
    finally:
        db.close()


async def test_a_stranger_flood_costs_the_victim_its_allowance(tmp_path, seeds, full):
    """Before: 98,250 messages stored and shown in 23 s (~20 MiB/s of history), the victim at
    95% CPU. Now a stranger's messages past its allowance are refused before they are stored."""
    a = await seeds("a")
    victim_dir = tmp_path / "victim"
    victim = await asyncio.to_thread(UserProc, victim_dir, "victim", [a.url])
    try:
        info = await asyncio.to_thread(victim.registered)
        mallory = Identity.generate()
        client = await RawClient.open(a.url)
        await client.request({"type": "register", "record": record(mallory, "mallory")})
        victim_key = (await client.request({"type": "lookup", "name": "victim"}))["record"]["key"]
        n = 100_000 if full else 2_000
        cpu0, t0 = cpu_seconds(victim.p.pid), time.monotonic()
        counts = await flood(info["endpoint"], Boxes(mallory), victim_key, n)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(victim.p.pid) - cpu0
        await client.close()
    finally:
        await asyncio.to_thread(victim.stop)
    messages, size = stored(victim_dir, "mallory")
    print(
        f"\nstranger flood: {n} chats in {elapsed:.1f} s; answers {counts}; victim CPU "
        f"{cpu:.1f} s ({100 * cpu / elapsed:.0f}% of one core); history +{messages} messages, "
        f"+{size} bytes ({size / elapsed:.0f} B/s)"
    )
    # 10 at once, then 1 a second (a bound that holds however slow the machine is)
    assert messages <= min(100, 10 + elapsed + 1)
    assert counts.get("ack", 0) == messages and counts.get("rate_limited", 0) >= n - messages - 1
