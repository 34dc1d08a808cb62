"""Replication's rules with the time passed in: presence waiting for its record, the sync point,
and which peer syncs still count; no sockets, no clocks read."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from node.clock import Now
from node.config import SeedConfig
from node.crypto.keys import Identity
from node.crypto.signing import sign_record
from node.seed.replication import PRESENCE_WAIT, Checked, Feed, Incoming, Merged, Replication
from node.wire.names import fold_name
from node.wire.protocol import Gossip, PresenceItem, Record, Sync

HERE, PEER = Identity.generate().key, Identity.generate().key
T0 = 1_800_000_000_000
EPOCH = "AAAAAAAAAAAAAAAAAAAAAA=="  # an epoch as a seed writes it: 16 bytes in base64
M0 = 1_000.0


@dataclass
class Seed:
    """The seed as replication sees it: what it merged, at which time, and the points saved."""

    key: str = HERE
    config: SeedConfig = field(default_factory=SeedConfig)
    held: dict[str, str] = field(default_factory=dict)  # folded name -> key
    merged: list[tuple[int, list[str], list[str]]] = field(default_factory=list)
    online_sets: list[tuple[str, int]] = field(default_factory=list)
    points: dict[str, tuple[str, int]] = field(default_factory=dict)

    def merge(self, link_key, now, records, presence, mail, taken, verified=False, auths=None):
        for r in records:
            self.held[fold_name(r.name)] = r.key
        self.merged.append((now, [r.name for r in records], [p.name for p in presence]))
        return Merged(records=len(records), presence=len(presence))

    def merge_online_set(self, seed_key, online, now):
        self.online_sets.append((seed_key, now))

    def key_of(self, name):
        return self.held.get(fold_name(name))

    def holds(self, record):
        return False

    def check_online(self, item, link_key, now, verified_with=None):
        return None

    def current_rev(self):
        return (EPOCH, 9)

    def save_sync_point(self, key, epoch, since):
        self.points[key] = (epoch, since)

    def link_allows(self, link_key, kind, now, cost=1.0):
        return True


@dataclass(eq=False)
class Link:
    """A live link as replication sees it: no socket, a queue out that keeps what it is given."""

    key: str
    feed: Feed
    tree: bool = True
    name: str = "peer"
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[str] = field(default_factory=list)

    @property
    def out(self):
        return self

    def push(self, text: str) -> bool:
        self.sent.append(text)
        return True


def offline(name: str, at: int = T0) -> PresenceItem:
    return PresenceItem(name=name, seed="seed-b", seed_key=PEER, online=False, at=at)


def gossip(*presence: PresenceItem, records: tuple[Record, ...] = (), rev: int = 1) -> Gossip:
    return Gossip.model_validate_json(
        json.dumps(
            {
                "type": "gossip",
                "records": [r.model_dump(mode="json") for r in records],
                "presence": [p.model_dump(mode="json", by_alias=True) for p in presence],
                "rev": [EPOCH, rev],
            }
        )
    )


def setup() -> tuple[Replication, Seed, Link, list[str]]:
    seed = Seed()
    link = Link(PEER, Feed(M0))
    drops: list[str] = []
    replication = Replication(seed, {PEER: link}, drops.append, lambda key: None)  # type: ignore[arg-type]
    return replication, seed, link, drops


async def test_presence_waits_for_its_record_by_the_time_passed_in():
    replication, seed, link, drops = setup()
    try:
        replication.apply(link, Incoming(gossip(offline("Sally"))), None, Now(T0, M0))
        assert seed.merged == [(T0, [], [])] and list(link.feed.waiting) == ["sally"]
        # just before the wait ends, another item's arrival expires nothing
        almost = M0 + PRESENCE_WAIT - 0.001
        replication.apply(link, Incoming(gossip(offline("Bob"))), None, Now(T0 + 1, almost))
        assert sorted(link.feed.waiting) == ["bob", "sally"] and drops == []
        # at the end of Sally's wait (by the clock passed in), hers is dropped, Bob's still waits
        replication.apply(link, Incoming(gossip(offline("Carol"))), None, Now(T0 + 2, almost + 1))
        assert sorted(link.feed.waiting) == ["bob", "carol"] and drops == ["not_found"]
        # Bob's record comes: his waiting item is merged then, at that frame's wall time
        bob = sign_record(Identity.generate(), "Bob", "ws://127.0.0.1:1", 1)
        checked = Checked([bob], [True], {})
        replication.apply(link, Incoming(gossip(records=(bob,))), checked, Now(T0 + 3, almost + 2))
        assert seed.merged[-2:] == [(T0 + 3, ["Bob"], []), (T0 + 3, [], ["Bob"])]
        assert list(link.feed.waiting) == ["carol"]
    finally:
        replication.stop()


async def test_a_sync_done_saves_the_point_and_the_online_set_at_its_time():
    replication, seed, link, _ = setup()
    try:
        done = Sync.model_validate_json(
            json.dumps({"type": "sync", "rev": [EPOCH, 7], "done": True})
        )
        assert replication.syncing(M0)
        replication.apply(link, Incoming(done), None, Now(T0 + 5, M0 + 1))
        assert seed.online_sets == [(PEER, T0 + 5)] and seed.points == {PEER: (EPOCH, 7)}
        assert link.feed.synced and not replication.syncing(M0 + 1)
    finally:
        replication.stop()


async def test_a_peer_sync_that_never_ends_stops_counting_by_the_time_passed_in():
    replication, seed, _, _ = setup()
    try:
        patience = 10 * seed.config.lookup_timeout
        assert replication.syncing(M0 + patience - 0.001)
        assert not replication.syncing(M0 + patience)
    finally:
        replication.stop()
