"""A fleet: 3 seeds with no state of their own on one 3-node NATS JetStream cluster (skipped,
saying why, where no nats-server is installed)."""

from __future__ import annotations

import asyncio
import os

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail

from .helpers import RawClient, eventually, record
from .test_trust import _chat


def _fleet_url(cluster) -> str:
    """The cluster, under a fleet name of this test's own."""
    return f"{cluster.storage_url}/f{os.urandom(4).hex()}"


async def _user(seed, name: str, identity: Identity | None = None) -> tuple[RawClient, Identity]:
    identity = identity or Identity.generate()
    client = await RawClient.open(seed.url)
    reply = await client.request({"type": "register", "record": record(identity, name)}, 15)
    assert reply["type"] == "registered", reply
    return client, identity


async def test_fleet_seeds_share_records_mail_and_relays(seeds, nats_cluster):
    url = _fleet_url(nats_cluster)
    a, b, c = [await seeds(n, storage=url) for n in ("fa", "fb", "fc")]
    assert a.fleet is not None and not a.config.peers  # no mesh inside the fleet
    alice, alice_id = await _user(a, "alice")
    # registered at a: found at b at once (read from the bucket, no gossip)
    found = await (await RawClient.open(b.url)).request({"type": "lookup", "name": "Alice"}, 15)
    assert found["type"] == "found" and found["record"]["key"] == alice_id.key
    # mail deposited at a for bob (registered at c, now offline) is handed over at b
    bob_c, bob_id = await _user(c, "bob")
    await bob_c.close()
    chat = _chat("alice", "bob")
    item = sign_mail(alice_id, "bob", "alice", chat, now_ms()).model_dump(by_alias=True)
    assert (await alice.request({"type": "deposit", "item": item}, 15))["type"] == "deposited"
    bob, _ = await _user(b, "bob", bob_id)
    mail = await bob.next_push(15)
    assert mail["type"] == "mail" and [i["frame"]["id"] for i in mail["items"]] == [chat.id]
    # alice, online at a, shows online in a lookup at c (her presence went through the bucket)
    await eventually(lambda: a.key in c.directory.homes("alice"), timeout=15, what="alice at c")
    seen = await (await RawClient.open(c.url)).request({"type": "lookup", "name": "alice"}, 15)
    assert seen["online"] is True and seen["seed"] == "fa", seen
    # a relay from alice at a reaches bob at b (b's presence reached a through the bucket)
    await eventually(
        lambda: b.key in a.directory.homes("bob"), timeout=15, what="bob at b, seen at a"
    )
    relayed = _chat("alice", "bob")
    reply = await alice.request(
        {"type": "relay", "to": "bob", "frame": relayed.model_dump(by_alias=True)}, 15
    )
    assert reply["type"] == "relay_ok", reply
    pushed = await bob.next_push(15)
    assert pushed["type"] == "relayed" and pushed["frame"]["id"] == relayed.id
    # another key cannot take alice's name at any seed of the fleet
    thief = await RawClient.open(c.url)
    taken = await thief.request(
        {"type": "register", "record": record(Identity.generate(), "alice")}, 15
    )
    assert taken["type"] == "error" and taken["code"] == "name_taken"
    for client in (alice, bob, thief):
        await client.close()


async def test_fleet_links_to_an_outside_seed(seeds, nats_cluster):
    """One seed of the fleet links to an outside seed with the seed protocol: a name registered
    at another seed of the fleet reaches the outside seed, and one registered outside is
    written to the fleet's bucket once and resolves at every seed of the fleet."""
    url = _fleet_url(nats_cluster)
    outside = await seeds("out")
    a = await seeds("la", storage=url, peers=[outside.url])
    b = await seeds("lb", storage=url)
    assert a.health()["storage"] == "nats" and outside.health()["storage"] == "sqlite"
    carol, carol_id = await _user(b, "carol")
    await eventually(lambda: "carol" in outside.directory.entries, timeout=15, what="carol outside")
    assert outside.directory.key_of("carol") == carol_id.key
    dave, dave_id = await _user(outside, "dave")
    # b has no link outside: it learns dave from the bucket, where a wrote him
    await eventually(lambda: "dave" in b.directory.entries, timeout=15, what="dave at b")
    found = await (await RawClient.open(b.url)).request({"type": "lookup", "name": "dave"}, 15)
    assert found["type"] == "found" and found["record"]["key"] == dave_id.key
    history = await a.fleet.storage.records.history("dave")
    assert len(history) == 1  # written once, whichever fleet seed heard it
    for client in (carol, dave):
        await client.close()


async def test_a_silent_fleet_seed_counts_offline(seeds, nats_cluster, monkeypatch):
    """A fleet seed that stops without a word (its users' presence never turned offline) is
    silent: 30 s after its last heartbeat its users count offline at the others."""
    from node.seed import fleet as fleet_module
    from node.seed.storage.base import SILENT_MS

    url = _fleet_url(nats_cluster)
    a, c = await seeds("sa", storage=url), await seeds("sc", storage=url)
    bob, _ = await _user(c, "bob")
    await eventually(lambda: c.key in a.directory.homes("bob"), timeout=15, what="bob at c, at a")
    for task in list(c.tasks.running):  # c stays up, but its heartbeats stop
        if task.get_name() == "fleet heartbeats":
            task.cancel()
    later = fleet_module.now_ms() + SILENT_MS + 1_000
    monkeypatch.setattr(fleet_module, "now_ms", lambda: later)
    await a.fleet._beat()
    assert c.key not in a.fleet.members
    assert not a.directory.is_online("bob")
    found = await (await RawClient.open(a.url)).request({"type": "lookup", "name": "bob"}, 15)
    assert found["online"] is False, found
    await bob.close()


async def test_a_write_that_slipped_past_compare_and_set_is_settled(seeds, nats_cluster):
    """A stale record written to the bucket without compare-and-set (as a leader change may let
    through) does not stand: the fleet puts back what the name's history converges on."""
    from node.crypto.signing import sign_record

    url = _fleet_url(nats_cluster)
    a = await seeds("ca", storage=url)
    alice_id = Identity.generate()
    client = await RawClient.open(a.url)
    newer = record(alice_id, "alice", seq=now_ms())
    assert (await client.request({"type": "register", "record": newer}, 15))["type"] == "registered"
    records = a.fleet.storage.records
    stale = sign_record(alice_id, "alice", "ws://127.0.0.1:9", newer["seq"] - 1000)
    raw = b'{"r":%s,"renewed":1,"claimed":1}' % stale.model_dump_json().encode()
    await records.kv.put(_key("alice"), raw)  # no expected revision: slips past

    async def held_seq() -> int:
        return (await records.get("alice")).record.seq

    deadline = asyncio.get_running_loop().time() + 15
    while await held_seq() != newer["seq"]:
        assert asyncio.get_running_loop().time() < deadline, "the stale write stood"
        await asyncio.sleep(0.05)
    assert len(await records.history("alice")) == 3  # the good, the slipped, the settled
    await client.close()


def _key(name: str) -> str:
    from node.seed.storage.nats import token

    return token(name)


async def test_renewals_in_flight_at_once_are_all_acknowledged(seeds, nats_cluster):
    """A user that renews its record several times without waiting for the answers: the
    renewals reach the bucket in any order, and one its owner's later record superseded on the
    way is no failure (it was answered `internal` before)."""
    url = _fleet_url(nats_cluster)
    a, b = [await seeds(n, storage=url) for n in ("ra", "rb")]
    alice, identity = await _user(a, "alice")
    auth = alice.auth(identity, "alice")
    base = now_ms() + 1_000
    renewals = [
        {"type": "register", "record": record(identity, "alice", seq=base + n), "auth": auth}
        for n in range(1, 17)
    ]
    replies = await asyncio.gather(*(alice.request(r, 15) for r in renewals))
    assert [r["type"] for r in replies] == ["registered"] * len(renewals), replies
    lookup = await RawClient.open(b.url)

    async def latest() -> bool:
        found = await lookup.request({"type": "lookup", "name": "alice"}, 15)
        return found["record"]["seq"] == base + len(renewals)

    await eventually(latest, timeout=15, what="the last renewal at b")
    for client in (alice, lookup):
        await client.close()


async def test_one_seed_of_the_fleet_expires_its_mail(seeds, nats_cluster):
    """The fleet's mail is expired by one seed, the one of smallest key heard from (a scan of
    the stream a minute per fleet, not per seed), and by another when that one falls silent."""
    a = await seeds("ea", storage=_fleet_url(nats_cluster))
    assert a.fleet.sweeps()  # alone
    smaller = "!" * len(a.key)  # below every base64 character
    a.fleet.members.add(smaller)  # a seed of smaller key heard from
    assert not a.fleet.sweeps()
    a.fleet.members.discard(smaller)  # its heartbeats stopped
    assert a.fleet.sweeps()
