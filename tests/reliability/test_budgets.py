"""Measured floods against per-link budgets and quotas, at default settings, printing figures:
what a stranger link's mail flood leaves on the disks of two seeds, what a user's takes flood
leaves there, and how many relayed messages 20 users get across a link of two seeds.

Measurements: run with `pytest --full` (the default suite asserts the same behaviour, at small
sizes, in tests/test_link_budgets.py).
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail, sign_take
from node.wire.protocol import MAX_FRAME
from node.wire.protocol import frame_text as frame

from ..helpers import FakeSeed, RawClient, eventually, record
from ..test_link_budgets import _register
from ..test_trust import _chat

MIB = 1024 * 1024


def _measured(full: bool) -> None:
    if not full:
        pytest.skip("a measured scenario: run it with pytest --full")


def _frames(items: list[dict]) -> list[list[dict]]:
    out: list[list[dict]] = [[]]
    size = 0
    for item in items:
        n = len(frame(item)) + 1
        if out[-1] and size + n > MAX_FRAME - 1024:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return out


def _disk(seed, table: str, column: str) -> int:
    return seed.store.read(f"SELECT COALESCE(SUM(LENGTH({column})), 0) FROM {table}")[0][0]


async def _linked_both_ways(seeds):
    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    await eventually(lambda: a.key in b.mesh.links and b.key in a.mesh.links, what="linked")
    await eventually(lambda: b.trusted(a.key), what="a proven at b")
    return a, b


async def test_a_stranger_links_mail_flood_leaves_little_on_either_seed(seeds, full):
    """Before: through one stranger link, 24,549 items (1,046 MiB) at both seeds in 81 s."""
    _measured(full)
    a, b = await _linked_both_ways(seeds)
    m = FakeSeed()
    await m.connect(a.url, "m")
    n = 200
    people = [Identity.generate() for _ in range(n)]
    names = [f"flood{i}" for i in range(n)]
    for batch in _frames([record(p, name) for p, name in zip(people, names, strict=True)]):
        await m.gossip(records=batch)
    pool = []
    for k in range(3_000):
        i = k % n
        to = names[(i + 1) % n]
        chat = _chat(names[i], to, box_chars=6_000)
        pool.append(sign_mail(people[i], to, names[i], chat, now_ms()).model_dump(by_alias=True))
    frames = _frames(pool)
    seconds, sent = 30.0, 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        for batch in frames:
            await m.gossip(mail=batch)
            sent += sum(len(frame(i)) for i in batch)
        await m.client.request({"type": "lookup", "name": "x", "hops": 0}, timeout=60)
    elapsed = loop.time() - started
    await asyncio.sleep(1.0)  # what a forwarded to b is applied there
    held = {s.name: _disk(s, "mail", "item") for s in (a, b)}
    print(
        f"\nstranger mail flood: {sent / MIB:.0f} MiB sent in {elapsed:.0f} s; on disk "
        + ", ".join(f"{k} {v / MIB:.2f} MiB" for k, v in held.items())
        + f"; drops at a: {a.health()['link_budgets'][m.key]['over_budget']}"
    )
    alice_id = Identity.generate()
    alice = await _register(a.url, alice_id, "alice")
    await _register(b.url, Identity.generate(), "bob")
    item = sign_mail(alice_id, "bob", "alice", _chat("alice", "bob", box_chars=6_000), now_ms())
    reply = await alice.request({"type": "deposit", "item": item.model_dump(by_alias=True)})
    assert reply["type"] == "deposited", reply
    assert max(held.values()) <= 2 * MIB + 16 * 1024 * elapsed


async def test_a_users_takes_flood_leaves_nothing_on_the_disks(seeds, full):
    """Before: one user wrote ~115 MiB of takes to every seed's disk in 20 s (2,562 takes)."""
    _measured(full)
    a, b = await _linked_both_ways(seeds)
    me = Identity.generate()
    client = await _register(a.url, me, "taker")
    seconds, takes, refused = 20.0, 0, 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        ids = [["someone", "chat", base64.b16encode(os.urandom(12)).decode()] for _ in range(256)]
        taken = sign_take(me, "taker", ids, now_ms()).model_dump()
        reply = await client.request({"type": "take", "taken": taken})
        takes += 1
        refused += reply["type"] != "took"
    disk = {s.name: _disk(s, "takes", "taken") for s in (a, b)}
    print(
        f"\ntakes flood: {takes} takes of 256 unknown ids in {seconds:.0f} s ({refused} refused); "
        f"on disk: {disk}"
    )
    assert disk == {"a": 0, "b": 0}


async def test_twenty_users_relay_across_a_link_at_their_own_budgets(seeds, full):
    """Before: all the users relaying between two seeds together got ~130 messages a second (one
    user's budget for the whole link)."""
    _measured(full)
    a, b = await _linked_both_ways(seeds)
    n = 20
    senders = [await _register(a.url, Identity.generate(), f"s{i}") for i in range(n)]
    recipients = [await _register(b.url, Identity.generate(), f"r{i}") for i in range(n)]
    await eventually(
        lambda: all(a.directory.homes(f"r{i}") == [b.key] for i in range(n)), what="homes"
    )
    seconds = 10.0
    loop = asyncio.get_running_loop()
    got = [0] * n
    sent = [0] * n

    async def receive(i: int) -> None:
        while True:
            push = await recipients[i].next_push(timeout=60)
            if push["type"] == "relayed":
                got[i] += 1

    async def send(i: int, until: float) -> None:
        while loop.time() < until:
            chat = _chat(f"s{i}", f"r{i}", box_chars=300).model_dump(by_alias=True)
            reply = await senders[i].request({"type": "relay", "to": f"r{i}", "frame": chat})
            if reply["type"] == "relay_ok":
                sent[i] += 1
            else:
                await asyncio.sleep(0.05)  # rate_limited at its own seed: its budget is spent

    receiving = [asyncio.ensure_future(receive(i)) for i in range(n)]
    started = loop.time()
    await asyncio.gather(*(send(i, started + seconds) for i in range(n)))
    await eventually(lambda: sum(got) >= sum(sent), timeout=30, what="every relay_ok delivered")
    elapsed = loop.time() - started
    for task in receiving:
        task.cancel()
    print(
        f"\n{n} users relayed {sum(sent)} messages across the link in {elapsed:.1f} s: "
        f"{sum(got)} delivered, {sum(got) / elapsed:.0f} a second; "
        f"drops at b: {b.health()['link_budgets'][a.key]['over_budget']}"
    )
    assert sum(got) == sum(sent)


async def test_one_socket_republishing_held_names_costs_the_seed_little(tmp_path, full):
    """Before: one socket resending one frame of names already held used a full seed core, and
    an honest lookup's p50 went from 1 ms to 12-68 ms."""
    import time

    from node.crypto.signing import sign_record

    from ..procs import SeedProc

    _measured(full)
    seed = await asyncio.to_thread(SeedProc, tmp_path / "a", "a")
    try:
        pid = seed.p.pid

        def cpu() -> float:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        owner = Identity.generate()
        seq = now_ms()
        held = [sign_record(owner, f"held{i}", "relay:", seq).model_dump() for i in range(125)]
        older = [sign_record(owner, f"held{i}", "relay:", seq - 1).model_dump() for i in range(125)]
        loader = await RawClient.open(seed.url)
        assert (await loader.request({"type": "publish", "records": held}))["accepted"] == 125
        text = frame({"type": "publish", "id": "p", "records": held + older})
        bystander = await RawClient.open(seed.url)

        async def p50(seconds: float) -> float:
            times = []
            loop = asyncio.get_running_loop()
            until = loop.time() + seconds
            while loop.time() < until:
                t0 = time.perf_counter()
                await bystander.request({"type": "lookup", "name": "held1", "hops": 0})
                times.append(time.perf_counter() - t0)
                await asyncio.sleep(0.01)
            return sorted(times)[len(times) // 2] * 1000

        quiet = await p50(3.0)
        flooder = await RawClient.open(seed.url)
        sent = 0

        async def flood(seconds: float) -> None:
            nonlocal sent
            loop = asyncio.get_running_loop()
            until = loop.time() + seconds
            try:
                while loop.time() < until:
                    await flooder.send_raw(text)
                    sent += 1
                    if sent % 50 == 0:
                        await asyncio.sleep(0)
            except Exception:  # noqa: BLE001 - cut off by the seed: the flood is over
                pass

        cpu0, t0 = cpu(), time.perf_counter()
        flooding = asyncio.ensure_future(flood(10.0))
        loaded = await p50(10.0)
        await flooding
        used = (cpu() - cpu0) / (time.perf_counter() - t0)
        print(
            f"\npublish flood: {sent} frames of 250 held or older records sent in 10 s; seed CPU "
            f"{used:.0%} of a core; bystander lookup p50 {quiet:.2f} -> {loaded:.2f} ms; "
            f"flooder cut: {flooder.ws.close_code}"
        )
        assert used < 0.5
    finally:
        await asyncio.to_thread(seed.stop)
