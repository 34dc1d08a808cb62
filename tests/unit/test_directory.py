"""The directory and presence rules, with the time passed in: no sockets, no sleeps."""

from __future__ import annotations

import base64
import os

import pytest

from node.crypto.keys import Identity
from node.crypto.signing import sign_record, sign_session
from node.errors import ErrorCode, ProtocolError
from node.seed.directory import Directory, Effective, Outcome
from node.wire.protocol import PresenceItem

DAY = 86_400_000
T0 = 1_800_000_000_000
S1, S2 = Identity.generate().key, Identity.generate().key  # two home seeds, known by key


def directory(lease_days: float = 30, window_ms: int = 10_000, cap: int = 1000) -> Directory:
    return Directory(
        lease_ms=int(lease_days * DAY), claim_window_ms=window_ms, max_items_per_seed=cap
    )


def refused(d: Directory, record, now: int) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        d.accept(record, now)
    return info.value.code


def online(
    user: Identity, name: str, seed_key: str, at: int, auth_at: int | None = None
) -> PresenceItem:
    nonce = base64.b64encode(os.urandom(32)).decode()
    auth = sign_session(user, name, seed_key, nonce, auth_at or at)
    return PresenceItem(name=name, seed="s", seed_key=seed_key, online=True, at=at, auth=auth)


def offline(name: str, seed_key: str, at: int) -> PresenceItem:
    return PresenceItem(name=name, seed="s", seed_key=seed_key, online=False, at=at)


def test_first_key_owns_the_name_until_the_lease_runs_out():
    d = directory()
    owner, other = Identity.generate(), Identity.generate()
    assert d.accept(sign_record(owner, "Sally", "ws://h:1", T0), T0) == (Outcome.NEW, None)
    assert (
        refused(d, sign_record(other, "sally", "ws://h:2", T0 + 1), T0 + DAY)
        == ErrorCode.NAME_TAKEN
    )
    # 30 days later with no renewal, and offline, the name is free for another key
    later = T0 + 30 * DAY
    outcome = d.accept(sign_record(other, "SALLY", "ws://h:2", later), later)
    assert outcome == (Outcome.REPLACED, owner.key)
    assert d.get("sally").key == other.key and d.get("sally").name == "SALLY"


def test_a_record_counts_as_renewed_no_later_than_its_seq():
    """A record handed over late (made 40 days ago, accepted now) is not fresh."""
    d = directory()
    old, newcomer = Identity.generate(), Identity.generate()
    d.accept(sign_record(old, "bob", "ws://h:1", T0 - 40 * DAY), T0)
    assert (
        d.accept(sign_record(newcomer, "bob", "ws://h:2", T0), T0 + 11_000)[0] is Outcome.REPLACED
    )


def test_an_online_name_is_never_free():
    d = directory(lease_days=1)
    owner, other = Identity.generate(), Identity.generate()
    d.accept(sign_record(owner, "bob", "ws://h:1", T0), T0)
    d.set_local("bob", S1, True, T0, T0)
    assert (
        refused(d, sign_record(other, "bob", "ws://h:2", T0 + 10 * DAY), T0 + 10 * DAY)
        == ErrorCode.NAME_TAKEN
    )


def test_two_keys_claiming_a_new_name_at_once_converge_on_the_smaller_key():
    a, b = Identity.generate(), Identity.generate()
    ra, rb = sign_record(a, "twin", "ws://h:1", T0), sign_record(b, "twin", "ws://h:2", T0 + 3)
    winner = a.key if a.verify_key.encode() < b.verify_key.encode() else b.key
    # two seeds that accepted one each, then hear of the other: both end on the same key
    for first, second in ((ra, rb), (rb, ra)):
        d = directory()
        d.accept(first, T0 + 5)
        try:
            d.accept(second, T0 + 50, from_peer=True)
        except ProtocolError as exc:
            assert exc.code == ErrorCode.NAME_TAKEN
        assert d.get("twin").key == winner
    # a user registering here never displaces a name held here, however new
    d = directory()
    loser, smaller = (ra, rb) if winner == b.key else (rb, ra)
    d.accept(loser, T0 + 5)
    assert refused(d, smaller, T0 + 50) == ErrorCode.NAME_TAKEN
    # once the window has passed the name is settled: the first key keeps it
    d = directory()
    d.accept(ra, T0)
    with pytest.raises(ProtocolError):
        d.accept(rb, T0 + 10_001, from_peer=True)
    assert d.get("twin").key == a.key
    # a fresh claim against a name made long ago is no claim at the same moment
    d = directory()
    d.accept(sign_record(a, "elder", "ws://h:1", T0 - 5 * DAY), T0)
    with pytest.raises(ProtocolError):
        d.accept(sign_record(b, "elder", "ws://h:2", T0), T0 + 1, from_peer=True)
    assert d.get("elder").key == a.key


def test_seq_must_grow_and_an_identical_resend_is_a_success():
    d = directory()
    me = Identity.generate()
    first = sign_record(me, "bob", "ws://h:1", 100)
    assert d.accept(first, T0)[0] is Outcome.NEW
    assert d.accept(first, T0)[0] is Outcome.SAME
    assert refused(d, sign_record(me, "bob", "ws://h:2", 100), T0) == ErrorCode.STALE
    assert refused(d, sign_record(me, "bob", "ws://h:2", 99), T0) == ErrorCode.STALE
    assert d.accept(sign_record(me, "bob", "ws://h:2", 101), T0)[0] is Outcome.NEW


def test_a_bad_signature_is_refused_and_changes_nothing():
    d = directory()
    good = sign_record(Identity.generate(), "carol", "ws://h:1", 5)
    forged = good.model_copy(update={"endpoint": "ws://evil:1"})
    assert refused(d, forged, T0) == ErrorCode.BAD_SIGNATURE
    assert d.get("carol") is None and len(d) == 0


def test_presence_is_accepted_only_from_the_home_seed_for_a_known_name_with_a_valid_auth():
    d = directory()
    ann, mallory = Identity.generate(), Identity.generate()
    d.accept(sign_record(ann, "Ann", "ws://h:1", T0), T0)

    def problem(item: PresenceItem, link: str, now: int = T0) -> ErrorCode | None:
        try:
            d.check_presence(item, link, now)
        except ProtocolError as exc:
            return exc.code
        return None

    assert problem(online(ann, "Ann", S1, T0), S1) is None
    assert (
        problem(online(ann, "Ann", S1, T0), S2) == ErrorCode.BAD_REQUEST
    )  # not from its home seed
    assert problem(online(ann, "Ghost", S1, T0), S1) == ErrorCode.NOT_FOUND  # no record
    assert (
        problem(online(ann, "Ann", S1, T0 + 61_000), S1) == ErrorCode.BAD_REQUEST
    )  # from the future
    assert (
        problem(online(mallory, "Ann", S1, T0), S1) == ErrorCode.BAD_SIGNATURE
    )  # someone else's auth
    assert problem(online(ann, "Ann", S2, T0), S1) == ErrorCode.BAD_REQUEST


def test_presence_items_per_seed_are_capped():
    d = directory(cap=2)
    users = [Identity.generate() for _ in range(3)]
    for i, u in enumerate(users):
        d.accept(sign_record(u, f"u{i}", "ws://h:1", T0), T0)
    for i in range(2):
        d.check_presence(offline(f"u{i}", S1, T0), S1, T0)
        d.apply_presence(offline(f"u{i}", S1, T0))
    with pytest.raises(ProtocolError) as info:
        d.check_presence(offline("u2", S1, T0), S1, T0)
    assert info.value.code == ErrorCode.QUOTA
    d.check_presence(offline("u0", S1, T0 + 1), S1, T0)  # an update of a held item is fine


def test_presence_keeps_the_latest_item_per_home_seed_and_names_the_latest_session():
    d = directory()
    ann = Identity.generate()
    assert d.apply_presence(online(ann, "Ann", S1, at=10, auth_at=10))
    assert not d.apply_presence(offline("ann", S1, at=5))  # older
    assert d.effective("ann", now=99) == Effective(True, S1, 99)
    d.apply_presence(online(ann, "Ann", S2, at=30, auth_at=30))
    assert d.effective("ann", now=99) == Effective(True, S2, 99)  # the newer session
    assert d.apply_presence(offline("ann", S2, at=40))
    assert d.effective("ann", now=99) == Effective(True, S1, 99)
    d.apply_presence(offline("ann", S1, at=50))
    assert d.effective("ann", now=99) == Effective(False, None, 50)


def test_a_sync_replaces_a_seeds_online_set():
    d = directory()
    ann = Identity.generate()
    d.apply_presence(online(ann, "a", S1, at=10))
    d.apply_presence(online(ann, "b", S1, at=10))
    touched = d.replace_seed_online_set(S1, {"b": (10, 10), "c": (15, 15)})
    assert touched == {"a", "c"}
    assert d.effective("a", 0) == Effective(False, None, 10)
    assert d.effective("c", 50).online


def test_users_of_a_lost_home_seed_count_as_offline_until_it_is_back():
    d = directory()
    d.apply_presence(online(Identity.generate(), "a", S1, at=10))
    assert d.seed_lost(S1, now=500) == {"a"}
    assert d.effective("a", 600) == Effective(False, None, 500)
    assert d.homes("a") == []
    assert d.seed_back(S1) == {"a"}
    assert d.effective("a", 600).online and d.homes("a") == [S1]
    assert d.seed_back(S1) == set()  # not lost any more: nothing changes


# ---------------------------------------------------------------- r3: names, freshness


def test_a_lookalike_of_a_name_held_by_another_key_is_refused():
    d = directory()
    sally, mallory = Identity.generate(), Identity.generate()
    d.accept(sign_record(sally, "Sally", "ws://h:1", T0), T0)
    for lookalike in ("SaIly", "Sa1ly", "5ally"):
        with pytest.raises(ProtocolError) as info:
            d.accept(sign_record(mallory, lookalike, "ws://h:2", T0 + 1), T0 + 1)
        assert info.value.code == ErrorCode.NAME_TAKEN
        assert "looks like Sally" in info.value.message
    # from a peer too, and the owner of Sally may hold its own lookalikes
    assert refused_from_peer(d, sign_record(mallory, "Sa1ly", "ws://h:2", T0 + 2), T0 + 2)
    assert d.accept(sign_record(sally, "Sa1ly", "ws://h:1", T0 + 3), T0 + 3)[0] == Outcome.NEW
    # once Sally's lease ran out (offline, not renewed), its lookalikes are free
    later = T0 + 31 * DAY
    assert d.accept(sign_record(mallory, "5ally", "ws://h:2", later), later)[0] == Outcome.NEW


def refused_from_peer(d: Directory, record, now: int) -> bool:
    with pytest.raises(ProtocolError):
        d.accept(record, now, from_peer=True)
    return True


def test_a_lookalike_held_from_before_keeps_working():
    d = directory()
    sally, mallory = Identity.generate(), Identity.generate()
    # loaded from disk: both held before the rule existed
    d.load(sign_record(sally, "Sally", "ws://h:1", T0), T0, T0, 1)
    d.load(sign_record(mallory, "Sa1ly", "ws://h:2", T0), T0, T0, 2)
    newer = sign_record(mallory, "Sa1ly", "ws://h:3", T0 + 5)
    assert d.accept(newer, T0 + 5) == (Outcome.NEW, None)


def test_a_claim_made_before_the_first_sync_yields_to_the_mesh():
    d = directory(window_ms=0)
    bob, mallory = Identity.generate(), Identity.generate()
    d.accept(sign_record(mallory, "Bob", "ws://h:2", T0 + DAY), T0 + DAY)
    d.provisional.add("bob")
    # the mesh's Bob is older and comes from a peer: it wins, whatever the claim window says
    outcome = d.accept(sign_record(bob, "Bob", "ws://h:1", T0), T0 + DAY + 1, from_peer=True)
    assert outcome == (Outcome.REPLACED, mallory.key)
    assert d.get("bob").key == bob.key and "bob" not in d.provisional
    # without the mark (after the sync), a peer's record for a name held here is refused
    d2 = directory(window_ms=0)
    d2.accept(sign_record(mallory, "Bob", "ws://h:2", T0 + DAY), T0 + DAY)
    assert refused_from_peer(d2, sign_record(bob, "Bob", "ws://h:1", T0), T0 + DAY + 1)


def test_a_stale_session_auth_keeps_nobody_online():
    d = directory()
    sally = Identity.generate()
    d.accept(sign_record(sally, "Sally", "ws://h:1", T0), T0)
    now = T0 + 7 * DAY
    stale = online(sally, "Sally", S1, at=now, auth_at=now - 7 * DAY)
    with pytest.raises(ProtocolError) as info:
        d.check_presence(stale, S1, now)
    assert info.value.code == ErrorCode.STALE
    fresh = online(sally, "Sally", S1, at=now, auth_at=now - 3_600_000)
    d.check_presence(fresh, S1, now)
    assert d.apply_presence(fresh) and d.is_online("sally")
    # a day later, with no newer session from its home seed, the item has aged out
    assert d.expire_sessions(now + DAY, own_key=S2) == {"sally"}
    assert not d.is_online("sally")
    assert d.effective("sally", now + DAY).last_seen == now


def test_this_seeds_own_sessions_do_not_age_out():
    d = directory()
    d.accept(sign_record(Identity.generate(), "Sally", "ws://h:1", T0), T0)
    d.set_local("sally", S1, True, T0, T0)
    assert d.expire_sessions(T0 + 7 * DAY, own_key=S1) == set()
    assert d.is_online("sally")
