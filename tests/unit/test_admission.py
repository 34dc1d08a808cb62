"""Whether a user's record is taken: the new-name brake, no new name before the first sync, the
directory's rules and provisional names, each with the time passed in and no sockets."""

from __future__ import annotations

from node.clock import Now
from node.crypto.keys import Identity
from node.crypto.signing import sign_record
from node.errors import ErrorCode
from node.seed.admission import Accepted, Admission, Refused, Stage
from node.seed.directory import Directory, Outcome

DAY = 86_400_000
T0 = 1_800_000_000_000
M0 = 500.0
HOME = "203.0.113.0/24"


def admission(per_minute: float = 2, wait: float = 10.0, synced: bool = True) -> Admission:
    d = Directory(lease_ms=30 * DAY, claim_window_ms=10_000, max_items_per_seed=1000)
    return Admission(d, per_minute, wait, started=M0, synced=synced)


def rec(name: str, who: Identity | None = None, seq: int = T0):
    """A record signed at `seq` (ms, as users' nodes count it: a record renews its lease)."""
    return sign_record(who or Identity.generate(), name, "ws://127.0.0.1:1", seq)


def at(seconds: float) -> Now:
    return Now(T0 + int(seconds * 1000), M0 + seconds)


def test_new_names_from_one_address_are_braked_by_the_time_passed_in():
    a = admission(per_minute=2)
    assert all(isinstance(a.admit(rec(n), HOME, at(0), False), Accepted) for n in ("a1", "a2"))
    third = a.admit(rec("a3"), HOME, at(0), False)
    assert isinstance(third, Refused) and third.stage is Stage.NEW_NAMES
    assert third.code == ErrorCode.RATE_LIMITED and "a3" not in a.directory
    # another address has its own brake; a name held here costs none
    assert isinstance(a.admit(rec("b1"), "198.51.100.0/24", at(0), False), Accepted)
    held = a.directory.get("a1")
    assert held is not None
    same = a.admit(held, HOME, at(0), False)
    assert isinstance(same, Accepted) and same.outcome is Outcome.SAME and not same.changed
    # half a minute later (two a minute), one more new name
    assert isinstance(a.admit(rec("a3"), HOME, at(30), False), Accepted)
    assert isinstance(a.admit(rec("a4"), HOME, at(30), False), Refused)


def test_no_new_name_before_the_first_sync_while_it_may_come():
    a = admission(per_minute=100, wait=10.0, synced=False)
    early = a.admit(rec("sally"), HOME, at(9.999), False)
    assert isinstance(early, Refused) and early.stage is Stage.BEFORE_SYNC
    assert early.code == ErrorCode.OFFLINE and "sally" not in a.directory
    # past the wait, but a peer's sync is running: still refused
    assert isinstance(a.admit(rec("sally"), HOME, at(10), True), Refused)
    # past the wait, no sync running: taken, provisionally (a peer's record may win it)
    taken = a.admit(rec("sally"), HOME, at(10), False)
    assert isinstance(taken, Accepted) and taken.outcome is Outcome.NEW and taken.changed
    assert "sally" in a.directory.provisional
    a.synced()
    assert a.synced_once and not a.directory.provisional
    # after a sync, a new name is checked at once and is nobody's provisional claim
    assert isinstance(a.admit(rec("bob"), HOME, at(10), True), Accepted)
    assert "bob" not in a.directory.provisional


def test_the_directory_refuses_a_name_held_under_another_key():
    a = admission()
    owner = Identity.generate()
    first = a.admit(rec("Sally", owner), HOME, at(0), False)
    assert isinstance(first, Accepted) and first.loser is None
    other = a.admit(rec("sally", Identity.generate()), HOME, at(1), False)
    assert isinstance(other, Refused) and other.stage is Stage.DIRECTORY
    assert other.code == ErrorCode.NAME_TAKEN
    newer = a.admit(rec("Sally", owner, seq=T0 + 1), HOME, at(2), False)
    assert isinstance(newer, Accepted) and newer.changed


def test_an_address_whose_brake_is_full_again_is_forgotten():
    a = admission(per_minute=2)
    a.admit(rec("a1"), HOME, at(0), False)
    a.forget_idle(M0 + 1)
    assert HOME in a.new_names
    a.forget_idle(M0 + 60)
    assert HOME not in a.new_names
