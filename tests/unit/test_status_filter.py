"""The seed status filter: changes pass, round-trip times alone at most once a minute."""

from __future__ import annotations

from node.user.events import SeedState, SeedStatus
from node.user.status import RTT_EVERY, StatusFilter


def status(rtt: float | None, up: bool = True, state: str = "connected") -> SeedStatus:
    seeds = (
        SeedState("ws://127.0.0.1:1", "a", True, None, True),
        SeedState("ws://127.0.0.1:2", "b", up, rtt, False),
    )
    return SeedStatus(state=state, home="a" if state == "connected" else None, seeds=seeds)  # type: ignore[arg-type]


def test_repeats_and_rtt_only_changes_are_dropped_until_a_minute_passed():
    f = StatusFilter()
    assert f.keep(status(1.0), 0.0)
    assert not f.keep(status(1.0), 2.0)  # the same again
    assert not f.keep(status(3.5), 4.0)  # only the rtt moved
    assert not f.keep(status(1.0), RTT_EVERY + 1)  # a minute on, but nothing moved since the last
    assert f.keep(status(2.0), RTT_EVERY + 2)  # a minute on, with a new rtt
    assert not f.keep(status(2.5), RTT_EVERY + 4)


def test_any_other_change_passes_at_once():
    f = StatusFilter()
    assert f.keep(status(1.0), 0.0)
    assert f.keep(status(1.5, up=False), 1.0)  # a seed went down
    assert f.keep(status(1.5, state="failing_over"), 2.0)
    assert f.keep(status(9.0, state="connected"), 3.0)  # back: the state changed, rtt rides along
