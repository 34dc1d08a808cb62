"""The storage seam's contract, run against every backend: SQLite (the embedded default) and a
real 3-node NATS JetStream cluster (skipped, saying why, where no nats-server is installed)."""

from __future__ import annotations

import asyncio
import os

import pytest

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail, sign_record, sign_take
from node.errors import ErrorCode, ProtocolError
from node.seed.mailbox import DAY_MS, MailLimits
from node.seed.storage.base import SILENT_MS, Conflict, Seen, Stored, apply_record, converge
from node.wire.protocol import Record

from .test_trust import _chat

LEASE_MS = 30 * DAY_MS
LIMITS = MailLimits(per_recipient_items=10, per_pair_items=3)


@pytest.fixture(params=["sqlite", "nats"])
async def storage(request, tmp_path):
    """A fresh store of each backend (on NATS: buckets and a stream of their own)."""
    if request.param == "sqlite":
        from node.seed.storage.sqlite import SqliteStorage

        store = SqliteStorage.open(tmp_path / "seed.sqlite3", LIMITS)
    else:
        cluster = request.getfixturevalue("nats_cluster")
        from node.seed.storage.nats import NatsStorage

        prefix = "t" + os.urandom(4).hex()
        store = await NatsStorage.connect(cluster.storage_url, LIMITS, prefix=prefix)
    yield store
    await store.close()


# ---------------------------------------------------------------- records


async def test_seq_rule(storage):
    """The owning key's higher seq replaces its record; a lower or equal one is stale; an
    identical resend changes nothing."""
    alice = Identity.generate()
    now = now_ms()
    first = await apply_record(
        storage.records, "alice", sign_record(alice, "Alice", "ws://h:1", 5), now, LEASE_MS
    )
    assert first is not None and first.record.seq == 5
    assert await apply_record(storage.records, "alice", first.record, now, LEASE_MS) is None
    with pytest.raises(ProtocolError) as err:
        await apply_record(
            storage.records, "alice", sign_record(alice, "Alice", "ws://h:2", 4), now, LEASE_MS
        )
    assert err.value.code is ErrorCode.STALE
    later = await apply_record(
        storage.records, "alice", sign_record(alice, "Alice", "ws://h:3", 6), now, LEASE_MS
    )
    assert later is not None and later.revision > first.revision
    held = await storage.records.get("alice")
    assert held.record.endpoint == "ws://h:3" and held.claimed == first.claimed
    changed = await storage.records.changes(0, 10)
    assert [s.record.seq for s in changed] == [6]  # only the name's latest record
    assert await storage.records.changes(later.revision, 10) == []


async def test_ownership_and_lease(storage):
    """Another key cannot take a held name until the owner's lease runs out."""
    owner, other = Identity.generate(), Identity.generate()
    now = now_ms()
    await apply_record(
        storage.records, "sally", sign_record(owner, "Sally", "ws://h:1", now), now, LEASE_MS
    )
    with pytest.raises(ProtocolError) as err:
        await apply_record(
            storage.records,
            "sally",
            sign_record(other, "sally", "ws://h:2", now + 1),
            now + 1,
            LEASE_MS,
        )
    assert err.value.code is ErrorCode.NAME_TAKEN
    later = now + LEASE_MS + 1
    taken = await apply_record(
        storage.records, "sally", sign_record(other, "SALLY", "ws://h:2", later), later, LEASE_MS
    )
    assert taken is not None and (await storage.records.get("sally")).record.key == other.key


async def test_put_needs_the_expected_revision(storage):
    alice = Identity.generate()
    record = sign_record(alice, "alice", "ws://h:1", 1)
    rev = await storage.records.put("alice", record, 1, 1, 0)
    with pytest.raises(Conflict):
        await storage.records.put("alice", record, 1, 1, 0)  # exists already
    with pytest.raises(Conflict):
        await storage.records.put("alice", record, 1, 1, rev + 1000)
    assert await storage.records.put("alice", record, 1, 1, rev) > rev


async def test_concurrent_compare_and_set_of_one_key(storage):
    """1,200 concurrent read-then-compare-and-set updates of one key: every one that reports
    success must hold, so the successes form one chain (each names the revision the previous
    success wrote). A server with the lost-update bug lets many succeed on the same revision."""
    key = Identity.generate().key

    def record(seq: int) -> Record:
        return Record.model_construct(name="hot", key=key, endpoint="ws://h:1", seq=seq, sig="x")

    first = await storage.records.put("hot", record(1), 1, 1, 0)
    wins: list[tuple[int, int]] = []

    async def attempt(i: int) -> None:
        held = await storage.records.get("hot")
        try:
            rev = await storage.records.put("hot", record(i + 2), 1, 1, held.revision)
        except Conflict:
            return
        wins.append((held.revision, rev))

    await asyncio.gather(*(attempt(i) for i in range(1200)))
    assert wins, "no update succeeded"
    chain = sorted(wins, key=lambda w: w[1])
    expected = first
    for before, after in chain:
        assert before == expected, f"{len(wins)} successes, not one chain: {chain[:5]}"
        expected = after
    assert (await storage.records.get("hot")).revision == expected


def test_history_converges_by_the_rule():
    """A history in which a stale write and another key's write slipped in (a leader change)
    still settles on the owner's highest seq."""
    owner, other = Identity.generate(), Identity.generate()
    t = 1_000_000

    def stored(who, seq, rev, claimed=t):
        return Stored(sign_record(who, "n", "ws://h:1", seq), seq, claimed, rev)

    history = [stored(owner, 5, 1), stored(owner, 7, 2), stored(owner, 6, 3), stored(other, 9, 4)]
    assert converge(history, LEASE_MS).record.seq == 7
    late = stored(other, 9, 5, claimed=t + LEASE_MS + 10)
    assert converge([*history, late], LEASE_MS).record.key == other.key


# ---------------------------------------------------------------- presence


async def test_presence_latest_wins_per_home_seed(storage):
    p = storage.presence
    assert await p.put(Seen("bob", "A", True, 100))
    assert not await p.put(Seen("bob", "A", False, 90))  # older word from the same home seed
    assert await p.put(Seen("bob", "B", False, 50))  # another home seed's word stands beside it
    latest = {s.seed_key: s for s in await p.latest("bob")}
    assert latest["A"].online and latest["A"].at == 100 and latest["B"].at == 50
    assert await p.put(Seen("bob", "A", False, 200))
    assert not {s.seed_key: s for s in await p.latest("bob")}["A"].online
    assert await p.latest("nobody") == []


async def test_heartbeat_expiry(storage):
    now = now_ms()
    await storage.presence.heartbeat("A", now, "seed-a")
    await storage.presence.heartbeat("B", now - SILENT_MS - 1)
    assert await storage.presence.alive(now) == {"A"}
    assert storage.presence.name_of("A") == "seed-a"
    assert await storage.presence.alive(now + SILENT_MS + 1) == set()


async def test_watch_replays_then_follows(storage):
    p = storage.presence
    await p.put(Seen("ann", "A", True, 1))
    await p.put(Seen("ben", "A", True, 1))
    watch = p.watch(0)
    got = [await anext(watch), await anext(watch)]
    assert {s.name for _, s in got} == {"ann", "ben"}
    await p.put(Seen("cat", "A", True, 1))
    rev, seen = await asyncio.wait_for(anext(watch), 30)
    assert seen.name == "cat" and rev > max(r for r, _ in got)
    await watch.aclose()
    since = p.watch(got[0][0])  # from after the first change
    assert (await anext(since))[1].name == got[1][1].name
    await since.aclose()


# ---------------------------------------------------------------- mail


def _item(sender: Identity, frm: str, to: str, at: int | None = None):
    return sign_mail(sender, to, frm, _chat(frm, to), now_ms() if at is None else at)


def _text(item) -> str:
    from node.wire.protocol import dump

    return dump(item)


async def test_quota_holds_under_40_concurrent_senders(storage):
    """40 senders deposit at once for one recipient whose quota is 10 items: exactly 10 are
    held, the rest refused (no seed, no race lets the quota be overrun)."""
    now = now_ms()
    people = [Identity.generate() for _ in range(40)]
    items = [_item(p, f"s{i}", "bob") for i, p in enumerate(people)]
    results = await asyncio.gather(*(storage.mail.deposit(it, _text(it), now) for it in items))
    assert sum(r.held for r in results) == LIMITS.per_recipient_items
    assert all(r.refusal for r in results if not r.held)
    assert await storage.mail.held_for("bob") == LIMITS.per_recipient_items
    assert len(await storage.mail.pending("bob")) == LIMITS.per_recipient_items


async def test_per_pair_limit(storage):
    alice = Identity.generate()
    now = now_ms()
    results = []
    for _ in range(LIMITS.per_pair_items + 1):
        item = _item(alice, "alice", "bob")
        results.append(await storage.mail.deposit(item, _text(item), now))
    assert [r.held for r in results] == [True] * LIMITS.per_pair_items + [False]
    assert "too much mail held for bob" in results[-1].refusal
    other = _item(alice, "alice", "cy")
    assert (await storage.mail.deposit(other, _text(other), now)).held


async def test_duplicate_deposit_and_take(storage):
    """A second deposit of an item is a success that holds nothing more, before and after the
    recipient took it; a take deletes what it names, oldest-first order of the rest kept."""
    alice, bob = Identity.generate(), Identity.generate()
    now = now_ms()
    items = [_item(alice, "alice", "bob", now + i) for i in range(3)]
    for item in items:
        assert (await storage.mail.deposit(item, _text(item), now)).held
    again = await storage.mail.deposit(items[0], _text(items[0]), now)
    assert again.duplicate and not again.held
    assert await storage.mail.pending("Bob") == [_text(i) for i in items]
    ids = [(i.from_, i.frame.type, i.frame.id) for i in items[:2]]
    take = sign_take(bob, "bob", ids, now)
    assert (await storage.mail.take(take, _text(take))).count == 2
    assert await storage.mail.pending("bob") == [_text(items[2])]
    assert await storage.mail.held_for("bob") == 1
    assert (await storage.mail.take(take, _text(take))).count == 0
    taken_again = await storage.mail.deposit(items[0], _text(items[0]), now)
    assert taken_again.duplicate and await storage.mail.held_for("bob") == 1


async def test_expiry(storage):
    alice = Identity.generate()
    now = now_ms()
    old = _item(alice, "alice", "bob", now - LIMITS.keep_ms - 1)
    assert (
        "older than the mail lifetime" in (await storage.mail.deposit(old, _text(old), now)).refusal
    )
    fresh = _item(alice, "alice", "bob", now)
    assert (await storage.mail.deposit(fresh, _text(fresh), now)).held
    await storage.mail.expire(now)
    assert await storage.mail.held_for("bob") == 1
    await storage.mail.expire(now + LIMITS.keep_ms + 1)
    assert await storage.mail.pending("bob") == []
    assert await storage.mail.held_for("bob") == 0


async def test_an_early_answer_is_the_durable_one(storage):
    """What a backend decides at once (the embedded store: in memory, before its commit) is what
    the write turns out to be once durable, and a held item's change number is known then, so
    the seed passes its changes on in the order it made them. `known` answers without a round
    trip or says it cannot (None), never wrongly; a take of nothing held writes nothing."""
    alice, bob = Identity.generate(), Identity.generate()
    now = now_ms()
    item = _item(alice, "alice", "bob")
    ident = ("alice", item.frame.type, item.frame.id)
    assert storage.mail.known("bob", ident) in ("absent", None)
    holding = storage.mail.deposit(item, _text(item), now)
    if holding.decided is not None:
        assert holding.decided.held and holding.decided.revision > 0
        assert not holding.durable.done()  # decided before it is on disk
    held = await holding
    assert held.held and holding.decided in (None, held)
    assert storage.mail.known("Bob", ident) in ("held", None)
    # a store that numbers its changes gives them to a sync; one that does not, none
    numbered = [(held.revision, _text(item))] if held.revision else []
    assert await storage.mail.changes("mail", 0, 10) == numbered
    take = sign_take(bob, "bob", [(item.from_, item.frame.type, item.frame.id)], now)
    deleting = storage.mail.take(take, _text(take))
    if deleting.decided is not None:
        assert deleting.decided.count == 1 and deleting.decided.revision > held.revision
    deleted = await deleting
    assert deleted.count == 1 and deleting.decided in (None, deleted)
    assert storage.mail.known("bob", ident) in ("taken", None)
    numbered = [(deleted.revision, _text(take))] if deleted.revision else []
    assert await storage.mail.changes("taken", 0, 10) == numbered
    assert await storage.mail.changes("mail", 0, 10) == []  # the item is gone
    nothing = storage.mail.take(take, _text(take))
    if nothing.decided is not None:
        assert nothing.decided.count == 0 and nothing.durable.done()
    assert (await nothing).count == 0


async def test_a_copy_deposited_before_the_first_is_durable_is_answered_with_it(storage):
    """A second deposit of an item still on its way to disk is a success only once the first
    copy is durable (answered at once, it would say `deposited` for an item a failed commit
    may yet lose)."""
    alice = Identity.generate()
    now = now_ms()
    item = _item(alice, "alice", "bob")
    first = storage.mail.deposit(item, _text(item), now)
    copy = storage.mail.deposit(item, _text(item), now)
    if first.decided is not None:  # decided in memory, durable at the commit
        assert not first.durable.done() and not copy.durable.done()
    held, again = await first, await copy
    if first.decided is not None:  # one store, in order: the first is the one held
        assert held.held and again.duplicate and not again.held
    else:  # a fleet's two deposits race to the cluster: one is held, the other its duplicate
        assert sorted([(held.held, held.duplicate), (again.held, again.duplicate)]) == [
            (False, True),
            (True, False),
        ]
    assert await storage.mail.held_for("bob") == 1


async def test_a_take_and_an_expiry_racing_for_one_item_release_it_once(storage):
    """Two seeds of a fleet may take and expire the same item at once: its quota is given back
    once, or the recipient's count would go below what is held (and let more in)."""
    bob = Identity.generate()
    alice = Identity.generate()
    now = now_ms()
    item = _item(alice, "alice", "bob", now)
    assert (await storage.mail.deposit(item, _text(item), now)).held
    take = sign_take(bob, "bob", [("alice", item.frame.type, item.frame.id)], now)
    later = now + LIMITS.keep_ms + 1
    await asyncio.gather(
        *(storage.mail.take(take, _text(take)) for _ in range(2)),
        *(storage.mail.expire(later) for _ in range(3)),
    )
    assert await storage.mail.held_for("bob") == 0
    again = _item(alice, "alice", "bob", now)
    assert (await storage.mail.deposit(again, _text(again), now)).held
    assert await storage.mail.held_for("bob") == 1
