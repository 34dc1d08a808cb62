"""Connection exhaustion and soak: thousands of idle sockets, and a minute of mixed traffic."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time

from node.crypto.keys import Identity
from node.user.events import MessageReceived, MessageState, NameRegistered

from ..helpers import RawClient, eventually, next_event, record
from ..procs import SeedProc, rss_kb


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_thousands_of_idle_connections_and_new_users_are_still_served(tmp_path, full):
    count = 2000 if full else 500
    seed = await asyncio.to_thread(SeedProc, tmp_path / "seed", "idle-seed")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.bench.worker",
        "idle",
        seed.url,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        rss0 = rss_kb(seed.p.pid)
        line = await asyncio.wait_for(holder.stdout.readline(), 120)
        assert b'"open"' in line
        await eventually(
            lambda: open_files(seed.p.pid) >= count, timeout=30, what="the seed to hold them"
        )
        rss1 = rss_kb(seed.p.pid)
        # a new user still registers and resolves at once
        t0 = time.perf_counter()
        newcomer = await RawClient.open(seed.url)
        reply = await newcomer.request(
            {"type": "register", "record": record(Identity.generate(), "late")}
        )
        assert reply["type"] == "registered"
        found = await newcomer.request({"type": "lookup", "name": "late"})
        assert found["online"] is True
        took = (time.perf_counter() - t0) * 1000
        print(
            f"\nidle connections: {count} held, seed RSS {rss0} -> {rss1} KB "
            f"({(rss1 - rss0) * 1024 / count:,.0f} B each), a new user served in {took:.1f} ms"
        )
        assert seed.alive
    finally:
        holder.stdin.close()
        await holder.wait()
        await asyncio.to_thread(seed.stop)


async def test_soak_mixed_traffic_loses_nothing_and_stays_flat(tmp_path, users, full):
    count, seconds = (50, 60.0) if full else (8, 4.0)
    seeds = [await asyncio.to_thread(SeedProc, tmp_path / "s0", "s0")]
    seeds.append(await asyncio.to_thread(SeedProc, tmp_path / "s1", "s1", 0, (seeds[0].url,)))
    urls = [s.url for s in seeds]
    nodes = []
    for i in range(count):
        node, ev = await users(f"soak{i}", urls[i % 2 :] + urls[: i % 2])
        nodes.append((node, ev))
    for _, ev in nodes:
        await next_event(ev, lambda e: isinstance(e, NameRegistered), timeout=20)
    names = [n.name for n, _ in nodes]
    # each user chats with one partner, so the set of links is settled after warm-up and any growth
    # after it is a leak, not new conversations
    partner = {names[i]: names[(i + 1) % count] for i in range(count)}
    for node, _ in nodes:
        node.add_contact(partner[node.name])
    by_name = {n.name: n for n, _ in nodes}
    for node, _ in nodes:  # and whoever writes to it is a contact too, not a stranger held back
        by_name[partner[node.name]].add_contact(node.name)

    def sample() -> dict:
        return {
            "rss": [rss_kb(s.p.pid) for s in seeds],
            "fds": [open_files(s.p.pid) for s in seeds],
            "tasks": len(asyncio.all_tasks()),
        }

    sent: dict[str, tuple[str, str]] = {}
    stop = asyncio.Event()

    async def user_life(node) -> None:
        raw = await RawClient.open(random.choice(urls))
        n = 0
        while not stop.is_set():
            action = random.random()
            if action < 0.6:
                to = partner[node.name]
                sent[await node.send(to, f"{node.name} {n}")] = (node.name, to)
                n += 1
            elif action < 0.8:
                assert (await raw.request({"type": "lookup", "name": random.choice(names)}))[
                    "type"
                ] == "found"
            elif action < 0.9:
                await raw.request({"type": "watch", "names": [random.choice(names)]})
            else:
                await node.seed.reregister()  # a fresh record, as after an address change
            await asyncio.sleep(random.uniform(0.05, 0.3))
        await raw.close()

    lives = [asyncio.ensure_future(user_life(node)) for node, _ in nodes]
    await asyncio.sleep(min(5.0, seconds / 4))  # warm-up: a time span, not an event
    start = sample()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*lives)
    end = sample()

    delivered, received = set(), set()

    async def drained() -> bool:
        for _, ev in nodes:
            while not ev.queue.empty():
                e = ev.queue.get_nowait()
                if isinstance(e, MessageState) and e.state == "delivered":
                    delivered.add(e.id)
                elif isinstance(e, MessageReceived):
                    received.add(e.id)
        return all(node.pending_count() == 0 for node, _ in nodes)

    await eventually(drained, timeout=60, what="every outbox to drain")
    assert delivered == set(sent), (
        f"{len(set(sent) - delivered)} of {len(sent)} messages not delivered"
    )
    assert received == set(sent), "a delivered message was not shown exactly once"
    print(
        f"\nsoak: {count} users, {seconds:.0f}s, {len(sent)} messages delivered; seed RSS {start['rss']} -> "
        f"{end['rss']} KB, fds {start['fds']} -> {end['fds']}, client tasks {start['tasks']} -> {end['tasks']}"
    )
    if full:  # growth bounds are measurements: the default run only prints them
        for before, after in zip(start["rss"], end["rss"], strict=True):
            assert after - before < max(0.25 * before, 10_000), "seed memory kept growing"
        for before, after in zip(start["fds"], end["fds"], strict=True):
            assert after - before <= 4, "seed open files kept growing"
        assert end["tasks"] <= start["tasks"] + 5, "tasks kept growing"
    for seed in seeds:
        await asyncio.to_thread(seed.stop)
