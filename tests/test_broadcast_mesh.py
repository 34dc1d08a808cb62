"""Seed broadcast (r3) on real seeds: each change received about once on a complete mesh, a line
still carries it to the end, and a seed that floods (r2) still converges with the tree."""

from __future__ import annotations

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail

from .helpers import RawClient, eventually, record
from .test_trust import _chat

MESH = 8
PER_SEED = 6


def linked_to(seed, count: int) -> bool:
    links = seed.mesh.links.values()
    return len(seed.mesh.links) == count and all(link.feed.synced for link in links)


async def complete_mesh(seeds, size: int, prefix: str = "s", **kw) -> list:
    first = await seeds(f"{prefix}0", **kw)
    rest = [await seeds(f"{prefix}{i}", peers=[first.url], **kw) for i in range(1, size)]
    mesh = [first, *rest]
    await eventually(
        lambda: all(linked_to(s, size - 1) and s.synced_once for s in mesh),
        timeout=30,
        what="a complete, synced mesh",
    )
    return mesh


async def publish_names(mesh: list, per_seed: int, tag: str = "u") -> list[str]:
    """Each seed gets `per_seed` new names published by a socket of its own, seed after seed."""
    names = []
    clients = [await RawClient.open(s.url) for s in mesh]
    try:
        for round_ in range(per_seed):
            for i, client in enumerate(clients):
                name = f"{tag}{i}x{round_}"
                reply = await client.request(
                    {"type": "publish", "records": [record(Identity.generate(), name)]}
                )
                assert reply["type"] == "published" and reply["accepted"] == 1, reply
                names.append(name)
    finally:
        for client in clients:
            await client.close()
    return names


def holds_all(mesh: list, names: list[str]) -> bool:
    return all(s.directory.get(n) is not None for s in mesh for n in names)


def received(seed) -> tuple[int, int, int, int]:
    """(items received whole, duplicates, gossip bytes, ids bytes) over all of a seed's peers."""
    peers = seed.health()["peers"]
    return (
        sum(p["received"] for p in peers),
        sum(p["duplicates"] for p in peers),
        sum(p["gossip_bytes"] for p in peers),
        sum(p["ids_bytes"] for p in peers),
    )


async def test_complete_mesh_of_eight_receives_each_change_about_once(seeds):
    mesh = await complete_mesh(seeds, MESH)
    # the tree forms on the first change: every link is eager until a duplicate prunes it
    first = await publish_names(mesh[:1], 1, tag="w")
    await eventually(lambda: holds_all(mesh, first), what="the first change everywhere")
    before = {s.name: received(s) for s in mesh}
    names = await publish_names(mesh, PER_SEED)
    await eventually(lambda: holds_all(mesh, names), timeout=30, what="every name everywhere")
    item_bytes = id_bytes = 0
    for seed in mesh:
        got, dups, gossip_bytes, ids_bytes = (
            now - then for now, then in zip(received(seed), before[seed.name], strict=True)
        )
        others = len(names) - PER_SEED  # the changes this seed did not make itself
        print(f"{seed.name}: received {got} of {others} changes, {dups} duplicates")
        assert got >= others
        assert got / others <= 1.2, f"{seed.name} received {got} items for {others} changes"
        assert dups <= 0.2 * others
        item_bytes += gossip_bytes
        id_bytes += ids_bytes
    print(f"ids: {id_bytes} of {item_bytes + id_bytes} bytes")
    assert id_bytes <= 0.10 * (item_bytes + id_bytes)
    modes = [p["broadcast"] for s in mesh for p in s.health()["peers"]]
    assert "lazy" in modes and "flood" not in modes, modes

    # mail items travel the same tree: alice at s1 leaves mail for bob
    alice_id = Identity.generate()
    alice = await RawClient.open(mesh[1].url)
    reply = await alice.request({"type": "register", "record": record(alice_id, "alice")})
    assert reply["type"] == "registered"
    (bob,) = await publish_names(mesh[2:3], 1, tag="bob")
    await eventually(lambda: holds_all(mesh, ["alice", bob]), what="alice and bob known")
    await eventually(
        lambda: all(s.directory.online_count() >= 1 for s in mesh), what="alice's presence"
    )
    before = {s.name: received(s) for s in mesh}
    mails = 8
    for _ in range(mails):
        item = sign_mail(alice_id, bob, "alice", _chat("alice", bob), now_ms())
        reply = await alice.request({"type": "deposit", "item": item.model_dump(by_alias=True)})
        assert reply["type"] == "deposited", reply
    await alice.close()
    await eventually(
        lambda: all(s.mailbox.held_count() == mails for s in mesh), what="the mail everywhere"
    )
    for seed in mesh[2:]:
        got = received(seed)[0] - before[seed.name][0]
        print(f"{seed.name}: received {got} items for {mails} mail items")
        assert mails <= got <= 1.2 * mails + 1  # + alice's offline presence, when it came


async def test_a_line_of_four_carries_a_change_to_the_end(seeds):
    # no learned URLs: each seed links only to the ones it is configured with
    a = await seeds("a", max_seed_urls=0)
    b = await seeds("b", peers=[a.url], max_seed_urls=0)
    c = await seeds("c", peers=[b.url], max_seed_urls=0)
    d = await seeds("d", peers=[c.url], max_seed_urls=0)
    line = [a, b, c, d]
    await eventually(
        lambda: (
            all(s.synced_once for s in line)
            and a.mesh.peer_names() == {"b"}
            and b.mesh.peer_names() == {"a", "c"}
            and c.mesh.peer_names() == {"b", "d"}
            and d.mesh.peer_names() == {"c"}
        ),
        timeout=20,
        what="a line a-b-c-d",
    )
    names = await publish_names([a, d], 3)
    await eventually(lambda: holds_all(line, names), timeout=20, what="the names at both ends")
    assert all(p["broadcast"] == "eager" for p in b.health()["peers"] if p["up"])


async def test_a_flooding_seed_in_the_mesh_still_converges(seeds):
    first = await seeds("t0")
    old = await seeds("r2", peers=[first.url], broadcast_tree=False)
    rest = [await seeds(f"t{i}", peers=[first.url]) for i in range(1, 4)]
    mesh = [first, old, *rest]
    await eventually(
        lambda: all(linked_to(s, 4) and s.synced_once for s in mesh),
        timeout=30,
        what="a complete mesh",
    )
    names = await publish_names(mesh, 3)
    await eventually(lambda: holds_all(mesh, names), timeout=20, what="every name everywhere")
    assert {p["broadcast"] for p in first.health()["peers"] if p["name"] == "r2"} == {"flood"}
    assert {p["broadcast"] for p in old.health()["peers"]} == {"flood"}
    assert all(link.tree is False for link in old.mesh.links.values())


async def test_the_tree_is_repaired_when_its_hub_dies(seeds):
    mesh = await complete_mesh(seeds, 5, prefix="h")
    first = await publish_names(mesh[:1], 1, tag="w")
    await eventually(lambda: holds_all(mesh, first), what="the first change everywhere")

    def eager(s) -> int:
        return [p["broadcast"] for p in s.health()["peers"]].count("eager")

    # the first change floods, and each seed prunes the links that brought it twice: what stays
    # eager is a tree, most often a star around the first seed (arrival order decides)
    await eventually(lambda: sum(eager(s) for s in mesh) <= 2 * (len(mesh) - 1), what="a tree")
    hub = max(mesh, key=eager)  # an inner node of the tree: its death splits it
    assert eager(hub) >= 2
    await hub.stop()
    rest = [s for s in mesh if s is not hub]
    await eventually(lambda: all(linked_to(s, 3) for s in rest), what="the hub's links down")
    names = await publish_names(rest, 2, tag="after")
    await eventually(lambda: holds_all(rest, names), timeout=20, what="every name everywhere")
