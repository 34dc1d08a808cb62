"""Watchers: who hears about which name, and only when it is news."""

from node.seed.directory import Effective
from node.seed.watchers import Watchers

ONLINE = Effective(True, "s1", 5)
OFFLINE = Effective(False, None, 7)


def test_watchers_are_told_only_what_changed():
    w: Watchers[str] = Watchers(cap=10)
    assert w.add("sock1", ["bob", "ann"]) and w.add("sock2", ["bob"])
    w.first_told("bob", OFFLINE)
    assert w.to_tell("bob", OFFLINE) == set()  # no news
    assert w.to_tell("bob", ONLINE) == {"sock1", "sock2"}
    assert (
        w.to_tell("bob", Effective(True, "s1", 9)) == set()
    )  # online: last_seen moving is no news
    assert w.to_tell("carol", ONLINE) == set()  # nobody watches carol


def test_the_cap_refuses_a_whole_request_and_counts_names_once():
    w: Watchers[str] = Watchers(cap=3)
    assert w.add("s", ["a1", "a2"])
    assert not w.add("s", ["a3", "a4"])
    assert w.count("s") == 2
    assert w.add("s", ["a3", "a1"])  # a1 is watched already: 3 names in all
    assert w.count("s") == 3


def test_a_dropped_watcher_is_forgotten_with_names_nobody_watches():
    w: Watchers[str] = Watchers(cap=10)
    w.add("s1", ["bob"])
    w.add("s2", ["bob", "ann"])
    w.first_told("ann", OFFLINE)
    w.drop("s2")
    assert w.to_tell("bob", ONLINE) == {"s1"}
    assert "ann" not in w.by_name and "ann" not in w.told
    w.drop("s1")
    assert w.by_name == {} and w.names == {}
