"""The seed mesh: replication, learning peers, surviving a dead seed, catching up, refusing forgeries."""

from __future__ import annotations

import asyncio

from node.crypto.keys import Identity
from node.wire.protocol import frame_text as frame

from .helpers import FakeSeed, RawClient, eventually, record


async def resolvable(seed, name: str) -> bool:
    c = await RawClient.open(seed.url)
    try:
        reply = await c.request({"type": "lookup", "name": name, "hops": 0})
        return reply["type"] == "found"
    finally:
        await c.close()


def linked(seed, *names: str) -> bool:
    return all(n in seed.mesh.peer_names() for n in names)


async def test_line_of_three_converges_survives_the_middle_and_catches_up(seeds):
    b = await seeds("b")
    a = await seeds("a", peers=[b.url])
    c = await seeds("c", peers=[b.url])
    b_port = b.port
    # A learns C through B (and C learns A): the mesh becomes complete
    await eventually(
        lambda: linked(a, "b", "c") and linked(c, "a", "b") and linked(b, "a", "c"),
        what="a full mesh",
    )

    user = await RawClient.open(a.url)
    assert (
        await user.request({"type": "register", "record": record(Identity.generate(), "Sally")})
    )["type"] == "registered"
    await eventually(lambda: resolvable(c, "sally"), what="Sally at C")
    await eventually(lambda: resolvable(b, "sally"), what="Sally at B")

    # B dies: A and C keep talking directly
    await b.stop()
    await eventually(
        lambda: "b" not in a.mesh.peer_names() and "b" not in c.mesh.peer_names(),
        what="B's links down",
    )
    bob = await RawClient.open(c.url)
    assert (await bob.request({"type": "register", "record": record(Identity.generate(), "Bob")}))[
        "type"
    ] == "registered"
    await eventually(lambda: resolvable(a, "bob"), what="Bob at A with B down")

    # B comes back on its port with its data dir and catches up on what it missed
    b2 = await seeds("b", port=b_port)
    assert await resolvable(b2, "sally"), "B lost its own directory across the restart"
    await eventually(lambda: resolvable(b2, "bob"), what="B to catch up on Bob")
    await eventually(lambda: linked(b2, "a", "c"), what="B relinked to both")
    # and B sees the users that are online elsewhere: its watcher is told once A's online set
    # arrives (the links come up before their syncs are done, so the first answer may be offline)
    watcher = await RawClient.open(b2.url)
    await watcher.request({"type": "watch", "names": ["sally"]})
    push = await watcher.next_push()
    if push["online"] is not True:
        push = await watcher.next_push(timeout=10)
    assert push["online"] is True and push["seed"] == "a"


async def test_presence_is_pushed_across_the_mesh(seeds):
    a = await seeds("a")
    c = await seeds("c", peers=[a.url])
    await eventually(lambda: linked(c, "a") and linked(a, "c"), what="link")
    watcher = await RawClient.open(c.url)
    await watcher.request({"type": "watch", "names": ["sally"]})
    assert (await watcher.next_push())["online"] is False
    sally = await RawClient.open(a.url)
    await sally.request({"type": "register", "record": record(Identity.generate(), "Sally")})
    push = await watcher.next_push()
    assert push["online"] is True and push["seed"] == "a" and push["name"] == "Sally"
    found = await watcher.request({"type": "lookup", "name": "sally", "hops": 0})
    assert found["online"] is True and found["seed"] == "a"
    await sally.close()
    push = await watcher.next_push()
    assert push["online"] is False and push["seed"] is None


async def test_presence_of_an_unreachable_home_seed_expires(seeds):
    a = await seeds("a", unreachable_after=0.3)
    b = await seeds("b", peers=[a.url], unreachable_after=0.3)
    # both ends linked and synced first: under load the link's first seconds (a second dial,
    # the duplicate closed, the tree settling) can outlast the 0.3 s this test gives, and B
    # refuses a new name until its first sync is done
    await eventually(
        lambda: linked(a, "b") and linked(b, "a") and not a.mesh.syncing() and b.synced_once,
        what="link",
        timeout=30,
    )
    sally = await RawClient.open(b.url)
    reply = await sally.request(
        {"type": "register", "record": record(Identity.generate(), "Sally")}
    )
    assert reply["type"] == "registered", reply
    watcher = await RawClient.open(a.url)
    await watcher.request({"type": "watch", "names": ["sally"]})
    assert await eventually(lambda: a.directory.is_online("sally"), what="online at A", timeout=30)
    await b.mesh.stop()  # B falls silent towards A but keeps its users: A must not trust it forever
    pushes = [await watcher.next_push()]
    while pushes[-1]["online"]:
        pushes.append(await watcher.next_push())
    assert pushes[-1]["online"] is False


async def test_forged_and_hijacking_gossip_records_are_dropped(seeds):
    a = await seeds("a", claim_window=0)  # Sally's name is settled at once: no same-moment claims
    owner = Identity.generate()
    user = await RawClient.open(a.url)
    genuine = record(owner, "Sally", "ws://127.0.0.1:7001")
    await user.request({"type": "register", "record": genuine})

    fake = FakeSeed()
    await fake.connect(a.url)
    forged = {**record(owner, "Victim"), "endpoint": "ws://evil:1"}  # bits changed after signing
    hijack = record(Identity.generate(), "sally", "ws://evil:2", seq=genuine["seq"] + 1)
    await fake.gossip(records=[forged, hijack])
    # a lookup on the same link is answered after the gossip was processed
    reply = await fake.client.request({"type": "lookup", "name": "sally", "hops": 0})
    assert reply["record"] == genuine
    reply = await fake.client.request({"type": "lookup", "name": "victim", "hops": 0})
    assert reply["code"] == "not_found"
    assert a.mesh.dropped == {"bad_signature": 1, "name_taken": 1}
    # the same goes for records in a sync
    await fake.sync_done(records=[forged])
    reply = await fake.client.request({"type": "lookup", "name": "victim", "hops": 0})
    assert reply["code"] == "not_found" and a.mesh.dropped["bad_signature"] == 2


async def test_gossip_forwards_only_changes(seeds):
    a = await seeds("a")
    fake = FakeSeed()
    await fake.connect(a.url, "f1")
    other = FakeSeed()
    await other.connect(a.url, "f2")
    rec = record(Identity.generate(), "Zed")
    await fake.gossip(records=[rec])
    got = await other.client.next_push()
    assert got["type"] == "gossip" and got["records"] == [rec]
    # the same record again changes nothing, so nothing is forwarded: the next push is the new one
    await fake.gossip(records=[rec])
    rec2 = record(Identity.generate(), "Yan")
    await fake.gossip(records=[rec2])
    got = await other.client.next_push()
    assert got["records"] == [rec2]


async def test_lookup_asks_peers_with_hops_0_and_first_found_wins(seeds):
    a = await seeds("a", lookup_timeout=0.5)
    fake = FakeSeed()
    await fake.connect(a.url)
    ghost = record(Identity.generate(), "Ghost")
    user = await RawClient.open(a.url)

    lookup_task = asyncio.ensure_future(user.request({"type": "lookup", "name": "ghost"}))
    asked = await fake.client.next_unmatched()
    assert asked["type"] == "lookup" and asked["hops"] == 0 and asked["name"] == "ghost"
    await fake.client.send_raw(
        frame(
            {
                "type": "found",
                "id": asked["id"],
                "record": ghost,
                "online": False,
                "seed": None,
                "last_seen": None,
            }
        )
    )
    reply = await lookup_task
    assert reply["type"] == "found" and reply["record"] == ghost

    # hops 0 from a user: this seed's own directory only, no asking
    reply = await user.request({"type": "lookup", "name": "nobody", "hops": 0})
    assert reply["code"] == "not_found"
    assert fake.client.unmatched.empty()
    # a silent peer: not_found after the timeout
    reply = await user.request({"type": "lookup", "name": "nobody"})
    assert reply["code"] == "not_found"
    assert (await fake.client.next_unmatched())["name"] == "nobody"
    # once every peer's sync is done, a miss is not_found at once: nobody is asked
    await fake.sync_done()
    await eventually(lambda: not a.mesh.syncing(), what="the fake's sync to count as done")
    reply = await user.request({"type": "lookup", "name": "stillnobody"})
    assert reply["code"] == "not_found"
    assert fake.client.unmatched.empty()


async def test_a_lookup_waits_for_a_record_a_peer_sent_that_is_still_being_checked(
    seeds, monkeypatch
):
    """A name registered at b a moment ago: its record has reached a and is being verified on a
    worker thread when a user asks a for it. The answer waits for the check instead of saying
    `not_found` (which failed the user's first message to a friend who had just come online)."""
    import threading

    import node.seed.replication as replication_module

    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    await eventually(lambda: linked(a, "b") and linked(b, "a"), what="the link")
    release = threading.Event()
    check = replication_module.check_signatures

    def slow_check(records, auths):
        release.wait(10)  # a worker thread: the event loops go on
        return check(records, auths)

    monkeypatch.setattr(replication_module, "check_signatures", slow_check)
    bob = await RawClient.open(b.url)
    reply = await bob.request({"type": "register", "record": record(Identity.generate(), "Bob")})
    assert reply["type"] == "registered"
    await eventually(lambda: a.mesh.arriving("bob"), what="bob's record at a, being checked")
    asker = await RawClient.open(a.url)
    before = a.frames.received
    answer = asyncio.ensure_future(asker.request({"type": "lookup", "name": "bob", "hops": 1}))
    await eventually(lambda: a.frames.received > before, what="the lookup at a")
    release.set()
    found = await answer
    assert found["type"] == "found" and found["record"]["name"] == "Bob"


async def test_a_bad_record_kept_in_flight_does_not_hold_back_the_answer(seeds, monkeypatch):
    """A stranger seed keeps a forged record for bob being checked; bob's real record arrives
    from b and is applied: the waiting lookup is answered then, not when the stranger's check
    ends (a stranger must not be able to slow every lookup of a name to the timeout)."""
    import threading

    import node.seed.replication as replication_module

    a = await seeds("a", lookup_timeout=30)  # far beyond the client's 5 s: a wait shows as failure
    b = await seeds("b", peers=[a.url])
    await eventually(lambda: linked(a, "b") and linked(b, "a"), what="the link")
    stranger = FakeSeed()
    await stranger.connect(a.url)
    await stranger.sync_done()
    forged_key = Identity.generate().key
    hold_forged, hold_real = threading.Event(), threading.Event()
    check = replication_module.check_signatures

    def slow_check(records, auths):
        if any(r.key == forged_key for r in records):
            hold_forged.wait(30)
        elif any(r.name == "Bob" for r in records):
            hold_real.wait(30)
        return check(records, auths)

    monkeypatch.setattr(replication_module, "check_signatures", slow_check)
    try:
        await stranger.gossip(records=[{**record(Identity.generate(), "Bob"), "key": forged_key}])
        await eventually(lambda: a.mesh.arriving("bob"), what="the forged record in flight")
        owner = Identity.generate()
        bob = await RawClient.open(b.url)
        assert (await bob.request({"type": "register", "record": record(owner, "Bob")}))[
            "type"
        ] == "registered"
        await eventually(
            lambda: a.mesh.links[b.key].feed.arriving["bob"] > 0, what="the real record in flight"
        )
        asker = await RawClient.open(a.url)
        before = a.frames.received
        answer = asyncio.ensure_future(asker.request({"type": "lookup", "name": "bob", "hops": 1}))
        await eventually(lambda: a.frames.received > before, what="the lookup at a")
        hold_real.set()
        found = await answer
        assert found["type"] == "found" and found["record"]["key"] == owner.key
    finally:
        hold_forged.set()
        hold_real.set()
