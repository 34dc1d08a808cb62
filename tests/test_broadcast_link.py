"""Seed broadcast (r3) on one link with a hand-driven seed: negotiation, the id of an item as
announced, grafts answered once and only for items held, and a stranger's ids within its budget."""

from __future__ import annotations

import os

from node.crypto.keys import Identity
from node.seed.broadcast import PROTOCOL, item_id
from node.seed.replication import MAX_WAITING
from node.wire.protocol import Record, dump
from node.wire.protocol import frame_text as frame

from .helpers import FakeSeed, RawClient, eventually, hello_frame, record


async def tree_link(seed) -> FakeSeed:
    """A stranger seed linked to `seed`, offering the broadcast tree, its sync drained."""
    fake = FakeSeed()
    fake.client = await RawClient.open(seed.url)
    hello = hello_frame(fake.identity, fake.client.challenge, name="mallory")
    fake.welcome = await fake.client.request({**hello, "broadcast": PROTOCOL})
    assert fake.welcome["type"] == "seed_welcome" and fake.welcome["broadcast"] == PROTOCOL
    fake.sync = []
    await fake.drain_sync()
    return fake


async def next_of(client: RawClient, kind: str) -> dict:
    while True:
        msg = await client.next_push()
        if msg["type"] == kind:
            return msg


async def test_ids_frames_on_a_flooded_link_are_refused_and_the_link_lives(seeds):
    seed = await seeds("a")
    fake = FakeSeed()
    welcome = await fake.connect(seed.url)  # an r2 hello: no broadcast offered
    assert welcome["broadcast"] == PROTOCOL
    await fake.client.send_raw(frame({"type": "ihave", "ids": ["AAAAAAAA"]}))
    error = await fake.client.next_unmatched()  # an error with "id": null
    assert (
        error["type"] == "error" and error["code"] == "bad_request" and "tree" in error["message"]
    )
    assert seed.mesh.links[fake.key].tree is False
    await fake.client.send_raw(frame({"type": "prune"}))
    assert (await fake.client.next_unmatched())["code"] == "bad_request"
    assert fake.key in seed.mesh.links
    assert [p["broadcast"] for p in seed.health()["peers"] if p["key"] == fake.key] in (
        [],
        ["flood"],
    )


async def test_a_pruned_link_gets_ids_and_a_graft_is_answered_once_for_items_held(seeds):
    seed = await seeds("a")
    fake = await tree_link(seed)
    await fake.client.send_raw(frame({"type": "prune"}))
    await eventually(
        lambda: seed.mesh.replication.tree.mode(fake.key) == "lazy", what="the link pruned"
    )
    user = await RawClient.open(seed.url)
    rec = record(Identity.generate(), "Sally")
    assert (await user.request({"type": "publish", "records": [rec]}))["accepted"] == 1
    ident = item_id("records", dump(Record.model_validate(dict(rec))))
    ihave = await next_of(fake.client, "ihave")
    assert ihave["ids"] == [ident]
    await fake.client.send_raw(frame({"type": "graft", "ids": [ident, "unknown0"]}))
    answer = await next_of(fake.client, "gossip")
    assert [r["name"] for r in answer["records"]] == ["Sally"]
    assert seed.mesh.replication.tree.mode(fake.key) == "eager"
    # a second graft of the same id gets nothing: the lookup's answer comes first
    await fake.client.send_raw(frame({"type": "graft", "ids": [ident]}))
    reply = await fake.client.request({"type": "lookup", "name": "sally", "hops": 0})
    assert reply["type"] == "found"
    assert all(m["type"] != "gossip" for m in list(fake.client.pushes._queue))


async def test_a_strangers_ids_spend_its_budget(seeds):
    seed = await seeds("a")
    fake = await tree_link(seed)
    burst = seed.config.stranger_link_ids_burst
    frames = int(burst // 256) + 10
    for _ in range(frames):
        ids = [os.urandom(6).hex()[:8] for _ in range(256)]
        await fake.client.send_raw(frame({"type": "ihave", "ids": ids}))
    await eventually(
        lambda: seed.health()["link_budgets"][fake.key]["over_budget"].get("ids", 0) > 0,
        what="ids over the stranger's budget",
    )
    waited = len(seed.mesh.replication.tree.missing)
    print(f"{frames * 256} ids announced by a stranger; {waited} waited for")
    assert waited < frames * 256
    assert fake.key in seed.mesh.links


async def test_presence_waiting_for_its_record_is_bounded_per_link(seeds):
    seed = await seeds("a")
    fake = await tree_link(seed)
    ghosts = [fake.online(Identity.generate(), f"ghost{i}") for i in range(300)]
    for start in (0, 150):  # 150 online items (~400 bytes each) fit a frame
        await fake.gossip(presence=ghosts[start : start + 150])
    # frames on one link are handled in order: the lookup's answer comes after the gossip
    await fake.client.request({"type": "lookup", "name": "ghost1", "hops": 0})
    link = seed.mesh.links[fake.key]
    waiting = sum(len(v) for v in link.feed.waiting.values())
    assert waiting == MAX_WAITING
    assert seed.mesh.dropped.get("not_found", 0) >= 300 - waiting
    assert seed.directory.online_count() == 0
