"""Which seed status events are news: a round-trip time that moved is not, more than once a minute.

The seed client reports its state every few seconds, mostly unchanged but for the seeds' `rtt_ms`;
a script reading `seed` lines (or a UI redrawing) wants the changes, and the rtt now and then.
"""

from __future__ import annotations

from dataclasses import replace

from .events import SeedStatus

RTT_EVERY = 60.0  # seconds between events that change nothing but round-trip times


def _without_rtt(event: SeedStatus) -> SeedStatus:
    return replace(event, seeds=tuple(replace(s, rtt_ms=None) for s in event.seeds))


class StatusFilter:
    """Pure: `keep(event, now)` says whether to emit; `now` is a monotonic clock in seconds."""

    def __init__(self, rtt_every: float = RTT_EVERY) -> None:
        self.rtt_every = rtt_every
        self.last: SeedStatus | None = None
        self.last_at = 0.0

    def keep(self, event: SeedStatus, now: float) -> bool:
        last = self.last
        if last is not None and _without_rtt(event) == _without_rtt(last):
            if event == last or now - self.last_at < self.rtt_every:
                return False
        self.last, self.last_at = event, now
        return True
