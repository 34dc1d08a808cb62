"""Presence authority and watchers: what each watcher is told, with the time passed in."""

from __future__ import annotations

import json
from dataclasses import dataclass

from node.crypto.keys import Identity
from node.crypto.signing import sign_record, sign_session
from node.seed.directory import Directory
from node.seed.handshake import new_nonce
from node.seed.presence import CLOSE_NAME_LOST, CLOSE_REPLACED, PresenceCore
from node.seed.watchers import Watchers
from node.wire.protocol import PresenceItem, SessionAuth

DAY = 86_400_000
T0 = 1_800_000_000_000
HERE, PEER = Identity.generate().key, Identity.generate().key
SALLY = Identity.generate()
LABELS = {HERE: "seed-a", PEER: "seed-b"}


@dataclass(eq=False)
class Sock:
    """A user's socket as the core sees it (compared and hashed by identity, as sockets are)."""

    label: str
    folded: str | None = None
    key: str | None = None
    auth: SessionAuth | None = None


W1, W2 = Sock("w1"), Sock("w2")


def core(cap: int = 10) -> PresenceCore[Sock]:
    d = Directory(lease_ms=30 * DAY, claim_window_ms=10_000, max_items_per_seed=1000)
    d.accept(sign_record(SALLY, "Sally", "ws://127.0.0.1:1", 1), T0)
    return PresenceCore(d, Watchers(cap), {}, HERE, "seed-a", lambda k: LABELS.get(k or ""))


def auth(at: int = T0):
    return sign_session(SALLY, "Sally", HERE, new_nonce(), at)


def frames(told) -> list[tuple[str, dict]]:
    return [(who.label, json.loads(text)) for who, text in told.frames]


def test_a_watcher_hears_each_name_now_spelled_as_registered_else_as_asked():
    p = core()
    told = p.watch(W1, {"sally": "SALLY", "nobody": "NoBody"}, T0)
    assert told is not None
    assert frames(told) == [
        (
            "w1",
            {"type": "presence", "name": "Sally", "online": False, "seed": None, "last_seen": None},
        ),
        (
            "w1",
            {
                "type": "presence",
                "name": "NoBody",
                "online": False,
                "seed": None,
                "last_seen": None,
            },
        ),
    ]


def test_the_cap_refuses_a_watch_and_tells_nothing():
    p = core(cap=1)
    assert p.watch(W1, {"sally": "sally", "bob": "bob"}, T0) is None
    assert p.watchers.count(W1) == 0


def test_a_word_on_a_user_here_is_an_item_for_the_mesh_and_news_for_its_watchers():
    p = core()
    p.watch(W1, {"sally": "sally"}, T0)
    p.watch(W2, {"sally": "sally"}, T0)
    a = auth()
    said = p.say("sally", a, T0 + 5)
    assert said.item == PresenceItem(
        name="Sally", seed="seed-a", seed_key=HERE, online=True, at=T0 + 5, auth=a
    )
    news = {
        "type": "presence",
        "name": "Sally",
        "online": True,
        "seed": "seed-a",
        "last_seen": T0 + 5,
    }
    assert sorted(frames(said.told)) == [("w1", news), ("w2", news)]
    # the same word again is no news; going offline is
    assert p.say("sally", a, T0 + 6).told.frames == []
    gone = p.say("sally", None, T0 + 7)
    assert gone.item.online is False and gone.item.auth is None
    assert {f["online"] for _, f in frames(gone.told)} == {False}
    assert {f["last_seen"] for _, f in frames(gone.told)} == {T0 + 7}


def test_each_word_is_stamped_after_the_last_even_when_the_clock_steps_back():
    p = core()
    first = p.say("sally", auth(), T0 + 100)
    later = p.say("sally", None, T0)  # this seed's clock stepped back
    assert later.item.at == first.item.at + 1
    assert p.directory.item("sally", HERE) == (HERE, False, T0 + 101, T0)  # keeps its auth's time


def test_a_change_from_elsewhere_reaches_only_those_who_watch_the_name():
    p = core()
    p.watch(W1, {"sally": "sally"}, T0)
    p.watch(W2, {"bob": "bob"}, T0)
    p.directory.set_local("sally", PEER, True, T0 + 1, T0 + 1)
    told = p.changed(["sally", "bob"], T0 + 2)
    assert [(w, f["seed"]) for w, f in frames(told)] == [("w1", "seed-b")]
    assert p.changed(["sally"], T0 + 3).frames == []  # told already


def test_the_online_set_leaves_out_offline_unbound_and_stale_sessions():
    p = core()
    fresh = auth(T0)
    p.say("sally", fresh, T0)
    assert [i.name for i in p.online([("sally", fresh)], T0 + 1)] == ["Sally"]
    assert p.online([("sally", None)], T0 + 1) == []  # bound, not yet proven
    assert p.online([("bob", fresh)], T0 + 1) == []  # no word on bob here
    assert p.online([("sally", fresh)], T0 + 2 * DAY) == []  # its session auth went stale
    p.say("sally", None, T0 + 2)
    assert p.online([("sally", fresh)], T0 + 3) == []


def test_binding_a_name_says_it_is_online_and_lets_an_older_socket_of_it_go():
    p = core()
    old, new = Sock("old"), Sock("new")
    first = p.bind(old, "sally", SALLY.key, auth(T0), T0)
    assert first.item.online and first.closed == [] and p.bound == {"sally": old}
    assert (old.folded, old.key) == ("sally", SALLY.key)
    second = p.bind(new, "sally", SALLY.key, auth(T0 + 5), T0 + 5)
    assert second.closed == [(old, CLOSE_REPLACED, "the name registered again elsewhere")]
    assert old.folded is None and p.bound == {"sally": new}
    assert p.unbind(old, T0 + 6) is None  # the old socket closing takes nothing down
    gone = p.unbind(new, T0 + 7)
    assert gone is not None and not gone.item.online and p.bound == {}


def test_a_newer_session_elsewhere_or_the_name_lost_closes_the_socket_here():
    p = core()
    here = Sock("here")
    p.bind(here, "sally", SALLY.key, auth(T0), T0)
    assert p.newer_elsewhere("sally", T0, T0 + 1) is None  # not newer
    assert p.lost("sally", "another key", T0 + 1) is None  # held under the winning key
    stale = p.newer_elsewhere("sally", T0 + 1, T0 + 2)
    assert stale is not None and stale.closed == [(here, CLOSE_REPLACED, stale.closed[0][2])]
    assert not stale.item.online and here.folded is None and p.bound == {}
    again = Sock("again")
    p.bind(again, "sally", SALLY.key, auth(T0 + 3), T0 + 3)
    lost = p.lost("sally", SALLY.key, T0 + 4)
    assert lost is not None and lost.closed == [(again, CLOSE_NAME_LOST, lost.closed[0][2])]
    assert p.bound == {} and p.say("sally", None, T0 + 5).closed == []


def peer_item(at: int, auth_at: int | None = None, name: str = "Sally") -> PresenceItem:
    proof = sign_session(SALLY, name, PEER, new_nonce(), auth_at or at)
    return PresenceItem(name=name, seed="seed-b", seed_key=PEER, online=True, at=at, auth=proof)


def test_a_peers_items_move_presence_tell_watchers_and_close_a_stale_session_here():
    p = core()
    here = Sock("here")
    p.bind(here, "sally", SALLY.key, auth(T0), T0)
    p.watch(W1, {"sally": "sally"}, T0)
    older = p.hear([peer_item(T0 - 5, T0 - 5)], PEER, T0 + 1, {})
    assert older.moved == {"sally"} and older.said == []  # the session here is newer: it stays
    assert p.bound == {"sally": here}
    newer = p.hear([peer_item(T0 + 2, T0 + 2)], PEER, T0 + 3, {})
    assert [s.closed[0][:2] for s in newer.said] == [(here, CLOSE_REPLACED)]
    assert p.bound == {} and not newer.said[0].item.online
    # the watcher hears once that sally is online at the peer now (told as this seed let go)
    told = frames(newer.said[0].told) + frames(newer.told)
    assert [(w, f["online"], f["seed"]) for w, f in told] == [("w1", True, "seed-b")]


def test_a_peers_item_that_breaks_the_rules_is_refused_and_moves_nothing():
    p = core()
    p.watch(W1, {"sally": "sally"}, T0)
    heard = p.hear(
        [peer_item(T0, name="Nobody"), peer_item(T0)], HERE, T0, {}
    )  # an unknown name; an item for another home seed than the link's
    assert [name for name, _ in heard.refused] == ["Nobody", "Sally"]
    assert heard.moved == set() and heard.told.frames == [] and heard.said == []
