"""The directory and presence rules, with the time passed in: no sockets, no sleeps."""

from __future__ import annotations

import pytest

from node.crypto.keys import Identity
from node.crypto.signing import sign_record
from node.errors import ErrorCode, ProtocolError
from node.seed.directory import Directory, Effective, Outcome
from node.wire.protocol import PresenceItem

DAY = 86_400_000
T0 = 1_800_000_000_000


def refused(directory: Directory, record, now: int) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        directory.accept(record, now)
    return info.value.code


def test_first_key_owns_the_name_until_the_lease_runs_out():
    d = Directory(lease_ms=30 * DAY)
    owner, other = Identity.generate(), Identity.generate()
    assert d.accept(sign_record(owner, "Sally", "ws://h:1", T0), T0) is Outcome.NEW
    assert (
        refused(d, sign_record(other, "sally", "ws://h:2", T0 + 1), T0 + 1) == ErrorCode.NAME_TAKEN
    )
    # 30 days later with no renewal, and offline, the name is free for another key
    later = T0 + 30 * DAY + 1
    assert d.accept(sign_record(other, "SALLY", "ws://h:2", 5), later) is Outcome.NEW
    assert d.get("sally").key == other.key and d.get("sally").name == "SALLY"


def test_an_online_name_is_never_free():
    d = Directory(lease_ms=DAY)
    owner, other = Identity.generate(), Identity.generate()
    d.accept(sign_record(owner, "bob", "ws://h:1", T0), T0)
    d.apply_presence(PresenceItem(name="bob", seed="s1", online=True, at=T0))
    assert (
        refused(d, sign_record(other, "bob", "ws://h:2", T0), T0 + 10 * DAY) == ErrorCode.NAME_TAKEN
    )


def test_seq_must_grow_and_an_identical_resend_is_a_success():
    d = Directory(lease_ms=DAY)
    me = Identity.generate()
    first = sign_record(me, "bob", "ws://h:1", 100)
    assert d.accept(first, T0) is Outcome.NEW
    assert d.accept(first, T0) is Outcome.SAME
    assert refused(d, sign_record(me, "bob", "ws://h:2", 100), T0) == ErrorCode.STALE
    assert refused(d, sign_record(me, "bob", "ws://h:2", 99), T0) == ErrorCode.STALE
    assert d.accept(sign_record(me, "bob", "ws://h:2", 101), T0) is Outcome.NEW


def test_a_bad_signature_is_refused_and_changes_nothing():
    d = Directory(lease_ms=DAY)
    good = sign_record(Identity.generate(), "carol", "ws://h:1", 5)
    forged = good.model_copy(update={"endpoint": "ws://evil:1"})
    assert refused(d, forged, T0) == ErrorCode.BAD_SIGNATURE
    assert d.get("carol") is None and len(d) == 0


def test_presence_keeps_the_latest_item_per_home_seed():
    d = Directory(lease_ms=DAY)
    assert d.apply_presence(PresenceItem(name="Ann", seed="s1", online=True, at=10))
    assert not d.apply_presence(PresenceItem(name="ann", seed="s1", online=False, at=5))  # older
    assert d.effective("ann", now=99) == Effective(True, "s1", 99)
    assert d.apply_presence(PresenceItem(name="ann", seed="s1", online=False, at=20))
    assert d.effective("ann", now=99) == Effective(False, None, 20)
    # online at another home: online, and that home is named
    d.apply_presence(PresenceItem(name="ann", seed="s2", online=True, at=30))
    assert d.effective("ann", now=99) == Effective(True, "s2", 99)


def test_a_sync_replaces_a_seeds_online_set():
    d = Directory(lease_ms=DAY)
    d.apply_presence(PresenceItem(name="a", seed="s1", online=True, at=10))
    d.apply_presence(PresenceItem(name="b", seed="s1", online=True, at=10))
    touched = d.replace_seed_online_set("s1", {"b": 10, "c": 15})
    assert touched == {"a", "c"}
    assert d.effective("a", 0) == Effective(False, None, 10)
    assert d.effective("c", 50).online


def test_users_of_a_lost_home_seed_count_as_offline_until_it_is_back():
    d = Directory(lease_ms=DAY)
    d.apply_presence(PresenceItem(name="a", seed="s1", online=True, at=10))
    assert d.seed_lost("s1", now=500) == {"a"}
    assert d.effective("a", 600) == Effective(False, None, 500)
    assert d.seed_back("s1") == {"a"}
    assert d.effective("a", 600).online
    assert d.seed_back("s1") == set()  # not lost any more: nothing changes
